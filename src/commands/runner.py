# Runs one shell command for e2b-blocking's `sandbox.commands()`, inside a private kernel.
#
# The process's stdout and stderr become this cell's stdout and stderr stream messages (decoded
# as UTF-8 with errors="replace"), so they travel, are numbered and are replayed exactly like
# run_code output. Its start (pid) and end (exit code, and whether it was killed) are published
# as display data of a private MIME type. The timeout is enforced here, in the sandbox, by
# killing the process group; a kernel interrupt (KeyboardInterrupt) kills it too.
def _e2b_command(spec):
    import codecs
    import os
    import selectors
    import signal
    import subprocess
    import sys
    import time

    from IPython.display import publish_display_data

    def report(event, **fields):
        fields["event"] = event
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        publish_display_data({"application/x-e2b-command+json": fields})

    cwd = spec.get("cwd") or None
    if cwd is not None:
        cwd = os.path.expanduser(cwd)
        if not os.path.exists(cwd):
            return report("error", kind="not_found", path=spec["cwd"])
        if not os.path.isdir(cwd):
            return report("error", kind="not_a_directory", path=spec["cwd"])
    env = dict(os.environ)
    env.update(spec.get("envs") or {})
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
            return report("error", kind="os", message="stdin: " + str(e))
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
        return report("error", kind="permission_denied", path=spec.get("cwd") or shell, message=str(e))
    except OSError as e:
        close_fifos()
        return report("error", kind="os", message=str(e))
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

    def emit(fd, data, final=False):
        out, decoder = outs[fd]
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
            registry = _register(proc.pid, spec["cmd"], cwd)
            for fd in outs:
                sel.register(fd, selectors.EVENT_READ)
            if ctl is not None:
                sel.register(ctl, selectors.EVENT_READ)
            report("start", pid=proc.pid, stdin=fifo_dir)
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
            outcome = "killed"
    finally:
        if code is None:
            kill_group()
            while code is None:
                try:
                    code = proc.wait()
                except KeyboardInterrupt:
                    pass
        sel.close()
        close_fifos()
        if registry is not None:
            try:
                os.remove(registry)
            except OSError:
                pass
        proc.stdout.close()
        proc.stderr.close()
    report("exit", exit_code=code, outcome=outcome)


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


def _register(pid, cmd, cwd):
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
        }
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.replace(path + ".tmp", path)
        return path
    except Exception:
        return None


def _install():
    import sys
    import types

    mod = types.ModuleType("__e2b_command")
    mod.run = _e2b_command
    sys.modules["__e2b_command"] = mod


_install()
