//! Shell commands: run, list, kill.

use std::ffi::{c_char, c_int};
use std::time::Duration;

use crate::args::*;
use crate::callbacks::*;
use crate::error::E2bErrorCode::{self};
use crate::error::guard;
use crate::options::CommandJson;
use crate::registry::*;

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
///   it all is `E2B_ERR_OTHER` ("stdin is closed");
/// - `"max_output"`: the most bytes the result keeps of stdout, and of stderr, the last ones
///   (default 16 MiB);
/// - `"retain_output"`: `false` keeps none of the output in the result (default `true`).
///   Callbacks see all of it either way.
///
/// `callbacks` may be NULL; of its members only `on_stdout` and `on_stderr` are used (each
/// chunk of output as it arrives, on this thread, see `e2b_output_fn`), `on_result` and
/// `on_error` are ignored. A callback returning non-zero kills the command and ends the call
/// with `E2B_ERR_CALLBACK`.
///
/// A non-zero exit code is data, not an error: the call returns `E2B_OK`. `out_json` may be
/// NULL if you do not want the result; otherwise on `E2B_OK` it gets
/// `{"stdout": "...", "stderr": "...", "exit_code": 3, "dropped": {"stdout_bytes": 0,
/// "stderr_bytes": 0, "results": 0, "result_bytes": 0}}` (the output kept, invalid UTF-8
/// replaced by U+FFFD; `"dropped"` counts the bytes left out of it; `exit_code` is negative
/// when a signal ended the command), a new string the caller frees with `e2b_string_free()`,
/// and NULL on failure.
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
    let body = || {
        // SAFETY: forwarded from the caller.
        let (cmd, json) = unsafe {
            (
                str_arg(cmd, "cmd")?,
                opt_str_arg(options_json, "options_json")?,
            )
        };
        let opts: CommandJson = crate::options::parse(json, "command options")?;
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
        if let Some(retain) = opts.retain_output {
            command = command.retain_output(retain);
        }
        if let Some(bytes) = opts.max_output {
            command = command.max_output(bytes);
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
        Ok(serde_json::to_string(&result).unwrap_or_else(|_| "{}".into()))
    };
    // SAFETY: forwarded from the caller.
    unsafe { optional_string_out(out_json, "out_json", body) }
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
    // SAFETY: forwarded from the caller.
    unsafe {
        string_out(out_json, "out_json", || {
            let list = lookup(sandbox)?.commands().list()?;
            Ok(serde_json::to_string(&list).unwrap_or_else(|_| "[]".into()))
        })
    }
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
