//! Running code: the whole execution as JSON, or streamed through callbacks.

use std::ffi::c_char;
use std::time::Duration;

use crate::args::*;
use crate::callbacks::*;
use crate::error::E2bErrorCode::{self};
use crate::options::RunJson;
use crate::registry::*;

/// Runs `code` in the sandbox's default Python context and waits for it, with the sandbox's
/// default execution timeout.
///
/// On `E2B_OK`, `*out_json` is the execution as a JSON object: a new string the caller frees
/// with `e2b_string_free()`. Its shape:
/// `{"results": [{"text", "html", "png", …, "is_main_result"}], "logs": {"stdout": [...],
/// "stderr": [...]}, "error": null | {"name", "value", "traceback"}, "execution_count",
/// "dropped": {"stdout_bytes", "stderr_bytes", "results", "result_bytes"}}`.
/// An exception raised by the code is not a failure: it is the `"error"` field. The execution
/// keeps the last 16 MiB of stdout, of stderr and of rich results (the newest that fit);
/// `"dropped"` counts what it left out (see `"max_output"` of `e2b_run()`).
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
    // SAFETY: forwarded from the caller.
    unsafe {
        string_out(out_json, "out_json", || {
            // SAFETY: forwarded from the caller.
            let code = str_arg(code, "code")?;
            Ok(lookup(sandbox)?.run_code(code)?.to_json())
        })
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
/// - `"envs"`: `{"NAME": "value"}` environment variables for this run only;
/// - `"max_output"`: the most bytes the execution keeps of stdout, of stderr and of rich
///   results (each), the last ones; `0` keeps none (default 16 MiB). Callbacks see all of it.
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
    let body = || {
        // SAFETY: forwarded from the caller.
        let code = unsafe { str_arg(code, "code")? };
        // SAFETY: forwarded from the caller.
        let json = unsafe { opt_str_arg(options_json, "options_json")? };
        let opts: RunJson = crate::options::parse(json, "run options")?;
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
        if let Some(bytes) = opts.max_output {
            run = run.max_output(bytes);
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
        Ok(exec.to_json())
    };
    // SAFETY: forwarded from the caller.
    unsafe { optional_string_out(out_json, "out_json", body) }
}
