//! Terminals (PTYs): a shell on a pseudo-terminal in the sandbox, typed into and read from
//! (`e2b_pty_create()`, `e2b_pty_send_input()`, `e2b_pty_next()`, ...). See `Sandbox::pty` in
//! the Rust docs for what survives a broken connection.

use std::ffi::{c_char, c_int};
use std::time::Duration;

use e2b_blocking::{PtyEnd, PtyEvent, PtyGap, PtySize, Terminal};
use serde_json::{Value, json};

use crate::args::{maybe_string_out, opt_str_arg, str_arg, string_out};
use crate::error::{E2bErrorCode, guard};
use crate::options::PtyJson;
use crate::registry::{E2bSandbox, Handles, lookup};

/// A terminal: an opaque, non-zero id, like `e2b_sandbox_t`. 0 is never a valid handle; ids
/// are never reused, and a destroyed one gives `E2B_ERR_CLOSED`. One thread may wait in
/// `e2b_pty_next()` while others type, resize or kill.
pub type E2bTerminal = u64;

static TERMINALS: Handles<Terminal> = Handles::new("terminal");

/// Starts a shell on a new PTY in the sandbox and puts its handle in `*out_terminal` (0 on
/// failure). Free it with `e2b_pty_destroy()`.
///
/// `options_json` may be NULL or `""` for defaults, or a JSON object with any of:
/// - `"cols"`, `"rows"`: the size (default 80 × 24);
/// - `"cwd"`: the shell's working directory, relative to the sandbox root or absolute
///   (default: the root);
/// - `"envs"`: `{"NAME": "value"}` environment variables for the shell, on top of the
///   sandbox's own;
/// - `"timeout_ms"`: the terminal is killed this long after it starts and ends as
///   `"timed_out"` (default: no limit);
/// - `"kill_on_destroy"`: `false` leaves it running after `e2b_pty_destroy()`, for
///   `e2b_pty_connect()` (default `true`).
///
/// A server without terminals (Jupyter Kernel Gateway) is `E2B_ERR_HTTP`.
///
/// # Safety
/// `options_json` is NULL or a NUL-terminated string; `out_terminal` is valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_pty_create(
    sandbox: E2bSandbox,
    options_json: *const c_char,
    out_terminal: *mut E2bTerminal,
) -> E2bErrorCode {
    let make = || {
        // SAFETY: forwarded from the caller.
        let json = unsafe { opt_str_arg(options_json, "options_json")? };
        let options: PtyJson = crate::options::parse(json, "terminal options")?;
        Ok(lookup(sandbox)?.pty().create_with(options.pty_options())?)
    };
    // SAFETY: forwarded from the caller.
    unsafe { TERMINALS.insert_into(out_terminal, "out_terminal", make) }
}

/// Attaches to the running terminal called `name` (see `e2b_pty_name()`; one left running by
/// `"kill_on_destroy": false`, or started by another client) and puts a new handle in
/// `*out_terminal` (0 on failure). Its first output is what the server kept of the terminal's
/// recent output. `kill_on_destroy` non-zero makes `e2b_pty_destroy()` kill it. An unknown
/// name is `E2B_ERR_TERMINAL_NOT_FOUND`.
///
/// # Safety
/// `name` is a NUL-terminated string; `out_terminal` is valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_pty_connect(
    sandbox: E2bSandbox,
    name: *const c_char,
    kill_on_destroy: c_int,
    out_terminal: *mut E2bTerminal,
) -> E2bErrorCode {
    let make = || {
        // SAFETY: forwarded from the caller.
        let name = unsafe { str_arg(name, "name")? };
        let mut terminal = lookup(sandbox)?.pty().connect(name)?;
        terminal.set_kill_on_drop(kill_on_destroy != 0);
        Ok(terminal)
    };
    // SAFETY: forwarded from the caller.
    unsafe { TERMINALS.insert_into(out_terminal, "out_terminal", make) }
}

/// The terminal's name on the server, for `e2b_pty_connect()`, in `*out`: a new string the
/// caller frees with `e2b_string_free()`; NULL on failure.
///
/// # Safety
/// `out` is valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_pty_name(
    terminal: E2bTerminal,
    out: *mut *mut c_char,
) -> E2bErrorCode {
    // SAFETY: forwarded from the caller.
    unsafe {
        string_out(out, "out", || {
            Ok(TERMINALS.get(terminal)?.name().to_string())
        })
    }
}

/// Types `text` into the terminal: a line needs its `"\n"`, Ctrl-C is `"\x03"`. Returns once
/// queued; input typed while the connection is down is written once it is back. A terminal
/// that has ended is `E2B_ERR_TERMINAL_NOT_FOUND`.
///
/// # Safety
/// `text` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_pty_send_input(
    terminal: E2bTerminal,
    text: *const c_char,
) -> E2bErrorCode {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let text = unsafe { str_arg(text, "text")? };
        Ok(TERMINALS.get(terminal)?.send_input(text)?)
    })
}

/// Resizes the terminal to `cols` × `rows` (each at least 1: 0 is `E2B_ERR_INVALID_ARGUMENT`).
#[unsafe(no_mangle)]
pub extern "C" fn e2b_pty_resize(terminal: E2bTerminal, cols: u16, rows: u16) -> E2bErrorCode {
    guard(|| Ok(TERMINALS.get(terminal)?.resize(PtySize::new(cols, rows))?))
}

/// The event as JSON for C.
fn event_json(event: PtyEvent) -> Value {
    match event {
        PtyEvent::Output(text) => json!({"kind": "output", "text": text}),
        PtyEvent::Gap(gap) => match gap {
            PtyGap::OutputLost => json!({"kind": "gap", "gap": "output_lost"}),
            PtyGap::OutputAmbiguous => json!({"kind": "gap", "gap": "output_ambiguous"}),
            PtyGap::InputUnconfirmed(input) => {
                json!({"kind": "gap", "gap": "input_unconfirmed", "input": input})
            }
            _ => json!({"kind": "gap", "gap": "other"}),
        },
        PtyEvent::End(end) => {
            let (end, code) = match end {
                PtyEnd::Exited { code } => ("exited", code),
                PtyEnd::Killed => ("killed", None),
                PtyEnd::TimedOut => ("timed_out", None),
                PtyEnd::Gone => ("gone", None),
                _ => ("other", None),
            };
            json!({"kind": "end", "end": end, "exit_code": code})
        }
        _ => json!({"kind": "other"}),
    }
}

/// Waits at most `timeout_ms` for the terminal's next event. On `E2B_OK`, `*out_json` is the
/// event, a new string the caller frees with `e2b_string_free()`, or NULL when none came in
/// time. Events, in order:
/// - `{"kind": "output", "text": "..."}`: what the PTY printed (the echo of input and escape
///   sequences included; invalid UTF-8 replaced by U+FFFD);
/// - `{"kind": "gap", "gap": "output_lost" | "output_ambiguous"}`: output around a reconnect
///   was lost, or could not be proven whole; `{"kind": "gap", "gap": "input_unconfirmed",
///   "input": "..."}`: input a broken connection left unconfirmed, not sent again;
/// - `{"kind": "end", "end": "exited" | "killed" | "timed_out" | "gone", "exit_code": 3}`:
///   the terminal is over (`exit_code` is the shell's exit status where the server reports
///   it, as the local sandbox does, else `null`). Every later call returns it again at once.
///
/// A connection lost for good is returned as its error, on every later call too.
///
/// # Safety
/// `out_json` is valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_pty_next(
    terminal: E2bTerminal,
    timeout_ms: u64,
    out_json: *mut *mut c_char,
) -> E2bErrorCode {
    let next = || {
        let terminal = TERMINALS.get(terminal)?;
        let event = terminal.recv_timeout(Duration::from_millis(timeout_ms))?;
        Ok(event.map(|e| event_json(e).to_string()))
    };
    // SAFETY: forwarded from the caller.
    unsafe { maybe_string_out(out_json, "out_json", next) }
}

/// Kills the terminal (its shell and everything in it), waiting for the server to confirm;
/// it then ends as `"killed"`. `out_killed` may be NULL; otherwise it gets 1, or 0 when the
/// terminal had already ended.
///
/// # Safety
/// `out_killed` is NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_pty_kill(
    terminal: E2bTerminal,
    out_killed: *mut c_int,
) -> E2bErrorCode {
    guard(|| {
        if !out_killed.is_null() {
            // SAFETY: non-NULL and valid, as the caller promises.
            unsafe { out_killed.write(0) };
        }
        let killed = TERMINALS.get(terminal)?.kill()?;
        if !out_killed.is_null() {
            // SAFETY: as above.
            unsafe { out_killed.write(c_int::from(killed)) };
        }
        Ok(())
    })
}

/// Frees the handle and kills the terminal unless it was made with `"kill_on_destroy": false`
/// (or connected with 0); a call waiting in `e2b_pty_next()` on another thread returns first.
/// 0 is ignored; a second destroy returns `E2B_ERR_CLOSED`.
#[unsafe(no_mangle)]
pub extern "C" fn e2b_pty_destroy(terminal: E2bTerminal) -> E2bErrorCode {
    guard(|| {
        if terminal != 0 {
            drop(TERMINALS.remove(terminal)?);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_become_the_documented_json() {
        let cases = [
            (
                PtyEvent::Output("hi\r\n".into()),
                json!({"kind": "output", "text": "hi\r\n"}),
            ),
            (
                PtyEvent::Gap(PtyGap::OutputLost),
                json!({"kind": "gap", "gap": "output_lost"}),
            ),
            (
                PtyEvent::Gap(PtyGap::InputUnconfirmed("ls\n".into())),
                json!({"kind": "gap", "gap": "input_unconfirmed", "input": "ls\n"}),
            ),
            (
                PtyEvent::End(PtyEnd::Exited { code: Some(3) }),
                json!({"kind": "end", "end": "exited", "exit_code": 3}),
            ),
            (
                PtyEvent::End(PtyEnd::TimedOut),
                json!({"kind": "end", "end": "timed_out", "exit_code": null}),
            ),
        ];
        for (event, want) in cases {
            assert_eq!(event_json(event), want);
        }
    }
}
