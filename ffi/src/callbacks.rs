//! Streaming output to C callbacks, and ending a call when one asks to.

use std::ffi::{c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use crate::error::E2bErrorCode::*;
use crate::error::FfiError;

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

/// Which callback ended a run, and with what value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Abort {
    callback: &'static str,
    returned: i32,
}

/// Where a callback's "stop" is recorded, shared with callbacks that must be `Send + 'static`
/// (a command's).
#[derive(Debug, Default)]
pub(crate) struct AbortSlot(std::sync::Mutex<Option<Abort>>);

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
pub(crate) struct UserData(pub(crate) *mut c_void);

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
pub(crate) struct StopRun(Abort);

/// Calls one C callback; a non-zero return records why and stops the run.
pub(crate) fn deliver(
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
pub(crate) fn with_callbacks<T>(
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
