"""E2B's official Python SDK (`e2b`, `e2b-code-interpreter` from PyPI) in debug mode against the
rig: the flows a user runs first. In debug mode the SDK talks to localhost:49983 (envd) and
localhost:49999 (code interpreter), so this runs in a network namespace of its own. Each flow
prints `ok NAME`; the first failure raises, and the test shows what was printed.
"""

import base64
import sys
import threading
import time

from e2b import CommandExitException
from e2b_code_interpreter import Sandbox


def check(name, cond, detail=""):
    if not cond:
        raise AssertionError(f"{name}: {detail}")
    print(f"ok {name}", flush=True)


sbx = Sandbox.create(debug=True)

# run_code: a result, stdout, an error, a chart
ex = sbx.run_code("print('hello')\n6 * 7")
check("run_code result", ex.text == "42" and ex.logs.stdout == ["hello\n"], repr(ex))
ex = sbx.run_code("1/0")
check("run_code error", ex.error is not None and ex.error.name == "ZeroDivisionError", repr(ex))
ex = sbx.run_code(
    "import matplotlib.pyplot as plt\n"
    "fig, ax = plt.subplots()\n"
    "ax.bar(['a', 'b'], [1, 2])\n"
    "ax.set_title('T')\n"
    "plt.show()"
)
chart = ex.results[0].chart if ex.results else None
png = ex.results[0].png if ex.results else None
check("run_code chart", chart is not None and chart.title == "T" and png is not None, repr(ex))
check("run_code png", base64.b64decode(png)[:4] == b"\x89PNG")
seen = []
sbx.run_code("print('a'); print('b', flush=True)", on_stdout=lambda m: seen.append(m.line))
check("run_code on_stdout", "".join(seen) == "a\nb\n", repr(seen))
ex = sbx.run_code("import os; os.environ.get('RIG_ENV')", envs={"RIG_ENV": "per-call"})
check("run_code envs", ex.text == "per-call", repr(ex))

# contexts
ctx = sbx.create_code_context(cwd="/tmp")
ex = sbx.run_code("import os; os.getcwd()", context=ctx)
check("context cwd", ex.text == "/tmp", repr(ex))
sbx.run_code("x = 5", context=ctx)
check("context state", sbx.run_code("x", context=ctx).text == "5")
check("context listed", any(c.id == ctx.id for c in sbx.list_code_contexts()))
sbx.restart_code_context(ctx)
check("context restarted", sbx.run_code("x", context=ctx).error is not None)
sbx.remove_code_context(ctx)
check("context removed", all(c.id != ctx.id for c in sbx.list_code_contexts()))
ex = sbx.run_code("echo $((6 * 7))", language="bash")
check("bash language", "42" in "".join(ex.logs.stdout) or ex.text == "42", repr(ex))

# files
info = sbx.files.write("/home/user/dir/a.txt", "alpha")
check("files write", info.path == "/home/user/dir/a.txt", repr(info))
check("files read", sbx.files.read("/home/user/dir/a.txt") == "alpha")
check("files read relative", sbx.files.read("dir/a.txt") == "alpha")
sbx.files.write_files([{"path": "dir/b.bin", "data": b"\x00\x01"}, {"path": "dir/sub/c.txt", "data": "c"}])
check("files read bytes", bytes(sbx.files.read("dir/b.bin", format="bytes")) == b"\x00\x01")
names = sorted(e.name for e in sbx.files.list("/home/user/dir"))
check("files list", names == ["a.txt", "b.bin", "sub"], repr(names))
deep = sorted(e.path for e in sbx.files.list("/home/user/dir", depth=2))
check("files list depth", "/home/user/dir/sub/c.txt" in deep, repr(deep))
check("files exists", sbx.files.exists("dir/a.txt") and not sbx.files.exists("dir/nope"))
check("files get_info", sbx.files.get_info("dir/a.txt").size == 5)
sbx.files.rename("dir/a.txt", "dir/moved/a.txt")
check("files rename", sbx.files.read("dir/moved/a.txt") == "alpha")
check("files make_dir", sbx.files.make_dir("dir/new") and not sbx.files.make_dir("dir/new"))
sbx.files.remove("dir/moved")
check("files remove", not sbx.files.exists("dir/moved"))
events = []
handle = sbx.files.watch_dir("/home/user/dir", recursive=True)
sbx.files.write("dir/sub/watched.txt", "w")
deadline = time.time() + 10
while time.time() < deadline and not any(e.name.endswith("watched.txt") for e in events):
    events.extend(handle.get_new_events())
    time.sleep(0.1)
handle.stop()
check("files watch", any(e.name == "sub/watched.txt" for e in events), repr(events))

# commands
r = sbx.commands.run("echo out; echo err >&2")
check("commands run", r.stdout == "out\n" and r.stderr == "err\n" and r.exit_code == 0, repr(r))
try:
    sbx.commands.run("exit 3")
    check("commands exit code", False, "no exception")
except CommandExitException as e:
    check("commands exit code", e.exit_code == 3)
bg = sbx.commands.run("for i in 1 2 3; do echo $i; sleep 0.2; done", background=True)
check("commands background listed", any(p.pid == bg.pid for p in sbx.commands.list()))
r = bg.wait()
check("commands background", r.stdout == "1\n2\n3\n", repr(r))
cat = sbx.commands.run("cat", background=True, stdin=True)
sbx.commands.send_stdin(cat.pid, "fed\n")
sbx.commands.close_stdin(cat.pid)
r = cat.wait()
check("commands stdin", r.stdout == "fed\n", repr(r))
sleeper = sbx.commands.run("sleep 60", background=True)
check("commands kill", sbx.commands.kill(sleeper.pid))
try:
    sleeper.wait()
    check("commands killed", False, "no exception")
except CommandExitException as e:
    check("commands killed", e.exit_code != 0)
bg = sbx.commands.run("sleep 0.5; echo later", background=True)
again = sbx.commands.connect(bg.pid)
check("commands connect", again.wait().stdout == "later\n")

# pty
from e2b import PtySize  # noqa: E402

out = bytearray()
lock = threading.Lock()


def on_data(data):
    with lock:
        out.extend(data)


term = sbx.pty.create(PtySize(rows=24, cols=80))
sbx.pty.resize(term.pid, PtySize(rows=30, cols=100))
sbx.pty.send_stdin(term.pid, b"stty size; echo pty-$((40 + 2)); exit\n")
result = term.wait(on_pty=on_data)
text = bytes(out).decode(errors="replace")
check("pty", "pty-42" in text and "30 100" in text, repr(text))

print("all ok", flush=True)
sys.exit(0)
