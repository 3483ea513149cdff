# The local sandbox's jupyter_server config (server.rs writes it to the server's config dir,
# followed by terminals.py); jupyter_server runs it with its config object `c` in scope. It
# lifts the IOPub rate limits (which would otherwise drop large output), lets the contents API
# serve dotfiles and delete for good, finds kernel specs without importing IPython, and kills
# the server and its kernels if the SDK's process dies without running `Drop`.
import os
import signal
import threading
import time

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_core.paths import jupyter_path
from traitlets import default
c.ZMQChannelsWebsocketConnection.limit_rate = False
c.FileContentsManager.delete_to_trash = False
# Users write `.env` and other dotfiles; the contents API refuses them by default.
c.ContentsManager.allow_hidden = True
# `files().remove(dir)` removes a directory with its contents, as `rm -r` would.
c.FileContentsManager.always_delete_dir = True
c.ServerApp.open_browser = False
# Notice a dead kernel within half a second instead of three, so in-flight calls fail fast.
c.KernelRestarter.time_to_dead = 0.5


class _KernelSpecManager(KernelSpecManager):
    # The same directories, but KernelSpecManager's own default imports all of IPython for the
    # one of them it takes from IPYTHONDIR: ~40 ms of the first kernelspecs request, which every
    # sandbox start waits for. The local sandbox always sets IPYTHONDIR.
    @default("kernel_dirs")
    def _kernel_dirs_default(self):
        ipython_dir = os.environ.get("IPYTHONDIR")
        if not ipython_dir:
            return super()._kernel_dirs_default()
        ipython_dir = os.path.normpath(os.path.expanduser(ipython_dir))
        return jupyter_path("kernels") + [os.path.join(ipython_dir, "kernels")]


c.ServerApp.kernel_spec_manager_class = _KernelSpecManager

# When a client reconnects with the same session, jupyter_server closes the old handler, but
# frames already read from the old socket are still dispatched. The closed handler can no
# longer say which subprotocol it agreed, so a v1 binary frame is decoded as the legacy format,
# whose first four bytes then ask `struct` for ~100 million fields: the server's event loop
# stops for 5-40 s and every kernel's connection stalls. Drop those frames, as the server
# already does once the old connection is fully closed; the SDK recovers requests lost with
# a connection (the replay hook) either way.
try:
    from jupyter_server.services.kernels.connection.channels import (
        ZMQChannelsWebsocketConnection as _Conn,
    )

    _incoming = _Conn.handle_incoming_message

    def _handle_incoming_message(self, msg):
        if getattr(self.websocket_handler, "ws_connection", None) is None:
            self.log.warning("dropped a message that arrived on a replaced websocket")
            return None
        return _incoming(self, msg)

    _Conn.handle_incoming_message = _handle_incoming_message
except Exception as _e:
    print(f"e2b-blocking: replaced-websocket guard not installed: {_e}")
_parent = int(os.environ.get("E2B_BLOCKING_PARENT_PID", "0") or 0)

def _proc_table():
    # (pid, parent pid, session id) of every process the server can see.
    table = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                table.append((int(d), int(fields[1]), int(fields[3])))
            except Exception:
                pass
    return table

def _descendants(root):
    kids = {}
    for pid, ppid, _session in _proc_table():
        kids.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out

def _watch_parent():
    while True:
        time.sleep(0.5)
        if os.getppid() != _parent:
            for pid in _descendants(os.getpid()):
                try:
                    os.kill(pid, signal.SIGKILL)
                except Exception:
                    pass
            os.killpg(0, signal.SIGKILL)

if _parent:
    threading.Thread(target=_watch_parent, daemon=True, name="e2b-parent-watch").start()
