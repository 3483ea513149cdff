//! Following what happens in a sandbox: `e2b_commands_connect()` (a command's output by pid,
//! until it exits) and directory watches (`e2b_files_watch_dir()`, `e2b_watch_next()`,
//! `e2b_watch_destroy()`).

use std::ffi::{c_char, c_int};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2b_blocking::WatchHandle;

use crate::args::{maybe_string_out, optional_string_out, str_arg};
use crate::callbacks::{AbortSlot, E2bRunCallbacks, UserData, deliver, with_callbacks};
use crate::error::E2bErrorCode;
use crate::error::{guard, guard_infallible};
use crate::registry::{E2bSandbox, Handles, lookup};

/// A directory watch: an opaque, non-zero id, like `e2b_sandbox_t`. 0 is never a valid
/// handle; ids are never reused, and a destroyed one gives `E2B_ERR_CLOSED`.
pub type E2bWatch = u64;

/// Follows the command with process id `pid` that the sandbox's runner started (see
/// `e2b_commands_list()`; any thread or process may have started it, also in the background)
/// until it exits: first what it printed since it started, then live. Output goes to
/// `callbacks` (`on_stdout`, `on_stderr`; see `e2b_output_fn`) on this thread; a callback
/// returning non-zero stops following (the command runs on) and the call returns
/// `E2B_ERR_CALLBACK`.
///
/// `out_json` may be NULL; otherwise on `E2B_OK` it gets the same JSON as `e2b_commands_run()`
/// (`{"stdout": ..., "stderr": ..., "exit_code": ..., "dropped": {...}}`, the last 16 MiB of
/// each stream), a new string the caller frees with `e2b_string_free()`, and NULL on failure.
/// An unknown pid is `E2B_ERR_PROCESS_NOT_FOUND`.
/// `e2b_commands_kill()` from another thread ends the command, and this call with
/// `"exit_code": -9`.
///
/// # Safety
/// `callbacks` is NULL or points to a valid `e2b_run_callbacks_t` (read once, at the start);
/// `out_json` is NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_commands_connect(
    sandbox: E2bSandbox,
    pid: u32,
    callbacks: *const E2bRunCallbacks,
    out_json: *mut *mut c_char,
) -> E2bErrorCode {
    let body = || {
        // SAFETY: NULL or a valid struct, as the caller promises; it is Copy.
        let cbs = unsafe { callbacks.as_ref() }.copied();
        let sbx = lookup(sandbox)?;
        let abort = Arc::new(AbortSlot::default());
        let result = with_callbacks(&abort, "stopped following the command", || {
            let mut handle = sbx.commands().connect(pid)?;
            if let Some(cbs) = cbs {
                let ud = UserData(cbs.user_data);
                for out in handle.output() {
                    let f = if out.is_stderr() {
                        cbs.on_stderr.map(|f| ("on_stderr", f))
                    } else {
                        cbs.on_stdout.map(|f| ("on_stdout", f))
                    };
                    if let Some((name, f)) = f {
                        deliver(name, f, out.text().as_bytes(), ud, &abort);
                    }
                }
            }
            handle.wait()
        })?;
        Ok(serde_json::to_string(&result).unwrap_or_else(|_| "{}".into()))
    };
    // SAFETY: forwarded from the caller.
    unsafe { optional_string_out(out_json, "out_json", body) }
}

static WATCHES: Handles<Mutex<WatchHandle>> = Handles::new("watch");

/// Starts watching directory `path` (relative to the sandbox root; `recursive` non-zero to
/// include every directory below) and puts the watch in `*out_watch` (0 on failure). Every
/// change made after this returns is reported by `e2b_watch_next()`. A missing directory is
/// `E2B_ERR_FILE_NOT_FOUND`, a file `E2B_ERR_NOT_A_DIRECTORY`. Free it with
/// `e2b_watch_destroy()`.
///
/// # Safety
/// `path` is a NUL-terminated string; `out_watch` is valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_files_watch_dir(
    sandbox: E2bSandbox,
    path: *const c_char,
    recursive: c_int,
    out_watch: *mut E2bWatch,
) -> E2bErrorCode {
    let make = || {
        // SAFETY: forwarded from the caller.
        let path = unsafe { str_arg(path, "path")? };
        let watch = lookup(sandbox)?.files().watch_dir(path, recursive != 0)?;
        Ok(Mutex::new(watch))
    };
    // SAFETY: forwarded from the caller.
    unsafe { WATCHES.insert_into(out_watch, "out_watch", make) }
}

/// Waits at most `timeout_ms` for the watch's next event. On `E2B_OK`, `*out_json` is the
/// event, `{"kind": "create", "path": "sub/a.txt", "dropped": null}` (kinds: `create`,
/// `write`, `remove`, `rename`, `chmod`, and `overflow` with `dropped` the number of events
/// lost when known; `path` is relative to the watched directory), a new string the caller
/// frees with `e2b_string_free()`; or NULL when none came in time or the watch has ended
/// (`e2b_watch_finished()` tells which). An error that ended the watch (a lost connection)
/// is returned once.
///
/// # Safety
/// `out_json` is valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_watch_next(
    watch: E2bWatch,
    timeout_ms: u64,
    out_json: *mut *mut c_char,
) -> E2bErrorCode {
    let next = || {
        let handle = WATCHES.get(watch)?;
        let mut handle = handle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let event = handle.next_timeout(Duration::from_millis(timeout_ms))?;
        Ok(event.map(|e| serde_json::to_string(&e).unwrap_or_else(|_| "{}".into())))
    };
    // SAFETY: forwarded from the caller.
    unsafe { maybe_string_out(out_json, "out_json", next) }
}

/// 1 once the watch has ended (stopped, or its directory removed) and every event was read;
/// 0 otherwise, and for a handle that is 0, destroyed or made up. Never an error.
#[unsafe(no_mangle)]
pub extern "C" fn e2b_watch_finished(watch: E2bWatch) -> c_int {
    guard_infallible(0, || {
        WATCHES.get(watch).map_or(0, |w| {
            let w = w.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            c_int::from(w.is_finished())
        })
    })
}

/// Stops the watch (within about half a second) and frees the handle. 0 is ignored; a second
/// destroy returns `E2B_ERR_CLOSED`.
#[unsafe(no_mangle)]
pub extern "C" fn e2b_watch_destroy(watch: E2bWatch) -> E2bErrorCode {
    guard(|| {
        if watch == 0 {
            return Ok(());
        }
        let handle = WATCHES.remove(watch)?;
        let mut handle = handle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(handle.stop()?)
    })
}
