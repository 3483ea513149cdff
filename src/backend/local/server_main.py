# How the local sandbox's jupyter_server starts: server.rs writes this to the server's config dir
# (after the resource limits of an isolated sandbox) and runs it with one argument of its own
# before the server's, the kernels' {"transport", "cwd"} as JSON.
#
# The kernel of the sandbox's default context starts first, before jupyter_server is imported,
# and the server adopts it for the first kernel it is asked for: the kernel's start (~230 ms,
# mostly imports) then overlaps the server's (~265 ms, mostly imports) instead of following it.
# It is launched as jupyter_client's LocalProvisioner launches a kernel: ipykernel's command
# (which jupyter_client runs with this interpreter), this process's environment, the root as its
# working directory, a session of its own, stdin a closed pipe, a child of this process. The
# provisioner below takes its process and connection info over only when the launch it was
# about to make is that same launch and the kernel is alive (when it is still starting, the
# rest of its start is still shorter than a whole one); otherwise it kills it and launches as
# usual. Restarts, and every later kernel, launch as usual.
import atexit
import gc
import json
import os
import signal
import subprocess
import sys
import uuid

# Importing and initializing the server allocates tens of thousands of objects that live as long
# as it does, and the cyclic collector keeps walking them while they pile up: with it off until
# the server starts, its import costs ~200 ms instead of ~247, and the server answers after
# 314 ms instead of 362 (medians of 8 and 30 interleaved starts, the kernel starting beside it).
gc.disable()

# jsonschema imports these (installed by jupyter_events' format extra) only to check string
# formats (`iri`, `uri`, `date-time`, `color`, `duration`...) that no event schema of
# jupyter_server uses, each under `suppress(ImportError)`: a server without them is the server
# those packages are missing from. `rfc3987_syntax` builds a parser as it is imported (0.76 s
# of the 1.1 s a server start cost in CPU); the others together ~15 ms, isoduration with arrow
# most of it.
for _name in (
    "rfc3987_syntax",
    "rfc3987",
    "rfc3986_validator",
    "rfc3339_validator",
    "webcolors",
    "uri_template",
    "isoduration",
    "fqdn",
    "jsonpointer",
):
    sys.modules[_name] = None

_PORTS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")


def _default_ip(transport, connection_file):
    """The address jupyter_client gives a kernel when none is configured: its own socket prefix
    beside its connection file for IPC, loopback for TCP."""
    if transport == "ipc":
        return os.path.splitext(connection_file)[0] + "-ipc"
    return "127.0.0.1"


class _Prestarted:
    """The kernel launched before the server, until the server adopts it or kills it."""

    def __init__(self, transport, cwd):
        self.cwd = os.path.normpath(cwd)
        runtime = os.environ["JUPYTER_RUNTIME_DIR"]
        self.file = os.path.realpath(os.path.join(runtime, f"kernel-{uuid.uuid4()}.json"))
        ip = _default_ip(transport, self.file)
        key = os.urandom(16)
        self.info = {
            **dict(zip(_PORTS, _free_ports(transport, ip))),
            "ip": ip,
            "key": f"{key[:4].hex()}-{key[4:].hex()}",
            "transport": transport,
            "signature_scheme": "hmac-sha256",
            "kernel_name": "python3",
        }
        fd = os.open(self.file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.info, f, indent=2)
        self.cmd = [sys.executable, "-m", "ipykernel_launcher", "-f", self.file]
        self.env = dict(os.environ)
        self.env.pop("PYTHONEXECUTABLE", None)
        self.process = subprocess.Popen(
            self.cmd,
            stdin=subprocess.PIPE,
            cwd=self.cwd,
            env={**self.env, "JPY_PARENT_PID": str(os.getpid())},
            start_new_session=True,
        )
        self.process.stdin.close()

    def mismatch(self, km, cmd, kwargs):
        """Why the launch `km` is about to make is not this kernel's, or None."""
        code = self.process.poll()
        if code is not None:
            return f"it exited with status {code}"
        if km.transport != self.info["transport"] or km.ip != _default_ip(
            km.transport, km.connection_file
        ):
            return "the kernels use another transport or address"
        if getattr(km, "curve_publickey", None):
            return "the kernels' transport is encrypted"
        own = os.path.realpath(km.connection_file)
        if [self.file if arg == own else arg for arg in cmd] != self.cmd:
            return "the kernel spec runs another command"
        launch = {k: v for k, v in kwargs.items() if k not in ("kernel_id", "extra_arguments")}
        if launch.get("cwd") != self.cwd:
            return "the kernel starts in another directory"
        env = launch.get("env") or {}
        if env != self.env:
            names = sorted(k for k in env.keys() | self.env.keys() if env.get(k) != self.env.get(k))
            return f"the kernel's environment differs in {', '.join(names)}"
        if set(launch) - {"cwd", "env"}:
            return f"the launch has other arguments ({', '.join(sorted(launch))})"
        return None

    def kill(self):
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except OSError:
            pass
        self.process.wait()
        self.remove_file()

    def remove_file(self):
        try:
            os.remove(self.file)
        except OSError:
            pass


def _free_ports(transport, ip):
    """Five ports as jupyter_client picks them: unused TCP ports, or IPC paths not taken."""
    if transport == "tcp":
        import socket

        socks = [socket.socket() for _ in _PORTS]
        for s in socks:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\0" * 8)
            s.bind((ip, 0))
        ports = [s.getsockname()[1] for s in socks]
        for s in socks:
            s.close()
        return ports
    ports, n = [], 1
    while len(ports) < len(_PORTS):
        if not os.path.exists(f"{ip}-{n}"):
            ports.append(n)
        n += 1
    return ports


_kernel = json.loads(sys.argv.pop(1))
try:
    _prestarted = _Prestarted(_kernel["transport"], _kernel["cwd"])
except Exception as _e:
    print(f"e2b-blocking: no kernel started ahead of the server: {_e}", file=sys.stderr)
    _prestarted = None


def _kill_unadopted():
    global _prestarted
    if _prestarted is not None:
        _prestarted.kill()
        _prestarted = None


atexit.register(_kill_unadopted)

try:
    from importlib.metadata import EntryPoint

    from jupyter_client.connect import LocalPortCache
    from jupyter_client.provisioning import LocalProvisioner
    from jupyter_client.provisioning.factory import KernelProvisionerFactory
except ImportError as _e:
    # jupyter_client before 7.0 has no provisioners: every kernel launches as usual.
    print(f"e2b-blocking: the kernel started ahead is not used: {_e}", file=sys.stderr)
    _kill_unadopted()
    LocalProvisioner = None

if LocalProvisioner is not None:

    class PrestartProvisioner(LocalProvisioner):
        """jupyter_client's LocalProvisioner, which adopts the kernel started ahead for the one
        launch that is the same as its own."""

        _adopted = None

        async def launch_kernel(self, cmd, **kwargs):
            global _prestarted
            kernel, _prestarted = _prestarted, None
            if kernel is not None:
                why = kernel.mismatch(self.parent, cmd, kwargs)
                if why is None:
                    return self._adopt(kernel)
                self.log.warning("e2b-blocking: the kernel started ahead is not used: %s", why)
                kernel.kill()
            return await super().launch_kernel(cmd, **kwargs)

        def _adopt(self, kernel):
            if self.ports_cached:
                # pre_launch reserved TCP ports in jupyter_client's cache: the kernel's replace
                # them.
                cache = LocalPortCache.instance()
                for name in _PORTS:
                    cache.return_port(self.connection_info[name])
                    cache.currently_used_ports.add(kernel.info[name])
            self.process = kernel.process
            self.pid = kernel.process.pid
            try:
                self.pgid = os.getpgid(self.pid)
            except OSError:
                self.pgid = None
            self.cwd = kernel.cwd
            self._adopted = kernel
            # The KernelManager takes this as the truth and rewrites its connection file with it.
            self.connection_info = {**kernel.info, "key": kernel.info["key"].encode()}
            self.log.info("e2b-blocking: adopted the kernel started ahead (pid %s)", self.pid)
            return self.connection_info

        async def cleanup(self, restart=False):
            await super().cleanup(restart=restart)
            # The adopted process is gone; a restart launches with the manager's own file.
            if self._adopted is not None:
                self._adopted.remove_file()
                self._adopted = None

    KernelProvisionerFactory.provisioners["e2b-prestart"] = EntryPoint(
        "e2b-prestart", "__main__:PrestartProvisioner", KernelProvisionerFactory.GROUP_NAME
    )
    sys.argv.append("--KernelProvisionerFactory.default_provisioner_name=e2b-prestart")

from jupyter_server.serverapp import ServerApp, launch_new_instance  # noqa: E402

_start_server = ServerApp.start


def _start_with_gc(self):
    gc.enable()
    _start_server(self)


ServerApp.start = _start_with_gc
launch_new_instance()
