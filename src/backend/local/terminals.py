# Appended to the local sandbox's jupyter_server config (after server.rs's SERVER_CONFIG): the
# terminals' shell, exactly-once terminal input across reconnects, output that a closing
# connection cannot hold back from the others, the shell's exit status, and a kill that ends
# everything in the terminal (below).
# terminado writes every `["stdin", text]` it reads, and a client cut off right after sending
# cannot tell whether it was read. A client may instead number its input,
# `["e2b_stdin", n, text]`: the terminal remembers the highest number it took and drops any
# number it already took, and every new connection is told that number right after terminado's
# own greeting, `["e2b_stdin_seq", n]`, so the client sends again exactly what did not arrive.
# Plain `stdin` and every other message are untouched; stock servers ignore `e2b_stdin`, and
# the SDK only uses it after a server announced support.
#
# The shell is bash, as E2B's own terminals start it, whatever the host's `$SHELL`:
# jupyter_server would start `$SHELL -l`, and `sh -l` where it is unset (always so in the
# isolated sandbox, whose environment is built from nothing), so the same code would meet a
# different shell from one machine to the next. It reads what a login shell reads, then puts
# the kernel's venv first on PATH (`terminal_rc.sh`, beside this config). Without bash,
# jupyter_server's choice stands.
import os as _os
import shutil as _shutil

_bash = _shutil.which("bash")
_rc = _os.path.join(_os.environ.get("JUPYTER_CONFIG_DIR", ""), "terminal_rc.sh")
if _bash and _os.path.isfile(_rc):
    c.ServerApp.terminado_settings = {"shell_command": [_bash, "--rcfile", _rc, "-i"]}
try:
    import json as _json

    from terminado.websocket import TermSocket as _TermSocket

    _term_open = _TermSocket.open
    _term_on_message = _TermSocket.on_message

    def _e2b_term_open(self, *args, **kwargs):
        _term_open(self, *args, **kwargs)
        if self.terminal is not None:
            self.send_json_message(["e2b_stdin_seq", getattr(self.terminal, "_e2b_stdin_seq", 0)])

    def _e2b_term_on_message(self, message):
        try:
            command = _json.loads(message)
        except Exception:
            command = None
        if isinstance(command, list) and len(command) == 3 and command[0] == "e2b_stdin":
            _, seq, text = command
            term = self.terminal
            if term is None or not isinstance(seq, int) or not isinstance(text, str):
                return None
            if seq <= getattr(term, "_e2b_stdin_seq", 0):
                return None
            # Taken now, before the write completes: the write runs on terminado's one I/O
            # thread, in order, whether or not this connection lives on.
            term._e2b_stdin_seq = seq
            return self.stdin_to_ptyproc(text)
        return _term_on_message(self, message)

    # terminado hands each PTY read to every client in turn, and a client whose websocket is
    # closing (a connection cut, its close not processed yet) raises from write_message: that
    # ended the loop, so the client that replaced it never got the chunk, though the chunk is
    # in the replay buffer. The SDK then sees output missing from the middle of the stream.
    # A closing client now misses the chunk alone.
    _term_on_pty_read = _TermSocket.on_pty_read

    def _e2b_term_on_pty_read(self, text):
        try:
            _term_on_pty_read(self, text)
        except Exception as e:
            self.log.debug("terminal output not sent to a closing websocket: %s", e)

    # terminado tells its clients only that the shell is gone (`["disconnect", 1]`). Its exit
    # status is known by then (terminado closed the PTY and reaped the shell just before), so
    # each client is told it first: `["e2b_exit", status, signal]`, one of them null. The same
    # loop as above calls every client in turn, so a closing one must not end it either.
    _term_on_pty_died = _TermSocket.on_pty_died

    def _e2b_term_on_pty_died(self):
        proc = getattr(self.terminal, "ptyproc", None)
        status = getattr(proc, "exitstatus", None)
        signal = getattr(proc, "signalstatus", None)
        try:
            if status is not None or signal is not None:
                self.send_json_message(["e2b_exit", status, signal])
        except Exception as e:
            self.log.debug("terminal exit status not sent to a closing websocket: %s", e)
        try:
            _term_on_pty_died(self)
        except Exception as e:
            self.log.debug("terminal end not sent to a closing websocket: %s", e)

    # terminado kills a terminal by signalling its shell alone. A job the shell was starting
    # as the hangup came can miss it (bash passes SIGHUP on to the jobs it knows of, and the
    # kernel to the terminal's foreground group, which the new job may not be yet): it lives
    # on with the PTY open, so terminado never reads the PTY's end, never tells its clients
    # and never forgets the terminal. After terminado's own signals, the rest of the shell's
    # session is killed. (`_proc_table` is the server config's, which this file follows.)
    import signal as _signal

    from terminado.management import PtyWithClients as _PtyWithClients

    _pty_terminate = _PtyWithClients.terminate

    async def _e2b_pty_terminate(self, force=False):
        done = await _pty_terminate(self, force)
        if force:
            session = self.ptyproc.pid
            for pid, _ppid, sid in _proc_table():  # noqa: F821 (the server config defines it)
                if sid == session:
                    try:
                        _os.kill(pid, _signal.SIGKILL)
                    except Exception:
                        pass
        return done

    _PtyWithClients.terminate = _e2b_pty_terminate
    _TermSocket.open = _e2b_term_open
    _TermSocket.on_message = _e2b_term_on_message
    _TermSocket.on_pty_read = _e2b_term_on_pty_read
    _TermSocket.on_pty_died = _e2b_term_on_pty_died
except Exception as _e:
    print(f"e2b-blocking: numbered terminal input not installed: {_e}")
