# Writes to a command's stdin for e2b-blocking's `CommandHandle::send_stdin` and `close_stdin`,
# from a private kernel other than the command's (which is busy running it): the command
# runner (runner.py) made a directory of FIFOs, `in` for the bytes and `ctl` for the close.
# A FIFO without a reader, or one removed, means the command is gone: "stdin_closed". The
# result is base64 of a JSON object, read back through `user_expressions`.


def write(path, data):
    import base64
    import errno
    import json
    import os

    def out(result):
        return base64.b64encode(json.dumps(result).encode()).decode("ascii")

    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as e:
        if e.errno in (errno.ENXIO, errno.ENOENT):
            return out({"error": "stdin_closed"})
        raise
    try:
        os.set_blocking(fd, True)
        view = memoryview(base64.b64decode(data))
        while view:
            view = view[os.write(fd, view):]
    except BrokenPipeError:
        return out({"error": "stdin_closed"})
    finally:
        os.close(fd)
    return out({"ok": {}})


def _install():
    import sys
    import types

    mod = types.ModuleType("__e2b_stdin")
    mod.write = write
    sys.modules["__e2b_stdin"] = mod


_install()
