"""Quick start for the C ABI from Python, with nothing but ctypes.

    cargo build --release -p e2b-blocking-ffi
    python3 ffi/examples/python/quickstart.py [path/to/libe2b_blocking_ffi.so]

The library path defaults to $E2B_BLOCKING_LIB, else target/release/libe2b_blocking_ffi.so.
A local sandbox computes a value, streams printed output through a callback, shows how a
callback stops a run, writes and reads a file, runs a shell command, and is destroyed. Every
call is checked: a failure raises E2bError.
"""

import ctypes
import json
import os
import sys

# e2b_error_code_t (include/e2b_blocking.h); numbers never change, new ones are only added.
E2B_OK = 0
E2B_ERR_NULL_ARG = 1
E2B_ERR_INVALID_UTF8 = 2
E2B_ERR_INVALID_ARGUMENT = 3
E2B_ERR_TIMEOUT = 4
E2B_ERR_SANDBOX_NOT_FOUND = 5
E2B_ERR_CONNECTION_LOST = 6
E2B_ERR_AUTHENTICATION = 7
E2B_ERR_KERNEL = 8
E2B_ERR_HTTP = 9
E2B_ERR_PROTOCOL = 10
E2B_ERR_CLOSED = 11
E2B_ERR_CALLBACK = 12
E2B_ERR_PANIC = 13
E2B_ERR_UNSUPPORTED = 14
E2B_ERR_SETUP = 15
E2B_ERR_RATE_LIMITED = 16
E2B_ERR_TRANSPORT = 17
E2B_ERR_FILE_NOT_FOUND = 18
E2B_ERR_NOT_A_DIRECTORY = 19
E2B_ERR_PERMISSION_DENIED = 20
E2B_ERR_IS_A_DIRECTORY = 21
E2B_ERR_OUTPUT_LOST = 22
E2B_ERR_IO = 23
E2B_ERR_COMMAND_FAILED = 24
E2B_ERR_OTHER = 99

# int32_t (*e2b_output_fn)(const char *data, size_t len, void *user_data)
OUTPUT_FN = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)


class RunCallbacks(ctypes.Structure):
    """e2b_run_callbacks_t"""

    _fields_ = [
        ("on_stdout", OUTPUT_FN),
        ("on_stderr", OUTPUT_FN),
        ("on_result", OUTPUT_FN),
        ("on_error", OUTPUT_FN),
        ("user_data", ctypes.c_void_p),
    ]


class E2bError(Exception):
    """A call returned something other than E2B_OK."""

    def __init__(self, code, name, message):
        super().__init__(f"{name}: {message}")
        self.code = code


def load(path):
    lib = ctypes.CDLL(path)
    sandbox = ctypes.c_uint64
    out_str = ctypes.POINTER(ctypes.c_void_p)  # char **: kept as a raw pointer to free it
    out_bytes = ctypes.POINTER(ctypes.POINTER(ctypes.c_uint8))  # uint8_t **
    signatures = {
        "e2b_version": ([], ctypes.c_char_p),
        "e2b_error_code_name": ([ctypes.c_int32], ctypes.c_char_p),
        "e2b_last_error_code": ([], ctypes.c_int32),
        "e2b_last_error_message": ([], ctypes.c_char_p),
        "e2b_string_free": ([ctypes.c_void_p], None),
        "e2b_sandbox_local": ([ctypes.c_char_p, ctypes.POINTER(sandbox)], ctypes.c_int32),
        "e2b_sandbox_destroy": ([sandbox], ctypes.c_int32),
        "e2b_run_code": ([sandbox, ctypes.c_char_p, out_str], ctypes.c_int32),
        "e2b_run": (
            [sandbox, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(RunCallbacks), out_str],
            ctypes.c_int32,
        ),
        "e2b_files_write": (
            [sandbox, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t],
            ctypes.c_int32,
        ),
        "e2b_files_read": (
            [sandbox, ctypes.c_char_p, out_bytes, ctypes.POINTER(ctypes.c_size_t)],
            ctypes.c_int32,
        ),
        "e2b_bytes_free": ([ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t], None),
        "e2b_commands_run": (
            [sandbox, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(RunCallbacks), out_str],
            ctypes.c_int32,
        ),
    }
    for name, (argtypes, restype) in signatures.items():
        fn = getattr(lib, name)
        fn.argtypes = argtypes
        fn.restype = restype
    return lib


class Sandbox:
    """A local sandbox; use it in a `with` block so it is always destroyed."""

    def __init__(self, lib, options=None):
        self.lib = lib
        self.handle = ctypes.c_uint64(0)
        opts = json.dumps(options).encode() if options is not None else None
        self._check(lib.e2b_sandbox_local(opts, ctypes.byref(self.handle)))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.destroy()

    def destroy(self):
        if self.handle.value:
            code = self.lib.e2b_sandbox_destroy(self.handle)
            self.handle = ctypes.c_uint64(0)
            self._check(code)

    def run_code(self, code):
        """The execution as a dict: results, logs, error, execution_count."""
        out = ctypes.c_void_p()
        self._check(self.lib.e2b_run_code(self.handle, code.encode(), ctypes.byref(out)))
        return self._take_json(out)

    def run(self, code, on_stdout=None, timeout_ms=None):
        """Streams stdout to on_stdout(text) -> bool; returning False stops the run."""

        def stdout(data, length, _user_data):
            try:
                keep_going = on_stdout(ctypes.string_at(data, length).decode("utf-8", "replace"))
                return 0 if keep_going is not False else 1
            except BaseException:  # never let an exception vanish inside ctypes
                return 2

        callbacks = RunCallbacks()
        if on_stdout is not None:
            callbacks.on_stdout = OUTPUT_FN(stdout)  # kept alive by `callbacks` for the call
        options = {} if timeout_ms is None else {"timeout_ms": timeout_ms}
        out = ctypes.c_void_p()
        code_ = self.lib.e2b_run(
            self.handle,
            code.encode(),
            json.dumps(options).encode(),
            ctypes.byref(callbacks),
            ctypes.byref(out),
        )
        self._check(code_)
        return self._take_json(out)

    def write_file(self, path, data):
        """Writes bytes (or text, as UTF-8) to a file of the sandbox."""
        if isinstance(data, str):
            data = data.encode()
        self._check(self.lib.e2b_files_write(self.handle, path.encode(), data, len(data)))

    def read_file(self, path):
        """A file of the sandbox, as bytes."""
        data = ctypes.POINTER(ctypes.c_uint8)()
        length = ctypes.c_size_t(0)
        self._check(
            self.lib.e2b_files_read(
                self.handle, path.encode(), ctypes.byref(data), ctypes.byref(length)
            )
        )
        try:
            return ctypes.string_at(data, length.value)
        finally:
            self.lib.e2b_bytes_free(data, length)

    def run_command(self, cmd, on_stdout=None, cwd=None, timeout_ms=None):
        """Runs a shell command: {"stdout", "stderr", "exit_code", "dropped"}. A non-zero exit
        code is data, not an exception; on_stdout(text) gets output as it arrives."""

        def stdout(data, length, _user_data):
            try:
                on_stdout(ctypes.string_at(data, length).decode("utf-8", "replace"))
                return 0
            except BaseException:  # never let an exception vanish inside ctypes
                return 2

        callbacks = RunCallbacks()
        if on_stdout is not None:
            callbacks.on_stdout = OUTPUT_FN(stdout)
        options = {}
        if cwd is not None:
            options["cwd"] = cwd
        if timeout_ms is not None:
            options["timeout_ms"] = timeout_ms
        out = ctypes.c_void_p()
        self._check(
            self.lib.e2b_commands_run(
                self.handle,
                cmd.encode(),
                json.dumps(options).encode(),
                ctypes.byref(callbacks),
                ctypes.byref(out),
            )
        )
        return self._take_json(out)

    def _take_json(self, out):
        try:
            return json.loads(ctypes.string_at(out.value).decode())
        finally:
            self.lib.e2b_string_free(out)

    def _check(self, code):
        if code != E2B_OK:
            name = self.lib.e2b_error_code_name(code).decode()
            message = self.lib.e2b_last_error_message().decode()
            raise E2bError(code, name, message)


def main():
    # ffi/examples/python/quickstart.py -> the workspace root, where target/ is.
    root = os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    )
    default = os.path.join(root, "target", "release", "libe2b_blocking_ffi.so")
    path = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("E2B_BLOCKING_LIB", default)
    lib = load(path)
    print("e2b-blocking", lib.e2b_version().decode())

    with Sandbox(lib, {"timeouts": {"execution_ms": 60000}}) as sbx:
        execution = sbx.run_code("x = 41\nx + 1")
        main_result = next(r for r in execution["results"] if r["is_main_result"])
        print("result:", main_result["text"])

        chunks = []
        sbx.run(
            "for i in range(3):\n    print(f'line {i}', flush=True)",
            on_stdout=lambda text: chunks.append(text) or True,
            timeout_ms=30000,
        )
        print("streamed:", "".join(chunks).split())

        # A callback that returns False stops the run; the kernel stays usable.
        try:
            sbx.run("import time\nprint('go', flush=True)\ntime.sleep(60)", on_stdout=lambda _: False)
        except E2bError as e:
            assert e.code == E2B_ERR_CALLBACK, e
            print("stopped by callback:", e)
        print("after stop:", sbx.run_code("'still here'")["results"][0]["text"])

        # Files: any bytes, NULs included; paths are relative to the sandbox root.
        sbx.write_file("data/blob.bin", b"bytes \x00 and text")
        print("read back:", sbx.read_file("data/blob.bin"))
        try:
            sbx.read_file("data/missing.txt")
        except E2bError as e:
            assert e.code == E2B_ERR_FILE_NOT_FOUND, e
            print("missing file:", lib.e2b_error_code_name(e.code).decode())

        # A shell command; its exit code is data.
        streamed = []
        result = sbx.run_command(
            "echo hi; echo err >&2; exit 3", on_stdout=streamed.append, timeout_ms=30000
        )
        print("command:", result)
        print("command streamed:", streamed)

        handle = sbx.handle.value
    # The handle is retired: using it again is an error code, not a crash.
    out = ctypes.c_void_p()
    code = lib.e2b_run_code(handle, b"1", ctypes.byref(out))
    assert code == E2B_ERR_CLOSED and not out.value, code
    print("after destroy:", lib.e2b_error_code_name(code).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
