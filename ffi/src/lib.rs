//! The C ABI of e2b-blocking: the functions declared in `include/e2b_blocking.h`, built as
//! `libe2b_blocking_ffi.so` / `.a` (`cargo build --release -p e2b-blocking-ffi`).
//!
//! The header is generated from this crate by cbindgen (`tests/header.rs` checks it is up to
//! date), so the doc comments here are the C documentation. The rules every function keeps:
//!
//! - no panic crosses the boundary: each body runs in `error::guard`, which turns a panic
//!   into `E2B_ERR_PANIC`;
//! - NULL, a 0 handle and invalid UTF-8 give error codes, never undefined behaviour;
//! - sandboxes are integer ids in a registry, never pointers, so a destroyed or made-up handle
//!   gives `E2B_ERR_CLOSED` instead of a use-after-free;
//! - every string returned is owned by the caller and freed with `e2b_string_free`, every
//!   byte buffer with `e2b_bytes_free`.

mod error;
mod host;
mod options;

// Panics become E2B_ERR_PANIC and callbacks stop runs by unwinding: both need unwinding.
#[cfg(panic = "abort")]
compile_error!("the C ABI needs panic = \"unwind\" (the default)");

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

pub use error::E2bErrorCode;
use error::E2bErrorCode::*;
use error::{FfiError, guard, guard_infallible};
use options::{CommandJson, E2bJson, JupyterJson, LocalJson, RunJson};

use e2b_blocking::Sandbox;

/// A sandbox handle: an opaque, non-zero id. 0 is never a valid handle.
///
/// Thread safety: a handle may be used from any number of threads at once. Executions on the
/// same sandbox run one after another in its kernel. Handles are never reused: after
/// `e2b_sandbox_destroy()`, every call with the old value returns `E2B_ERR_CLOSED`.
pub type E2bSandbox = u64;

/// Receives one piece of streamed output during `e2b_run()` or `e2b_commands_run()`.
///
/// `data` points to `len` bytes followed by a NUL byte, so it can be used as a C string (the
/// bytes may themselves contain NUL if the program printed one). It is valid only until the
/// callback returns: copy what you want to keep. `user_data` is the value from
/// `e2b_run_callbacks_t`.
///
/// Return 0 to continue. Any other value abandons the call: no further callbacks are made, the
/// kernel is interrupted (for `e2b_commands_run()`, the command's process group is killed),
/// and the call returns `E2B_ERR_CALLBACK`.
///
/// Callbacks run on the thread that called `e2b_run()` or `e2b_commands_run()`, one at a time.
/// They must not unwind (C++ exceptions, `longjmp`) through the library, and must not start
/// another run on the same sandbox (it would wait for this one).
pub type E2bOutputFn =
    Option<unsafe extern "C" fn(data: *const c_char, len: usize, user_data: *mut c_void) -> i32>;

/// Streaming callbacks for `e2b_run()` and `e2b_commands_run()` (which uses `on_stdout` and
/// `on_stderr` only). Any of them may be NULL. Zero-initialise the struct
/// (`e2b_run_callbacks_t cb = {0};`) and set the ones you need.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct E2bRunCallbacks {
    /// Each chunk the code writes to stdout, as UTF-8 text.
    pub on_stdout: E2bOutputFn,
    /// Each chunk the code writes to stderr, as UTF-8 text.
    pub on_stderr: E2bOutputFn,
    /// Each rich result (`display()` output and the cell's value), as a JSON object with the
    /// same fields as the entries of the execution JSON's `results`.
    pub on_result: E2bOutputFn,
    /// The exception the code raised, as a JSON object `{"name", "value", "traceback"}`.
    pub on_error: E2bOutputFn,
    /// Passed unchanged to every callback; the library never dereferences it.
    pub user_data: *mut c_void,
}

// ----- the sandbox registry -----

static SANDBOXES: Mutex<BTreeMap<u64, Arc<Sandbox>>> = Mutex::new(BTreeMap::new());
static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

fn sandboxes() -> MutexGuard<'static, BTreeMap<u64, Arc<Sandbox>>> {
    // Nothing panics while holding the lock, but a poisoned map is still consistent.
    SANDBOXES.lock().unwrap_or_else(|p| p.into_inner())
}

fn register(sandbox: Sandbox) -> E2bSandbox {
    let handle = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed);
    sandboxes().insert(handle, Arc::new(sandbox));
    handle
}

/// What every constructor does around making its sandbox: `*out` is 0 until the sandbox is
/// registered, then its handle.
///
/// # Safety
/// `out` is NULL or valid for writes; `make` may read the caller's C strings.
unsafe fn create_into(
    out: *mut E2bSandbox,
    make: impl FnOnce() -> Result<Sandbox, FfiError>,
) -> E2bErrorCode {
    guard(|| {
        // SAFETY: forwarded from the caller.
        unsafe { clear_out(out, 0, "out")? };
        let handle = register(make()?);
        // SAFETY: checked non-NULL above.
        unsafe { out.write(handle) };
        Ok(())
    })
}

fn lookup(handle: E2bSandbox) -> Result<Arc<Sandbox>, FfiError> {
    if handle == 0 {
        return Err(FfiError::null("sandbox handle"));
    }
    sandboxes()
        .get(&handle)
        .cloned()
        .ok_or_else(|| not_live(handle))
}

fn not_live(handle: E2bSandbox) -> FfiError {
    FfiError::new(
        E2B_ERR_CLOSED,
        format!("sandbox handle {handle} is not live (destroyed, or never created)"),
    )
}

// ----- argument helpers -----

/// # Safety
/// `p` is NULL or points to a NUL-terminated string that stays valid for `'a`.
unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, FfiError> {
    if p.is_null() {
        return Err(FfiError::null(what));
    }
    // SAFETY: non-NULL and NUL-terminated, as the caller promises.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map_err(|e| {
        FfiError::new(
            E2B_ERR_INVALID_UTF8,
            format!("{what} is not valid UTF-8: {e}"),
        )
    })
}

/// Like [`str_arg`], but NULL is allowed and gives `None`.
///
/// # Safety
/// As for [`str_arg`].
unsafe fn opt_str_arg<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>, FfiError> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded from the caller.
        unsafe { str_arg(p, what) }.map(Some)
    }
}

/// Clears an out-parameter up front, so it holds a defined value whatever happens next.
///
/// # Safety
/// `out` is NULL or valid for writes of `T` and aligned.
unsafe fn clear_out<T>(out: *mut T, empty: T, what: &str) -> Result<(), FfiError> {
    if out.is_null() {
        return Err(FfiError::null(what));
    }
    // SAFETY: non-NULL, writable and aligned, as the caller promises.
    unsafe { out.write(empty) };
    Ok(())
}

/// A string handed to the caller, who frees it with `e2b_string_free`.
fn into_c_string(s: String) -> Result<*mut c_char, FfiError> {
    CString::new(s).map(CString::into_raw).map_err(|_| {
        FfiError::new(
            E2B_ERR_OTHER,
            "a returned string contained a NUL byte and cannot be passed to C",
        )
    })
}

fn to_json_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec())
}

// ----- version and errors -----

/// The library's version, e.g. `"0.1.0"`. A static string: do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn e2b_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The name of an error code, e.g. `"E2B_ERR_TIMEOUT"`, or `"E2B_ERR_OTHER"` for a number this
/// version does not know. A static string: do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn e2b_error_code_name(code: i32) -> *const c_char {
    let known = E2bErrorCode::ALL.into_iter().find(|c| *c as i32 == code);
    known.unwrap_or(E2B_ERR_OTHER).name().as_ptr().cast()
}

/// The code of the most recent fallible `e2b_*` call on this thread: `E2B_OK` after a success.
///
/// Every function that returns an `e2b_error_code_t` records its outcome for its thread; the
/// `e2b_last_error_*` functions, `e2b_version`, `e2b_error_code_name`, `e2b_string_free` and
/// `e2b_bytes_free` do not.
#[unsafe(no_mangle)]
pub extern "C" fn e2b_last_error_code() -> E2bErrorCode {
    guard_infallible(E2B_OK, error::last_code)
}

/// The message of the most recent fallible `e2b_*` call on this thread (UTF-8, never NULL;
/// `""` after a success).
///
/// Owned by the library: do not free it. It stays valid until the next call on this thread
/// that returns an `e2b_error_code_t`; copy it (or use `e2b_last_error_message_copy`) to keep
/// it longer.
#[unsafe(no_mangle)]
pub extern "C" fn e2b_last_error_message() -> *const c_char {
    guard_infallible(c"".as_ptr(), error::last_message_ptr)
}

/// Copies the last error message of this thread into `buf`, like `snprintf`: at most
/// `buf_len - 1` bytes and a terminating NUL (nothing when `buf_len` is 0; `buf` may then be
/// NULL). Returns the full message length without the NUL, so a return value `>= buf_len`
/// means the copy was truncated.
///
/// # Safety
/// `buf` must be valid for writes of `buf_len` bytes, or `buf_len` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_last_error_message_copy(buf: *mut c_char, buf_len: usize) -> usize {
    let copy = move |msg: &[u8]| {
        if !buf.is_null() && buf_len > 0 {
            let n = msg.len().min(buf_len - 1);
            // SAFETY: `buf` holds `buf_len > n` writable bytes, as the caller promises, and
            // cannot overlap the library's own message.
            unsafe {
                std::ptr::copy_nonoverlapping(msg.as_ptr(), buf.cast::<u8>(), n);
                buf.add(n).write(0);
            }
        }
        msg.len()
    };
    guard_infallible(0, move || error::with_last_message(copy).unwrap_or(0))
}

/// Frees a string returned by this library (execution JSON, ids, URLs). NULL is ignored.
///
/// # Safety
/// `s` must be NULL or a string this library returned that has not been freed yet. From any
/// thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_string_free(s: *mut c_char) {
    if s.is_null() {
        return;
    }
    guard_infallible((), move || {
        // SAFETY: `s` came from `CString::into_raw` in `into_c_string` and is freed once, as
        // the caller promises.
        drop(unsafe { CString::from_raw(s) });
    })
}

// ----- creating and destroying sandboxes -----

/// Starts a local sandbox: a `jupyter server` child process on 127.0.0.1 with a random token.
/// Blocks until its default Python kernel is ready (seconds; the very first use on a machine
/// also builds a Python venv, about 30 s).
///
/// `options_json` may be NULL or `""` for every default, or a JSON object with any of:
/// - `"python"`: path of a Python that has jupyter_server and ipykernel (default:
///   `$E2B_LOCAL_PYTHON`, else a venv the library builds once in the user's cache dir);
/// - `"packages"`: extra PyPI packages to make importable, e.g. `["numpy"]`;
/// - `"envs"`: `{"NAME": "value"}` environment variables of every context;
/// - `"timeouts"`: `{"connect_ms", "kernel_start_ms", "request_ms", "execution_ms",
///   "start_ms", "close_ms"}`, each a number of milliseconds; `"execution_ms": null` means
///   executions have no deadline.
///
/// Unknown keys are `E2B_ERR_INVALID_ARGUMENT`. On success `*out` is the new handle; on
/// failure it is 0. Destroy the handle with `e2b_sandbox_destroy()`: that kills the server.
///
/// # Safety
/// `options_json` is NULL or a NUL-terminated string; `out` is valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_sandbox_local(
    options_json: *const c_char,
    out: *mut E2bSandbox,
) -> E2bErrorCode {
    // SAFETY: forwarded from the caller.
    unsafe {
        create_into(out, || {
            let json = opt_str_arg(options_json, "options_json")?;
            let opts: LocalJson = options::parse(json, "local sandbox options")?;
            Ok(options::sandbox_builder(&opts.envs, &opts.timeouts, None)
                .local_with(opts.local_options())?)
        })
    }
}

/// Creates an E2B cloud sandbox from E2B's code-interpreter template and connects to its
/// Jupyter server; blocks until its default Python kernel is ready.
///
/// `options_json` may be NULL or `""` for every default, or a JSON object with any of:
/// - control plane: `"api_key"` (default `$E2B_API_KEY`), `"domain"` (`$E2B_DOMAIN`, else
///   `e2b.app`), `"api_url"`, `"sandbox_url"` (base URL of the sandbox's Jupyter server),
///   `"debug"` (E2B's local stack; `$E2B_DEBUG`), `"request_timeout_ms"` (60000);
/// - the sandbox: `"template"` (`code-interpreter-v1`), `"lifetime_ms"` (how long it lives,
///   300000), `"metadata"` and `"sandbox_envs"` (`{"NAME": "value"}` objects), `"secure"`
///   (true), `"auto_pause"`, `"allow_internet_access"`, `"allow_public_traffic"`,
///   `"kill_on_close"` (true: `e2b_sandbox_destroy()` kills the sandbox; false leaves it
///   running for a later connect);
/// - as for `e2b_sandbox_local()`: `"envs"` (environment variables of every context) and
///   `"timeouts"`;
/// - `"binary_framing"` (false): true makes kernel connections speak binary frames
///   instead of JSON, about 1.7 ms faster per round trip but exposed to a jupyter_server bug
///   that stalls the server for seconds after a reconnect (see the README).
///
/// Unknown keys are `E2B_ERR_INVALID_ARGUMENT`. A rejected API key is
/// `E2B_ERR_AUTHENTICATION`; an unknown template is `E2B_ERR_HTTP`. The API key is never
/// logged and no function returns it. On success `*out` is the new handle; on failure it is 0.
///
/// # Safety
/// `options_json` is NULL or a NUL-terminated string; `out` is valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_sandbox_create(
    options_json: *const c_char,
    out: *mut E2bSandbox,
) -> E2bErrorCode {
    // SAFETY: forwarded from the caller.
    unsafe {
        create_into(out, || {
            let json = opt_str_arg(options_json, "options_json")?;
            let opts: E2bJson = options::parse(json, "E2B sandbox options")?;
            let sandbox = options::sandbox_builder(&opts.envs, &opts.timeouts, opts.binary_framing)
                .e2b_with(&opts.config(), &opts.options())?;
            if let (Some(kill), Some(e2b)) = (opts.kill_on_close(), sandbox.as_e2b()) {
                e2b.set_kill_on_close(kill);
            }
            Ok(sandbox)
        })
    }
}

/// Uses an existing Jupyter server (jupyter_server, Jupyter Kernel Gateway, Enterprise
/// Gateway) as a sandbox. Checks that the server answers and accepts the token, then starts
/// the sandbox's default Python kernel on it; blocks until that kernel is ready.
///
/// - `url`: the server's base URL, `http://` or `https://`, without a query or fragment
///   (e.g. `"http://127.0.0.1:8888"`); anything else is `E2B_ERR_INVALID_ARGUMENT`.
/// - `token`: the server's token, sent as `Authorization: token <token>`; NULL or `""` sends
///   none. The library keeps it to itself: it is never logged, and no function returns it.
///   A token the server rejects is `E2B_ERR_AUTHENTICATION`.
/// - `options_json`: NULL or `""` for every default, or a JSON object with the keys of
///   `e2b_sandbox_local()` that apply to a server someone else runs: `"envs"` and `"timeouts"`
///   (`"python"` and `"packages"` are `E2B_ERR_INVALID_ARGUMENT` here, as are unknown keys),
///   plus `"binary_framing"` as for `e2b_sandbox_create()`.
///
/// An unreachable server is `E2B_ERR_TRANSPORT` (or `E2B_ERR_TIMEOUT` after
/// `"timeouts": {"connect_ms"}`). On success `*out` is the new handle; on failure it is 0.
/// `e2b_sandbox_destroy()` shuts down the kernels this sandbox started and leaves the server
/// and its other kernels alone. Files work where the server has the contents API (not on
/// Kernel Gateway), with paths relative to the server's root; commands work everywhere.
///
/// # Safety
/// `url` is a NUL-terminated string; `token` and `options_json` are NULL or NUL-terminated
/// strings; `out` is valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_sandbox_connect_jupyter(
    url: *const c_char,
    token: *const c_char,
    options_json: *const c_char,
    out: *mut E2bSandbox,
) -> E2bErrorCode {
    // SAFETY: forwarded from the caller.
    unsafe {
        create_into(out, || {
            let url = str_arg(url, "url")?;
            let token = opt_str_arg(token, "token")?;
            let json = opt_str_arg(options_json, "options_json")?;
            let opts: JupyterJson = options::parse(json, "Jupyter server options")?;
            Ok(
                options::sandbox_builder(&opts.envs, &opts.timeouts, opts.binary_framing)
                    .jupyter(url, token.unwrap_or(""))?,
            )
        })
    }
}

/// Tears the sandbox down now, from any thread: kills the local server, or shuts down the
/// kernels this sandbox started on a Jupyter server.
/// Runs on other threads fail with `E2B_ERR_CLOSED`, and so do later calls with this handle.
/// Idempotent. The handle still needs `e2b_sandbox_destroy()` to free it.
#[unsafe(no_mangle)]
pub extern "C" fn e2b_sandbox_kill(sandbox: E2bSandbox) -> E2bErrorCode {
    guard(|| Ok(lookup(sandbox)?.kill()?))
}

/// 1 when the sandbox is running, 0 when it is not: killed (on any handle), its server
/// gone, an E2B sandbox paused or removed (see `Sandbox::is_running`). A handle that is 0,
/// destroyed or made up is 0 too. Answers within the request timeout; never an error, and
/// the last error is left as it was.
#[unsafe(no_mangle)]
pub extern "C" fn e2b_sandbox_is_running(sandbox: E2bSandbox) -> c_int {
    guard_infallible(0, || {
        lookup(sandbox).map_or(0, |sbx| c_int::from(sbx.is_running()))
    })
}

/// Tears the sandbox down (as `e2b_sandbox_kill()`) and frees the handle; calls on other
/// threads that are using it fail at once with `E2B_ERR_CLOSED`.
///
/// 0 is ignored (returns `E2B_OK`), so destroying an unset handle is safe. Destroying a handle
/// twice returns `E2B_ERR_CLOSED` the second time and does nothing else. If tearing down
/// reports an error, the handle is freed all the same and that error is returned.
#[unsafe(no_mangle)]
pub extern "C" fn e2b_sandbox_destroy(sandbox: E2bSandbox) -> E2bErrorCode {
    guard(|| {
        if sandbox == 0 {
            return Ok(());
        }
        let removed = sandboxes().remove(&sandbox);
        let sbx = removed.ok_or_else(|| not_live(sandbox))?;
        let result = sbx.kill();
        // The Sandbox itself is dropped here, or when the last in-flight call returns.
        drop(sbx);
        Ok(result?)
    })
}

/// The sandbox's id (`local-<pid>` for a local sandbox, the server's `host:port` for a Jupyter
/// server) in `*out`: a new string the caller
/// frees with `e2b_string_free()`. `*out` is NULL on failure.
///
/// # Safety
/// `out` is valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_sandbox_id(
    sandbox: E2bSandbox,
    out: *mut *mut c_char,
) -> E2bErrorCode {
    guard(|| {
        // SAFETY: forwarded from the caller.
        unsafe { clear_out(out, std::ptr::null_mut(), "out")? };
        let s = into_c_string(lookup(sandbox)?.sandbox_id().to_string())?;
        // SAFETY: checked non-NULL above.
        unsafe { out.write(s) };
        Ok(())
    })
}

/// Base URL of the sandbox's Jupyter server in `*out`: a new string the caller frees with
/// `e2b_string_free()`. `*out` is NULL on failure.
///
/// # Safety
/// `out` is valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_sandbox_jupyter_url(
    sandbox: E2bSandbox,
    out: *mut *mut c_char,
) -> E2bErrorCode {
    guard(|| {
        // SAFETY: forwarded from the caller.
        unsafe { clear_out(out, std::ptr::null_mut(), "out")? };
        let s = into_c_string(lookup(sandbox)?.jupyter_url().to_string())?;
        // SAFETY: checked non-NULL above.
        unsafe { out.write(s) };
        Ok(())
    })
}

// ----- running code -----

/// Runs `code` in the sandbox's default Python context and waits for it, with the sandbox's
/// default execution timeout.
///
/// On `E2B_OK`, `*out_json` is the execution as a JSON object: a new string the caller frees
/// with `e2b_string_free()`. Its shape:
/// `{"results": [{"text", "html", "png", …, "is_main_result"}], "logs": {"stdout": [...],
/// "stderr": [...]}, "error": null | {"name", "value", "traceback"}, "execution_count"}`.
/// An exception raised by the code is not a failure: it is the `"error"` field.
/// On failure `*out_json` is NULL.
///
/// # Safety
/// `code` is a NUL-terminated string; `out_json` is valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_run_code(
    sandbox: E2bSandbox,
    code: *const c_char,
    out_json: *mut *mut c_char,
) -> E2bErrorCode {
    guard(|| {
        // SAFETY: forwarded from the caller.
        unsafe { clear_out(out_json, std::ptr::null_mut(), "out_json")? };
        // SAFETY: forwarded from the caller.
        let code = unsafe { str_arg(code, "code")? };
        let exec = lookup(sandbox)?.run_code(code)?;
        let json = into_c_string(exec.to_json())?;
        // SAFETY: checked non-NULL above.
        unsafe { out_json.write(json) };
        Ok(())
    })
}

/// Which callback ended a run, and with what value.
#[derive(Debug, Clone, Copy)]
struct Abort {
    callback: &'static str,
    returned: i32,
}

/// Where a callback's "stop" is recorded, shared with callbacks that must be `Send + 'static`
/// (a command's).
#[derive(Debug, Default)]
struct AbortSlot(std::sync::Mutex<Option<Abort>>);

impl AbortSlot {
    fn get(&self) -> Option<Abort> {
        match self.0.lock() {
            Ok(g) => *g,
            Err(p) => *p.into_inner(),
        }
    }

    fn set(&self, abort: Option<Abort>) {
        match self.0.lock() {
            Ok(mut g) => *g = abort,
            Err(p) => *p.into_inner() = abort,
        }
    }
}

/// The caller's `user_data`, carried into callbacks that must be `Send`. The callbacks run on
/// the thread that made the call (the SDK calls them while that thread waits), so the pointer
/// never reaches another thread.
#[derive(Debug, Clone, Copy)]
struct UserData(*mut c_void);

// SAFETY: see the type's docs: the pointer is only handed back to the C caller, on its thread.
unsafe impl Send for UserData {}

impl UserData {
    fn get(self) -> *mut c_void {
        self.0
    }
}

/// The unwind payload that carries a callback's "stop" through the run loop, which catches
/// it (as it catches any callback panic) and abandons the run. Raised with `resume_unwind`,
/// so no panic hook prints anything.
struct StopRun(Abort);

/// Calls one C callback; a non-zero return records why and stops the run.
fn deliver(
    callback: &'static str,
    f: unsafe extern "C" fn(*const c_char, usize, *mut c_void) -> i32,
    data: &[u8],
    user_data: UserData,
    abort: &AbortSlot,
) {
    let mut buf = Vec::with_capacity(data.len() + 1);
    buf.extend_from_slice(data);
    buf.push(0);
    // SAFETY: the caller of `e2b_run` gave us this function for exactly this call, with this
    // signature; `buf` outlives the call.
    let returned = unsafe { f(buf.as_ptr().cast(), data.len(), user_data.get()) };
    if returned != 0 {
        let stop = Abort { callback, returned };
        abort.set(Some(stop));
        resume_unwind(Box::new(StopRun(stop)));
    }
}

/// Runs `f`, whose callbacks go through [`deliver`], and turns a callback's "stop" into
/// `E2B_ERR_CALLBACK` with `consequence` in the message.
///
/// The run loops catch callback unwinds themselves (and the stop is recorded in `abort`);
/// should one ever get past them, a stop still ends as `E2B_ERR_CALLBACK` here, and anything
/// else goes on to `guard` as a panic.
fn with_callbacks<T>(
    abort: &AbortSlot,
    consequence: &str,
    f: impl FnOnce() -> Result<T, e2b_blocking::Error>,
) -> Result<T, FfiError> {
    let result = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => Some(result),
        Err(payload) => match payload.downcast::<StopRun>() {
            Ok(stop) => {
                abort.set(Some(stop.0));
                None
            }
            Err(other) => resume_unwind(other),
        },
    };
    if let Some(a) = abort.get() {
        return Err(FfiError::new(
            E2B_ERR_CALLBACK,
            format!(
                "the {} callback returned {}: {consequence}",
                a.callback, a.returned
            ),
        ));
    }
    match result {
        Some(result) => Ok(result?),
        None => Err(FfiError::new(
            E2B_ERR_OTHER,
            "the call ended without a result",
        )),
    }
}

/// Runs `code` and waits for it, streaming output to `callbacks` as it arrives.
///
/// `options_json` may be NULL or `""` for defaults, or a JSON object with any of:
/// - `"timeout_ms"`: deadline in milliseconds, or `null` for none (default: the sandbox's
///   execution timeout, 300 s unless configured). On expiry the kernel is interrupted and the
///   call returns `E2B_ERR_TIMEOUT`;
/// - `"language"`: run in the sandbox's default context for this language (default
///   `"python"`);
/// - `"envs"`: `{"NAME": "value"}` environment variables for this run only.
///
/// `callbacks` may be NULL, as may any of its members; they are called on this thread, see
/// `e2b_output_fn`. A callback returning non-zero ends the run with `E2B_ERR_CALLBACK`.
///
/// `out_json` may be NULL if you do not want the execution JSON; otherwise on `E2B_OK` it gets
/// the same JSON as `e2b_run_code()`, which the caller frees with `e2b_string_free()`, and NULL
/// on failure.
///
/// # Safety
/// `code` is a NUL-terminated string; `options_json` is NULL or a NUL-terminated string;
/// `callbacks` is NULL or points to a valid `e2b_run_callbacks_t` (read once, at the start);
/// `out_json` is NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_run(
    sandbox: E2bSandbox,
    code: *const c_char,
    options_json: *const c_char,
    callbacks: *const E2bRunCallbacks,
    out_json: *mut *mut c_char,
) -> E2bErrorCode {
    guard(|| {
        if !out_json.is_null() {
            // SAFETY: forwarded from the caller.
            unsafe { clear_out(out_json, std::ptr::null_mut(), "out_json")? };
        }
        // SAFETY: forwarded from the caller.
        let code = unsafe { str_arg(code, "code")? };
        // SAFETY: forwarded from the caller.
        let json = unsafe { opt_str_arg(options_json, "options_json")? };
        let opts: RunJson = options::parse(json, "run options")?;
        // SAFETY: NULL or a valid struct, as the caller promises; it is Copy.
        let cbs = unsafe { callbacks.as_ref() }.copied();
        let sbx = lookup(sandbox)?;

        let abort = AbortSlot::default();
        let abort = &abort;
        let mut run = sbx.code(code);
        if let Some(language) = opts.language {
            run = run.language(language);
        }
        if let Some(timeout) = opts.timeout_ms {
            run = run.timeout(timeout.map(Duration::from_millis));
        }
        if !opts.envs.is_empty() {
            run = run.envs(opts.envs);
        }
        if let Some(cbs) = cbs {
            let ud = UserData(cbs.user_data);
            if let Some(f) = cbs.on_stdout {
                run = run.on_stdout(move |m| deliver("on_stdout", f, m.line.as_bytes(), ud, abort));
            }
            if let Some(f) = cbs.on_stderr {
                run = run.on_stderr(move |m| deliver("on_stderr", f, m.line.as_bytes(), ud, abort));
            }
            if let Some(f) = cbs.on_result {
                run = run.on_result(move |r| deliver("on_result", f, &to_json_bytes(r), ud, abort));
            }
            if let Some(f) = cbs.on_error {
                run = run.on_error(move |e| deliver("on_error", f, &to_json_bytes(e), ud, abort));
            }
        }
        let exec = with_callbacks(
            abort,
            "the run was abandoned and its kernel interrupted",
            || run.run(),
        )?;
        if !out_json.is_null() {
            let json = into_c_string(exec.to_json())?;
            // SAFETY: checked non-NULL above.
            unsafe { out_json.write(json) };
        }
        Ok(())
    })
}

// ----- files -----

/// Bytes of the hidden header in front of every buffer `e2b_files_read` hands out: the
/// buffer's length, so `e2b_bytes_free` frees exactly what was allocated.
const BYTES_HEADER: usize = std::mem::size_of::<usize>();

/// A buffer for the caller: its bytes and a NUL, behind a header holding its length. Returns
/// the pointer to the first byte and the length.
fn into_c_bytes(mut buf: Vec<u8>) -> (*mut u8, usize) {
    let len = buf.len() - BYTES_HEADER;
    buf[..BYTES_HEADER].copy_from_slice(&len.to_ne_bytes());
    buf.push(0);
    let block = Box::into_raw(buf.into_boxed_slice()).cast::<u8>();
    // SAFETY: the block holds BYTES_HEADER + len + 1 bytes.
    (unsafe { block.add(BYTES_HEADER) }, len)
}

/// Reads a whole file of the sandbox into memory.
///
/// `path` is relative to the sandbox root (`"data/x.csv"`); `.` and `..` are resolved, and a
/// path that would climb above the root is `E2B_ERR_INVALID_ARGUMENT`. An absolute path is
/// accepted for a local sandbox when it lies inside its root directory.
///
/// On `E2B_OK`, `*out_data` points to `*out_len` bytes followed by one NUL byte (not counted in
/// `*out_len`), so a text file can be used as a C string. The buffer is owned by the caller,
/// who frees it with `e2b_bytes_free(*out_data, *out_len)`; an empty file gives a valid
/// buffer of length 0 that still needs freeing. On failure `*out_data` is NULL and `*out_len`
/// is 0. A missing file is `E2B_ERR_FILE_NOT_FOUND`, a directory `E2B_ERR_IS_A_DIRECTORY`.
///
/// From any thread, concurrently with any other call on the same handle.
///
/// # Safety
/// `path` is a NUL-terminated string; `out_data` and `out_len` are each valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_files_read(
    sandbox: E2bSandbox,
    path: *const c_char,
    out_data: *mut *mut u8,
    out_len: *mut usize,
) -> E2bErrorCode {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let path = unsafe {
            clear_out(out_data, std::ptr::null_mut(), "out_data")?;
            clear_out(out_len, 0, "out_len")?;
            str_arg(path, "path")?
        };
        let sbx = lookup(sandbox)?;
        let mut buf = vec![0u8; BYTES_HEADER];
        sbx.files().read_to(path, &mut buf)?;
        let (data, len) = into_c_bytes(buf);
        // SAFETY: both checked non-NULL above.
        unsafe {
            out_data.write(data);
            out_len.write(len);
        }
        Ok(())
    })
}

/// Frees a buffer returned by `e2b_files_read()`. `len` is the length that came with it.
/// NULL is ignored. From any thread.
///
/// # Safety
/// `data` must be NULL or a buffer this library returned that has not been freed yet, and
/// `len` its length as the library gave it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_bytes_free(data: *mut u8, len: usize) {
    if data.is_null() {
        return;
    }
    guard_infallible((), move || {
        // SAFETY: `data` came from `into_c_bytes`, so a header holding the buffer's length
        // lies right before it, in the same allocation.
        let block = unsafe { data.sub(BYTES_HEADER) };
        let mut header = [0u8; BYTES_HEADER];
        // SAFETY: as above; the header is BYTES_HEADER readable bytes.
        unsafe { std::ptr::copy_nonoverlapping(block, header.as_mut_ptr(), BYTES_HEADER) };
        // The library's own record decides how much to free, so a wrong `len` (a caller's
        // bug) cannot free the wrong amount.
        let recorded = usize::from_ne_bytes(header);
        if recorded != len {
            log::warn!("e2b_bytes_free: given length {len}, but the buffer holds {recorded}");
        }
        let total = BYTES_HEADER + recorded + 1;
        // SAFETY: the block is the boxed slice `into_c_bytes` leaked, of exactly `total`
        // bytes, and is freed once, as the caller promises.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(block, total)) });
    })
}

/// Writes a file of the sandbox, replacing it if it exists and creating missing parent
/// directories. `data` holds `len` bytes (any bytes, NULs included); it may be NULL when `len`
/// is 0, which writes an empty file. Paths as for `e2b_files_read()`; a path whose parent is a
/// file is `E2B_ERR_NOT_A_DIRECTORY`.
///
/// From any thread, concurrently with any other call on the same handle; two writes to the
/// same path at once leave one of the two contents.
///
/// # Safety
/// `path` is a NUL-terminated string; `data` is valid for reads of `len` bytes (or `len` is
/// 0), and is only read during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_files_write(
    sandbox: E2bSandbox,
    path: *const c_char,
    data: *const u8,
    len: usize,
) -> E2bErrorCode {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let path = unsafe { str_arg(path, "path")? };
        let bytes: &[u8] = if len == 0 {
            &[]
        } else if data.is_null() {
            return Err(FfiError::null("data"));
        } else {
            // SAFETY: non-NULL and `len` readable bytes, as the caller promises.
            unsafe { std::slice::from_raw_parts(data, len) }
        };
        lookup(sandbox)?.files().write(path, bytes)?;
        Ok(())
    })
}

/// One entry of the `e2b_files_list` JSON.
#[derive(Serialize)]
struct EntryJson<'a> {
    name: &'a str,
    path: &'a str,
    #[serde(rename = "type")]
    kind: e2b_blocking::FileType,
    size: Option<u64>,
    modified: Option<u64>,
}

fn entries_json(entries: &[e2b_blocking::EntryInfo]) -> String {
    let entries: Vec<EntryJson<'_>> = entries
        .iter()
        .map(|e| EntryJson {
            name: &e.name,
            path: &e.path,
            kind: e.kind,
            size: e.size,
            modified: e.modified.and_then(|t| {
                let ms = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
                u64::try_from(ms).ok()
            }),
        })
        .collect();
    serde_json::to_string(&entries).unwrap_or_else(|_| "[]".into())
}

/// Lists a directory of the sandbox (`""` or `"."` for the root), sorted by name.
///
/// On `E2B_OK`, `*out_json` is a JSON array with one object per entry:
/// `{"name": "x.csv", "path": "data/x.csv", "type": "file" | "dir", "size": 123 | null,
/// "modified": 1717000000000 | null}`: `path` is relative to the sandbox root, `size` is in
/// bytes (`null` for directories), `modified` is in milliseconds since the Unix epoch
/// (`null` when the server does not say). A new string the caller frees with
/// `e2b_string_free()`; NULL on failure. Listing a file is `E2B_ERR_NOT_A_DIRECTORY`, a
/// missing path `E2B_ERR_FILE_NOT_FOUND`.
///
/// From any thread, concurrently with any other call on the same handle.
///
/// # Safety
/// `path` is a NUL-terminated string; `out_json` is valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_files_list(
    sandbox: E2bSandbox,
    path: *const c_char,
    out_json: *mut *mut c_char,
) -> E2bErrorCode {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let path = unsafe {
            clear_out(out_json, std::ptr::null_mut(), "out_json")?;
            str_arg(path, "path")?
        };
        let entries = lookup(sandbox)?.files().list(path)?;
        let json = into_c_string(entries_json(&entries))?;
        // SAFETY: checked non-NULL above.
        unsafe { out_json.write(json) };
        Ok(())
    })
}

/// Sets `*out` to 1 when a file or directory exists at `path`, else 0 (a missing path is not
/// an error). `*out` is 0 on failure too; check the returned code.
///
/// From any thread, concurrently with any other call on the same handle.
///
/// # Safety
/// `path` is a NUL-terminated string; `out` is valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_files_exists(
    sandbox: E2bSandbox,
    path: *const c_char,
    out: *mut c_int,
) -> E2bErrorCode {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let path = unsafe {
            clear_out(out, 0, "out")?;
            str_arg(path, "path")?
        };
        let exists = lookup(sandbox)?.files().exists(path)?;
        // SAFETY: checked non-NULL above.
        unsafe { out.write(c_int::from(exists)) };
        Ok(())
    })
}

/// Removes a file, or a directory with everything in it. A missing path is
/// `E2B_ERR_FILE_NOT_FOUND`; the sandbox root cannot be removed (`E2B_ERR_INVALID_ARGUMENT`).
///
/// From any thread, concurrently with any other call on the same handle.
///
/// # Safety
/// `path` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_files_remove(
    sandbox: E2bSandbox,
    path: *const c_char,
) -> E2bErrorCode {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let path = unsafe { str_arg(path, "path")? };
        lookup(sandbox)?.files().remove(path)?;
        Ok(())
    })
}

/// Renames or moves a file or directory from `from` to `to`, creating missing parent
/// directories of `to`. A missing `from` is `E2B_ERR_FILE_NOT_FOUND`; an existing `to` is an
/// error (`E2B_ERR_HTTP`, status 409, from jupyter_server).
///
/// From any thread, concurrently with any other call on the same handle.
///
/// # Safety
/// `from` and `to` are NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_files_rename(
    sandbox: E2bSandbox,
    from: *const c_char,
    to: *const c_char,
) -> E2bErrorCode {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let (from, to) = unsafe { (str_arg(from, "from")?, str_arg(to, "to")?) };
        lookup(sandbox)?.files().rename(from, to)?;
        Ok(())
    })
}

/// Creates a directory and any missing parents (`mkdir -p`). `out_created` may be NULL;
/// otherwise it is set to 1 when the directory was created, 0 when it existed already (and
/// 0 on failure). A file in the way is `E2B_ERR_NOT_A_DIRECTORY`.
///
/// From any thread, concurrently with any other call on the same handle.
///
/// # Safety
/// `path` is a NUL-terminated string; `out_created` is NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_files_make_dir(
    sandbox: E2bSandbox,
    path: *const c_char,
    out_created: *mut c_int,
) -> E2bErrorCode {
    guard(|| {
        if !out_created.is_null() {
            // SAFETY: forwarded from the caller.
            unsafe { clear_out(out_created, 0, "out_created")? };
        }
        // SAFETY: forwarded from the caller.
        let path = unsafe { str_arg(path, "path")? };
        let created = lookup(sandbox)?.files().make_dir(path)?;
        if !out_created.is_null() {
            // SAFETY: checked non-NULL above.
            unsafe { out_created.write(c_int::from(created)) };
        }
        Ok(())
    })
}

// ----- commands -----

/// Runs a shell command in the sandbox (`/bin/bash -c <cmd>`) and waits for it to end.
///
/// `options_json` may be NULL or `""` for defaults, or a JSON object with any of:
/// - `"cwd"`: working directory, relative to the sandbox root or absolute (default: the
///   root). A missing one is `E2B_ERR_FILE_NOT_FOUND`;
/// - `"envs"`: `{"NAME": "value"}` environment variables for this command, on top of the
///   sandbox's own;
/// - `"timeout_ms"`: deadline in milliseconds, or `null` for none (default 60000). On expiry
///   the command's process group is killed and the call returns `E2B_ERR_TIMEOUT`;
/// - `"stdin"`: text written to the command's stdin, which is then closed (default: stdin is
///   `/dev/null`). Written once even across reconnects; a command that ends before reading
///   it all is `E2B_ERR_OTHER` ("stdin is closed").
///
/// `callbacks` may be NULL; of its members only `on_stdout` and `on_stderr` are used (each
/// chunk of output as it arrives, on this thread, see `e2b_output_fn`), `on_result` and
/// `on_error` are ignored. A callback returning non-zero kills the command and ends the call
/// with `E2B_ERR_CALLBACK`.
///
/// A non-zero exit code is data, not an error: the call returns `E2B_OK`. `out_json` may be
/// NULL if you do not want the result; otherwise on `E2B_OK` it gets
/// `{"stdout": "...", "stderr": "...", "exit_code": 3}` (the whole output; invalid UTF-8
/// replaced by U+FFFD; `exit_code` is negative when a signal ended the command), a new string
/// the caller frees with `e2b_string_free()`, and NULL on failure.
///
/// From any thread, concurrently with other calls on the same handle: each running command
/// has a private kernel of its own, apart from the contexts `e2b_run()` uses.
///
/// # Safety
/// `cmd` is a NUL-terminated string; `options_json` is NULL or a NUL-terminated string;
/// `callbacks` is NULL or points to a valid `e2b_run_callbacks_t` (read once, at the start);
/// `out_json` is NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_commands_run(
    sandbox: E2bSandbox,
    cmd: *const c_char,
    options_json: *const c_char,
    callbacks: *const E2bRunCallbacks,
    out_json: *mut *mut c_char,
) -> E2bErrorCode {
    guard(|| {
        if !out_json.is_null() {
            // SAFETY: forwarded from the caller.
            unsafe { clear_out(out_json, std::ptr::null_mut(), "out_json")? };
        }
        // SAFETY: forwarded from the caller.
        let (cmd, json) = unsafe {
            (
                str_arg(cmd, "cmd")?,
                opt_str_arg(options_json, "options_json")?,
            )
        };
        let opts: CommandJson = options::parse(json, "command options")?;
        // SAFETY: NULL or a valid struct, as the caller promises; it is Copy.
        let cbs = unsafe { callbacks.as_ref() }.copied();
        let sbx = lookup(sandbox)?;

        let abort = std::sync::Arc::new(AbortSlot::default());
        let mut command = sbx.commands().cmd(cmd).envs(opts.envs);
        if let Some(cwd) = opts.cwd {
            command = command.cwd(cwd);
        }
        if let Some(timeout) = opts.timeout_ms {
            command = command.timeout(timeout.map(Duration::from_millis));
        }
        if let Some(cbs) = cbs {
            let ud = UserData(cbs.user_data);
            if let Some(f) = cbs.on_stdout {
                let abort = abort.clone();
                command =
                    command.on_stdout(move |s| deliver("on_stdout", f, s.as_bytes(), ud, &abort));
            }
            if let Some(f) = cbs.on_stderr {
                let abort = abort.clone();
                command =
                    command.on_stderr(move |s| deliver("on_stderr", f, s.as_bytes(), ud, &abort));
            }
        }
        let result = with_callbacks(&abort, "the command was killed", || match opts.stdin {
            None => command.run(),
            Some(input) => {
                let mut handle = command.stdin(true).spawn()?;
                handle.send_stdin(input)?;
                handle.close_stdin()?;
                handle.wait()
            }
        })?;
        if !out_json.is_null() {
            let json = serde_json::to_string(&result).unwrap_or_else(|_| "{}".into());
            let json = into_c_string(json)?;
            // SAFETY: checked non-NULL above.
            unsafe { out_json.write(json) };
        }
        Ok(())
    })
}

/// The commands started through this sandbox that still run, as a JSON array of
/// `{"pid": 123, "cmd": "...", "cwd": "/abs/dir", "started_at": "2026-01-01T00:00:00+00:00"}`
/// (see `Commands::list`). On `E2B_OK` `*out_json` is a new string the caller frees with
/// `e2b_string_free()`; NULL on failure.
///
/// # Safety
/// `out_json` is valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_commands_list(
    sandbox: E2bSandbox,
    out_json: *mut *mut c_char,
) -> E2bErrorCode {
    guard(|| {
        // SAFETY: forwarded from the caller.
        unsafe { clear_out(out_json, std::ptr::null_mut(), "out_json")? };
        let list = lookup(sandbox)?.commands().list()?;
        let json = serde_json::to_string(&list).unwrap_or_else(|_| "[]".into());
        let json = into_c_string(json)?;
        // SAFETY: checked non-NULL by clear_out.
        unsafe { out_json.write(json) };
        Ok(())
    })
}

/// Kills process `pid` in the sandbox with SIGKILL: a listed command's whole process group,
/// any other pid alone (see `Commands::kill`). A command that `e2b_commands_run()` runs on
/// another thread then ends with `"exit_code": -9`. `out_killed` may be NULL; otherwise it
/// gets 1 when a process was killed, 0 when there was no such process. A process the
/// sandbox's user may not signal is `E2B_ERR_PERMISSION_DENIED`.
///
/// # Safety
/// `out_killed` is NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_commands_kill(
    sandbox: E2bSandbox,
    pid: u32,
    out_killed: *mut c_int,
) -> E2bErrorCode {
    guard(|| {
        let killed = lookup(sandbox)?.commands().kill(pid)?;
        if !out_killed.is_null() {
            // SAFETY: checked non-NULL above.
            unsafe { out_killed.write(c_int::from(killed)) };
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_message() -> String {
        // SAFETY: the library's own message pointer, read at once.
        unsafe { CStr::from_ptr(e2b_last_error_message()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn null_and_zero_arguments_are_error_codes() {
        // SAFETY: every pointer is NULL or valid.
        unsafe {
            assert_eq!(
                e2b_sandbox_local(std::ptr::null(), std::ptr::null_mut()),
                E2B_ERR_NULL_ARG
            );
            assert!(last_message().contains("out is NULL"));
            let mut out: *mut c_char = std::ptr::null_mut();
            assert_eq!(e2b_run_code(0, c"1".as_ptr(), &mut out), E2B_ERR_NULL_ARG);
            assert_eq!(
                e2b_run_code(12345678, c"1".as_ptr(), &mut out),
                E2B_ERR_CLOSED
            );
            assert!(out.is_null());
            assert_eq!(e2b_sandbox_destroy(0), E2B_OK);
            assert_eq!(e2b_sandbox_destroy(12345678), E2B_ERR_CLOSED);
            e2b_string_free(std::ptr::null_mut());
        }
    }

    #[test]
    fn invalid_utf8_is_an_error_code() {
        let bad = [0x7bu8, 0xff, 0xfe, 0];
        let mut out = 7;
        // SAFETY: `bad` is NUL-terminated; `out` is writable.
        let code = unsafe { e2b_sandbox_local(bad.as_ptr().cast(), &mut out) };
        assert_eq!(code, E2B_ERR_INVALID_UTF8);
        assert_eq!(out, 0);
        assert_eq!(e2b_last_error_code(), E2B_ERR_INVALID_UTF8);
    }

    #[test]
    fn message_copy_behaves_like_snprintf() {
        error::set_last(E2B_ERR_OTHER, "hello");
        let mut buf = [0x55 as c_char; 4];
        // SAFETY: `buf` has 4 writable bytes; NULL with length 0 is allowed.
        unsafe {
            assert_eq!(e2b_last_error_message_copy(buf.as_mut_ptr(), buf.len()), 5);
            assert_eq!(CStr::from_ptr(buf.as_ptr()).to_bytes(), b"hel");
            assert_eq!(e2b_last_error_message_copy(std::ptr::null_mut(), 0), 5);
        }
    }

    #[test]
    fn e2b_create_fails_fast_on_an_unreachable_control_plane() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let opts = CString::new(format!(
            r#"{{"api_key": "e2b_k", "api_url": "http://127.0.0.1:{port}", "request_timeout_ms": 2000}}"#
        ))
        .unwrap();
        let mut out = 7;
        // SAFETY: valid pointers.
        let code = unsafe { e2b_sandbox_create(opts.as_ptr(), &mut out) };
        let message = error::with_last_message(|m| String::from_utf8_lossy(m).into_owned());
        assert_eq!(code, E2B_ERR_TRANSPORT, "{message:?}");
        assert_eq!(out, 0);
        let bad = CString::new(r#"{"template": 5}"#).unwrap();
        // SAFETY: valid pointers.
        let code = unsafe { e2b_sandbox_create(bad.as_ptr(), &mut out) };
        assert_eq!(code, E2B_ERR_INVALID_ARGUMENT);
    }

    #[test]
    fn connect_jupyter_checks_its_arguments_before_connecting() {
        let mut out = 7;
        let null = std::ptr::null();
        // SAFETY: NULL or NUL-terminated strings; `out` is writable.
        unsafe {
            let connect = |url, token, opts, out: &mut u64| {
                e2b_sandbox_connect_jupyter(url, token, opts, out)
            };
            assert_eq!(connect(null, null, null, &mut out), E2B_ERR_NULL_ARG);
            assert_eq!(out, 0);
            assert!(last_message().contains("url is NULL"));
            let url = c"http://127.0.0.1:9".as_ptr();
            assert_eq!(
                e2b_sandbox_connect_jupyter(url, null, null, std::ptr::null_mut()),
                E2B_ERR_NULL_ARG
            );
            let bad = [0x68u8, 0xff, 0];
            assert_eq!(
                connect(url, bad.as_ptr().cast(), null, &mut out),
                E2B_ERR_INVALID_UTF8
            );
            assert!(last_message().contains("token"));
            out = 7;
            assert_eq!(
                connect(c"ftp://x".as_ptr(), null, null, &mut out),
                E2B_ERR_INVALID_ARGUMENT
            );
            assert_eq!(out, 0);
            assert!(last_message().contains("http://"), "{}", last_message());
            for opts in [c"{\"python\": \"x\"}", c"{\"timeouts\": {\"x\": 1}}", c"{"] {
                assert_eq!(
                    connect(url, null, opts.as_ptr(), &mut out),
                    E2B_ERR_INVALID_ARGUMENT,
                    "{opts:?}"
                );
            }
        }
    }

    #[test]
    fn byte_buffers_round_trip_with_a_nul_after_them() {
        for content in [&b""[..], b"a\0b", &[7u8; 1000]] {
            let mut buf = vec![0u8; BYTES_HEADER];
            buf.extend_from_slice(content);
            let (data, len) = into_c_bytes(buf);
            assert!(!data.is_null());
            assert_eq!(len, content.len());
            // SAFETY: `data` holds `len` bytes and a NUL; freed once with its length.
            unsafe {
                assert_eq!(std::slice::from_raw_parts(data, len), content);
                assert_eq!(*data.add(len), 0);
                e2b_bytes_free(data, len);
            }
        }
        // SAFETY: NULL is ignored.
        unsafe { e2b_bytes_free(std::ptr::null_mut(), 0) };
    }

    #[test]
    fn file_and_command_calls_check_arguments_and_handles() {
        let null: *const c_char = std::ptr::null();
        let no_cb: *const E2bRunCallbacks = std::ptr::null();
        let no_out: *mut *mut c_char = std::ptr::null_mut();
        let bad_utf8 = [0x61u8, 0xc3, 0x28, 0];
        let bad = bad_utf8.as_ptr().cast::<c_char>();
        let mut data: *mut u8 = 7 as *mut u8;
        let mut len = 7usize;
        let mut json: *mut c_char = 7 as *mut c_char;
        let mut flag: c_int = 7;
        // SAFETY: every pointer is NULL, NUL-terminated or writable.
        unsafe {
            assert_eq!(
                e2b_files_read(12345678, c"a".as_ptr(), &mut data, &mut len),
                E2B_ERR_CLOSED
            );
            assert!(data.is_null());
            assert_eq!(len, 0);
            assert_eq!(
                e2b_files_read(12345678, null, &mut data, &mut len),
                E2B_ERR_NULL_ARG
            );
            assert_eq!(
                e2b_files_read(12345678, c"a".as_ptr(), std::ptr::null_mut(), &mut len),
                E2B_ERR_NULL_ARG
            );
            assert_eq!(
                e2b_files_read(12345678, bad, &mut data, &mut len),
                E2B_ERR_INVALID_UTF8
            );
            assert_eq!(
                e2b_files_write(12345678, c"a".as_ptr(), std::ptr::null(), 3),
                E2B_ERR_NULL_ARG
            );
            assert!(last_message().contains("data is NULL"));
            assert_eq!(
                e2b_files_write(12345678, c"a".as_ptr(), std::ptr::null(), 0),
                E2B_ERR_CLOSED
            );
            assert_eq!(
                e2b_files_list(0, c".".as_ptr(), &mut json),
                E2B_ERR_NULL_ARG
            );
            assert!(json.is_null());
            assert_eq!(
                e2b_files_exists(12345678, bad, &mut flag),
                E2B_ERR_INVALID_UTF8
            );
            assert_eq!(flag, 0);
            assert_eq!(e2b_files_remove(12345678, null), E2B_ERR_NULL_ARG);
            assert_eq!(
                e2b_files_rename(12345678, c"a".as_ptr(), bad),
                E2B_ERR_INVALID_UTF8
            );
            assert_eq!(
                e2b_files_make_dir(12345678, c"d".as_ptr(), std::ptr::null_mut()),
                E2B_ERR_CLOSED
            );
            json = 7 as *mut c_char;
            assert_eq!(
                e2b_commands_run(12345678, c"true".as_ptr(), null, no_cb, &mut json),
                E2B_ERR_CLOSED
            );
            assert!(json.is_null());
            assert_eq!(
                e2b_commands_run(12345678, null, null, no_cb, no_out),
                E2B_ERR_NULL_ARG
            );
            assert_eq!(
                e2b_commands_run(
                    12345678,
                    c"true".as_ptr(),
                    c"{\"cwdd\": 1}".as_ptr(),
                    no_cb,
                    no_out
                ),
                E2B_ERR_INVALID_ARGUMENT
            );
            assert!(last_message().contains("cwdd"));
        }
    }

    #[test]
    fn code_names_cover_unknown_numbers() {
        // SAFETY: static strings.
        let name = |c| {
            unsafe { CStr::from_ptr(e2b_error_code_name(c)) }
                .to_str()
                .unwrap()
        };
        assert_eq!(name(4), "E2B_ERR_TIMEOUT");
        assert_eq!(name(-5), "E2B_ERR_OTHER");
        // SAFETY: a static string.
        let version = unsafe { CStr::from_ptr(e2b_version()) };
        assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }
}
