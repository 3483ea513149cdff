# Runs one shell command for e2b-blocking's `sandbox.commands()`, inside a private kernel.
#
# The process's stdout and stderr become this cell's stdout and stderr stream messages (decoded
# as UTF-8 with errors="replace"), so they travel, are numbered and are replayed exactly like
# run_code output. Its start (pid) and end (exit code, and whether it was killed) are published
# as display data of a private MIME type. The timeout is enforced here, in the sandbox, by
# killing the process group; a kernel interrupt (KeyboardInterrupt) kills it too.
def _report(event, **fields):
    # A command's start, end or failure, after what it printed so far: a display message of a
    # private MIME type that the client's driver numbers and replays like output.
    import sys

    from IPython.display import publish_display_data

    fields["event"] = event
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    publish_display_data({"application/x-e2b-command+json": fields})


def _e2b_command(spec):
    import codecs
    import os
    import selectors
    import signal
    import subprocess
    import sys
    import time

    cwd = spec.get("cwd") or None
    if cwd is not None:
        cwd = os.path.expanduser(cwd)
        if not os.path.exists(cwd):
            return _report("error", kind="not_found", path=spec["cwd"])
        if not os.path.isdir(cwd):
            return _report("error", kind="not_a_directory", path=spec["cwd"])
    # The command's own env vars are in os.environ for this cell: the kernel's hook set them
    # from the request's metadata.
    env = dict(os.environ)
    shell = "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"
    # Stdin, when asked for, is a FIFO: this cell cannot receive messages while it runs, so the
    # client writes to the FIFO from a cell in another kernel. This cell holds a writer open so
    # the command sees no EOF between writes; a byte on the control FIFO (`ctl`) closes it.
    fifo_dir = None
    keep = ctl = ctl_keep = None
    stdin = subprocess.DEVNULL

    def close_fifos():
        for fd in (keep, ctl, ctl_keep, stdin):
            if isinstance(fd, int) and fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        if fifo_dir is not None:
            import shutil

            shutil.rmtree(fifo_dir, ignore_errors=True)

    if spec.get("stdin"):
        import tempfile

        try:
            fifo_dir = tempfile.mkdtemp(prefix="e2b-stdin-")
            data_path = os.path.join(fifo_dir, "in")
            ctl_path = os.path.join(fifo_dir, "ctl")
            os.mkfifo(data_path, 0o600)
            os.mkfifo(ctl_path, 0o600)
            stdin = os.open(data_path, os.O_RDONLY | os.O_NONBLOCK)
            keep = os.open(data_path, os.O_WRONLY)
            os.set_blocking(stdin, True)
            ctl = os.open(ctl_path, os.O_RDONLY | os.O_NONBLOCK)
            # Held so that `ctl` never reads EOF (and never spins) between writers.
            ctl_keep = os.open(ctl_path, os.O_WRONLY)
        except OSError as e:
            close_fifos()
            return _report("error", kind="os", message="stdin: " + str(e))
    try:
        proc = subprocess.Popen(
            [shell, "-c", spec["cmd"]],
            cwd=cwd,
            env=env,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
    except PermissionError as e:
        close_fifos()
        return _report("error", kind="permission_denied", path=spec.get("cwd") or shell, message=str(e))
    except OSError as e:
        close_fifos()
        return _report("error", kind="os", message=str(e))
    # A command that is not `background` dies with this kernel: a Jupyter server shutting the
    # kernel down kills the kernel's process group, not the command's own session.
    guard = None if spec.get("background") else _guard(proc.pid)
    if isinstance(stdin, int) and stdin >= 0:
        # Only the command reads the FIFO: once it (and its children) are gone, a writer's
        # open fails with ENXIO instead of bytes vanishing into a pipe nobody reads.
        os.close(stdin)
        stdin = None

    def kill_group():
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass

    timeout = spec.get("timeout")
    deadline = None if timeout is None else time.monotonic() + timeout
    outcome = "exited"
    code = None
    sel = selectors.DefaultSelector()
    outs = {
        proc.stdout.fileno(): [sys.stdout, codecs.getincrementaldecoder("utf-8")("replace")],
        proc.stderr.fileno(): [sys.stderr, codecs.getincrementaldecoder("utf-8")("replace")],
    }

    # Flushing every read would make one message per read: a chatty command then passes the
    # server's IOPub rate limit (1000 msgs/s by default), which drops output. At most one
    # flush per stream every 50 ms; ipykernel flushes what is left within its own 0.2 s.
    flushed = {}

    log = None

    def emit(fd, data, final=False):
        out, decoder = outs[fd]
        if data and log is not None:
            log.append(b"o" if out is sys.stdout else b"e", data)
        text = decoder.decode(data, final)
        if text:
            out.write(text)
            now = time.monotonic()
            if final or now - flushed.get(fd, 0.0) >= 0.05:
                out.flush()
                flushed[fd] = now

    # Everything from here on is inside the try, so that a kill (KeyboardInterrupt) landing at
    # any point, even while the start record is being sent, still kills the process group.
    registry = None
    try:
        try:
            log = _Log.create(proc.pid)
            registry = _register(proc.pid, spec["cmd"], cwd, fifo_dir)
            for fd in outs:
                sel.register(fd, selectors.EVENT_READ)
            if ctl is not None:
                sel.register(ctl, selectors.EVENT_READ)
            _report("start", pid=proc.pid, stdin=fifo_dir)
            exited_at = None
            while any(fd in outs for fd in sel.get_map()):
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    outcome, deadline = "timeout", None
                    kill_group()
                if exited_at is None and proc.poll() is not None:
                    exited_at = now
                if exited_at is not None:
                    # The shell is gone: take what is left in the pipes, but do not wait for a
                    # background child that still holds them.
                    wait = 0.0 if now - exited_at < 2.0 else None
                    if wait is None:
                        break
                elif deadline is None:
                    wait = 0.25
                else:
                    wait = max(0.0, min(0.25, deadline - now))
                ready = sel.select(wait)
                if not ready and exited_at is not None:
                    break
                for key, _ in ready:
                    if key.fd == ctl:
                        try:
                            os.read(ctl, 64)
                        except BlockingIOError:
                            continue
                        sel.unregister(ctl)
                        os.close(keep)
                        keep = None
                        continue
                    data = os.read(key.fd, 65536)
                    if data:
                        emit(key.fd, data)
                    else:
                        sel.unregister(key.fd)
                        emit(key.fd, b"", True)
            for fd in list(sel.get_map()):
                if fd in outs:
                    emit(fd, b"", True)
            while code is None:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    outcome, deadline = "timeout", None
                    kill_group()
                try:
                    code = proc.wait(0.25 if deadline is None else max(0.0, min(0.25, deadline - now)))
                except subprocess.TimeoutExpired:
                    pass
        except KeyboardInterrupt:
            if spec.get("background") and code is None and proc.poll() is None:
                # A background command outlives its runner: a Jupyter server interrupts a
                # kernel it shuts down. The client kills one by pid, never by interrupt.
                outcome = "detached"
                _drain(proc)
            else:
                outcome = "killed"
    finally:
        if code is None and outcome != "detached":
            kill_group()
            while code is None:
                try:
                    code = proc.wait()
                except KeyboardInterrupt:
                    pass
        sel.close()
        close_fifos()
        if guard is not None:
            _release_guard(guard)
        if log is not None:
            log.finish(code, outcome)
        if registry is not None and outcome != "detached":
            try:
                os.remove(registry)
            except OSError:
                pass
        proc.stdout.close()
        proc.stderr.close()
    _report("exit", exit_code=code, outcome=outcome)


def _registry_dir():
    # One directory per server root, so that sandboxes sharing a /tmp list only their own.
    # The helper kernel (src/kernel/helper.py) computes the same path.
    import hashlib
    import os
    import tempfile

    root = hashlib.sha256(os.getcwd().encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), "e2b-blocking-commands-" + root)


def _start_time(pid):
    # The process's start time in clock ticks (field 22 of /proc/<pid>/stat), so that a
    # record is never matched to another process that reused its pid.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _register(pid, cmd, cwd, stdin_dir=None):
    # Records a running command for `commands().list()`; best effort: listing is not worth
    # failing a command over.
    import datetime
    import json
    import os

    try:
        d = _registry_dir()
        os.makedirs(d, mode=0o700, exist_ok=True)
        path = os.path.join(d, "%d.json" % pid)
        record = {
            "pid": pid,
            "cmd": cmd,
            "cwd": os.path.abspath(cwd or os.getcwd()),
            "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "start_time": _start_time(pid),
            "stdin": stdin_dir,
        }
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.replace(path + ".tmp", path)
        return path
    except Exception:
        return None


def _drain(proc):
    # Hands a detached command's output pipes to two `cat`s in a session of their own, so
    # that its writes neither fail nor block once this kernel is gone; the output is dropped.
    import subprocess

    for pipe in (proc.stdout, proc.stderr):
        try:
            subprocess.Popen(
                ["cat"],
                stdin=pipe,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
            )
        except OSError:
            pass


def _guard(pgid):
    # A shell in a session of its own that kills the command's process group when this
    # kernel's end of its stdin closes without the "done" line: the kernel died or was shut
    # down while the command ran.
    import subprocess

    try:
        return subprocess.Popen(
            ["/bin/sh", "-c", 'read -r x; [ "$x" = done ] || kill -9 -"$1" 2>/dev/null', "sh", str(pgid)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    except OSError:
        return None


def _release_guard(guard):
    try:
        guard.stdin.write(b"done\n")
        guard.stdin.close()
        guard.wait(5)
    except Exception:
        pass


# Each command's output is also kept in a bounded ring of files, so that `commands().connect`
# can replay what it printed since it started, from another kernel, then follow it live: the
# directory `<registry>/<pid>-<start_time>.out` holds segments `00000000`, `00000001`, ... of
# at most SEGMENT bytes, the last KEEP of them; each record is a tag (o: stdout, e: stderr,
# x: exit, JSON), a 4-byte big-endian length and the bytes. `done` marks a finished command.
_SEGMENT = 1 << 20
_KEEP = 8
# Finished commands' logs are kept this long for a late connect, then removed (by the next
# command that starts or ends): up to 8 MiB each on the sandbox's disk.
_LOG_TTL = 60.0


class _Log:
    def __init__(self, path):
        self.path = path
        self.n = 0
        self.size = 0
        self.f = None

    @staticmethod
    def create(pid):
        import os

        try:
            d = _registry_dir()
            os.makedirs(d, mode=0o700, exist_ok=True)
            _sweep_logs(d)
            path = os.path.join(d, "%d-%s.out" % (pid, _start_time(pid)))
            os.makedirs(path, mode=0o700, exist_ok=True)
            log = _Log(path)
            log.f = open(os.path.join(path, "%08d" % 0), "ab", buffering=0)
            return log
        except Exception:
            return None

    def append(self, tag, data):
        import os

        try:
            if self.size >= _SEGMENT:
                self.f.close()
                self.n += 1
                self.size = 0
                self.f = open(os.path.join(self.path, "%08d" % self.n), "ab", buffering=0)
                try:
                    os.remove(os.path.join(self.path, "%08d" % (self.n - _KEEP)))
                except OSError:
                    pass
            record = tag + len(data).to_bytes(4, "big") + data
            self.f.write(record)
            self.size += len(record)
        except Exception:
            pass

    def finish(self, code, outcome):
        import json
        import os

        self.append(b"x", json.dumps({"exit_code": code, "outcome": outcome}).encode())
        try:
            self.f.close()
            open(os.path.join(self.path, "done"), "w").close()
            _sweep_logs(os.path.dirname(self.path))
        except Exception:
            pass


def _sweep_logs(d):
    import os
    import shutil
    import time

    now = time.time()
    for name in os.listdir(d):
        if not name.endswith(".out"):
            continue
        path = os.path.join(d, name)
        try:
            if now - os.stat(path).st_mtime < _LOG_TTL:
                continue
            pid = int(name.split("-", 1)[0])
            if os.path.exists(os.path.join(path, "done")) or not os.path.exists(
                os.path.join(d, "%d.json" % pid)
            ):
                shutil.rmtree(path, ignore_errors=True)
        except (OSError, ValueError):
            pass


def _e2b_follow(spec):
    # Replays a command's output from its log, then follows it until its exit record: the
    # cell of `commands().connect(pid)`. A kernel interrupt only stops following.
    import codecs
    import glob
    import json
    import os
    import sys
    import time

    pid = int(spec["pid"])
    d = _registry_dir()
    record = None
    try:
        with open(os.path.join(d, "%d.json" % pid)) as f:
            record = json.load(f)
        if record.get("start_time") is not None and record["start_time"] != _start_time(pid):
            record = None
    except (OSError, ValueError):
        record = None
    if record is not None:
        path = os.path.join(d, "%d-%s.out" % (pid, record.get("start_time")))
    else:
        # Ended lately: its log is still there (the newest one for this pid).
        done = [p for p in glob.glob(os.path.join(d, "%d-*.out" % pid)) if os.path.exists(os.path.join(p, "done"))]
        path = max(done, key=os.path.getmtime) if done else None
    if path is None or not os.path.isdir(path):
        return _report("error", kind="process_not_found", path="pid %d" % pid)
    _report("start", pid=pid, stdin=(record or {}).get("stdin"))

    outs = {
        b"o": [sys.stdout, codecs.getincrementaldecoder("utf-8")("replace"), 0.0],
        b"e": [sys.stderr, codecs.getincrementaldecoder("utf-8")("replace"), 0.0],
    }

    def segments():
        return sorted(int(n) for n in os.listdir(path) if n.isdigit())

    state = {"buf": b"", "exit": None}

    def consume(chunk):
        buf = state["buf"] + chunk
        while len(buf) >= 5 and state["exit"] is None:
            size = int.from_bytes(buf[1:5], "big")
            if len(buf) < 5 + size:
                break
            tag, data, buf = buf[:1], buf[5:5 + size], buf[5 + size:]
            if tag == b"x":
                state["exit"] = json.loads(data.decode())
                break
            out = outs.get(tag)
            if out is None:
                continue
            text = out[1].decode(data)
            if text:
                out[0].write(text)
                now = time.monotonic()
                if now - out[2] >= 0.05:
                    out[0].flush()
                    out[2] = now
        state["buf"] = buf

    try:
        present = segments()
        n = present[0] if present else 0
        f = None
        idle_since = time.monotonic()
        while state["exit"] is None:
            if f is None:
                try:
                    f = open(os.path.join(path, "%08d" % n), "rb")
                except FileNotFoundError:
                    later = [s for s in segments() if s > n]
                    if later:
                        # Rotated away before it was read: the ring kept only the newest.
                        _report("truncated", segments=later[0] - n)
                        n, state["buf"] = later[0], b""
                        continue
            chunk = f.read(1 << 20) if f is not None else b""
            if chunk:
                consume(chunk)
                idle_since = time.monotonic()
                continue
            if f is not None and os.path.exists(os.path.join(path, "%08d" % (n + 1))):
                # The writer moved on; what it wrote here before that is read first.
                consume(f.read())
                f.close()
                f, n = None, n + 1
                continue
            for out in outs.values():
                out[0].flush()
            if time.monotonic() - idle_since > 10.0:
                idle_since = time.monotonic()
                if _start_time(pid) is None and not os.path.exists(os.path.join(path, "done")):
                    # The process has been gone for a while and its runner never wrote the
                    # end: the runner's kernel died with it.
                    consume(f.read() if f is not None else b"")
                    if state["exit"] is None:
                        return _report("error", kind="os", message="the command's runner ended without reporting its exit")
            time.sleep(0.02)
    except KeyboardInterrupt:
        return _report("detached")
    exit_record = state["exit"]
    for out in outs.values():
        text = out[1].decode(b"", True)
        if text:
            out[0].write(text)
    _report("exit", exit_code=exit_record.get("exit_code"), outcome=exit_record.get("outcome", "exited"))


def _install():
    import sys
    import types

    mod = types.ModuleType("__e2b_command")
    mod.run = _e2b_command
    mod.follow = _e2b_follow
    sys.modules["__e2b_command"] = mod


_install()
