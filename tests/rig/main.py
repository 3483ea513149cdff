"""Starts the E2B data-plane stand-ins: a jupyter_server on a 0600 Unix socket (as template 0.4.7
runs it), the code-interpreter server in front of it and envd, each on 127.0.0.1.

    python main.py --state DIR [--envd-port 0] [--interpreter-port 0] [--token T] [--envs JSON]

Prints one JSON line `{"envd": PORT, "interpreter": PORT}` once both answer, then runs until
killed (or until its stdin closes, so a parent that dies takes it along). Run it where
`/home/user` is the sandbox's home (the tests bind a directory there in a mount namespace).
"""

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time

import uvicorn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from envd import Envd, Sandbox  # noqa: E402
from interpreter import Interpreter  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def listen(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(128)
    s.setblocking(False)
    return s


def start_jupyter(state):
    """jupyter_server on a private socket, no token, its kernels with E2B's formatters."""
    sock = os.path.join(state, "jupyter", "server.sock")
    os.makedirs(os.path.dirname(sock), exist_ok=True)
    startup = os.path.join(state, "ipython", "profile_default", "startup")
    os.makedirs(startup, exist_ok=True)
    with open(os.path.join(HERE, "kernel_startup.py")) as src, open(os.path.join(startup, "00-e2b.py"), "w") as dst:
        dst.write(src.read())
    env = dict(os.environ)
    env.update({
        "IPYTHONDIR": os.path.join(state, "ipython"),
        "JUPYTER_RUNTIME_DIR": os.path.join(state, "jupyter", "runtime"),
        "JUPYTER_DATA_DIR": os.path.join(state, "jupyter", "data"),
        "JUPYTER_CONFIG_DIR": os.path.join(state, "jupyter", "config"),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "HOME": "/home/root",
    })
    log = open(os.path.join(state, "jupyter.log"), "wb")
    child = subprocess.Popen(
        [
            sys.executable, "-m", "jupyter_server",
            f"--ServerApp.sock={sock}",
            "--ServerApp.sock_mode=0600",
            "--IdentityProvider.token=",
            "--ServerApp.root_dir=/home/user",
            "--ServerApp.disable_check_xsrf=True",
            "--ServerApp.allow_root=True",
            "--ServerApp.iopub_data_rate_limit=1000000000",
            "--ServerApp.open_browser=False",
        ],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd="/",
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        if child.poll() is not None:
            raise SystemExit(f"jupyter_server exited with {child.returncode}; see {state}/jupyter.log")
        if os.path.exists(sock):
            try:
                c = socket.socket(socket.AF_UNIX)
                c.connect(sock)
                c.close()
                return child, sock
            except OSError:
                pass
        time.sleep(0.05)
    raise SystemExit("jupyter_server did not start")


async def serve(args, jupyter_sock):
    envd_sock = listen(args.envd_port)
    interpreter_sock = listen(args.interpreter_port)
    envd_port = envd_sock.getsockname()[1]
    sandbox = Sandbox(args.token, json.loads(args.envs))
    interpreter = Interpreter(jupyter_sock, f"http://127.0.0.1:{envd_port}", args.token)
    await interpreter.start()
    servers = []
    for app, sock in ((Envd(sandbox), envd_sock), (interpreter, interpreter_sock)):
        config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False,
                                timeout_keep_alive=640)
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None
        servers.append(asyncio.ensure_future(server.serve(sockets=[sock])))
    await asyncio.sleep(0.2)
    print(json.dumps({"envd": envd_port, "interpreter": interpreter_sock.getsockname()[1]}), flush=True)
    loop = asyncio.get_running_loop()
    stdin_closed = loop.create_future()

    def stdin_readable():
        if not os.read(0, 4096) and not stdin_closed.done():
            stdin_closed.set_result(None)

    try:
        loop.add_reader(0, stdin_readable)
        await asyncio.wait([stdin_closed, *servers], return_when=asyncio.FIRST_COMPLETED)
    except (ValueError, OSError):
        await asyncio.gather(*servers)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--state", required=True)
    p.add_argument("--envd-port", type=int, default=0)
    p.add_argument("--interpreter-port", type=int, default=0)
    p.add_argument("--token", default="")
    p.add_argument("--envs", default="{}")
    args = p.parse_args()
    for home in ("/home/user", "/home/root"):
        os.makedirs(home, exist_ok=True)
    jupyter, sock = start_jupyter(args.state)
    try:
        asyncio.run(serve(args, sock))
    finally:
        jupyter.terminate()
        try:
            jupyter.wait(5)
        except subprocess.TimeoutExpired:
            jupyter.kill()


if __name__ == "__main__":
    main()
