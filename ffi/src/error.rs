//! Error codes, the thread-local last error, and the guard every exported function runs in.

use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, UnwindSafe, catch_unwind};

use e2b_blocking::Error;

/// What an `e2b_*` call returns: `E2B_OK` (0) or why it failed.
///
/// The numbers are part of the ABI and never change; new codes are only ever added. Treat any
/// code you do not know as `E2B_ERR_OTHER`. After a failure, `e2b_last_error_message()` on the
/// same thread says what went wrong in words.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)] // the C names are the API
pub enum E2bErrorCode {
    /// Success.
    E2B_OK = 0,
    /// A pointer argument that must not be NULL was NULL, or a handle argument was 0.
    E2B_ERR_NULL_ARG = 1,
    /// A string argument was not valid UTF-8.
    E2B_ERR_INVALID_UTF8 = 2,
    /// An argument was malformed: bad options JSON, an unknown option, a bad value. Fix the
    /// call.
    E2B_ERR_INVALID_ARGUMENT = 3,
    /// A deadline passed. For an execution, the kernel has been interrupted and is usable
    /// again.
    E2B_ERR_TIMEOUT = 4,
    /// The sandbox no longer exists (killed, timed out, or its local process died). Destroy the
    /// handle and create a new sandbox.
    E2B_ERR_SANDBOX_NOT_FOUND = 5,
    /// The connection to a kernel was lost and could not be re-established in time, though the
    /// sandbox seemed to exist. Retrying later may work.
    E2B_ERR_CONNECTION_LOST = 6,
    /// The server rejected the credentials (HTTP 401 or 403).
    E2B_ERR_AUTHENTICATION = 7,
    /// The kernel is missing, or died or restarted during the call; its state may be lost.
    E2B_ERR_KERNEL = 8,
    /// The server answered an HTTP request with an unexpected status.
    E2B_ERR_HTTP = 9,
    /// The server sent something this library cannot understand.
    E2B_ERR_PROTOCOL = 10,
    /// The sandbox was killed or destroyed, or the handle was never valid: use after
    /// `e2b_sandbox_kill()` or `e2b_sandbox_destroy()`.
    E2B_ERR_CLOSED = 11,
    /// A callback returned non-zero; the run was abandoned and its kernel interrupted.
    E2B_ERR_CALLBACK = 12,
    /// A bug in this library: a Rust panic was caught at the boundary. The handle may still
    /// work; please report the message.
    E2B_ERR_PANIC = 13,
    /// Not available in this build (for example a backend not implemented yet).
    E2B_ERR_UNSUPPORTED = 14,
    /// Setting up the local sandbox failed (no suitable Python, venv build or server start).
    E2B_ERR_SETUP = 15,
    /// The server asked the client to slow down (HTTP 429).
    E2B_ERR_RATE_LIMITED = 16,
    /// The network failed below HTTP or websocket level (refused, reset, DNS, TLS).
    E2B_ERR_TRANSPORT = 17,
    /// A file or directory in the sandbox does not exist.
    E2B_ERR_FILE_NOT_FOUND = 18,
    /// A path that must be a directory is a file (listing a file, a file where a parent
    /// directory should be). The other way round is `E2B_ERR_IS_A_DIRECTORY`.
    E2B_ERR_NOT_A_DIRECTORY = 19,
    /// The sandbox refused access to a path.
    E2B_ERR_PERMISSION_DENIED = 20,
    /// A path that must be a file is a directory (reading a directory).
    E2B_ERR_IS_A_DIRECTORY = 21,
    /// Output of an execution or command was lost in a connection cut and could not be fetched
    /// again. The code ran (or the command may still have run to its end); what it printed is
    /// incomplete.
    E2B_ERR_OUTPUT_LOST = 22,
    /// A local file operation failed (reading or writing a file on this machine, not in the
    /// sandbox).
    E2B_ERR_IO = 23,
    /// A command exited with a non-zero code where success was required. `e2b_commands_run()`
    /// never returns it: there a non-zero exit code is data (`"exit_code"`), not an error.
    E2B_ERR_COMMAND_FAILED = 24,
    /// No command with that pid was started through the sandbox (`e2b_commands_connect()`).
    E2B_ERR_PROCESS_NOT_FOUND = 25,
    /// No terminal has that name, or it has ended (`e2b_pty_connect()`,
    /// `e2b_pty_send_input()`, `e2b_pty_resize()`).
    E2B_ERR_TERMINAL_NOT_FOUND = 26,
    /// The E2B sandbox is paused. Resume it (`e2b_sandbox_resume()`, or connect to it by id)
    /// or create it with `"auto_resume": true` in its lifecycle.
    E2B_ERR_SANDBOX_PAUSED = 27,
    /// The sandbox could not be reached while not known to be stopped (E2B's proxy says its
    /// port is not open). Retrying later may work.
    E2B_ERR_SANDBOX_UNREACHABLE = 28,
    /// A paused E2B sandbox cannot be resumed with its memory (its guest agent did not answer
    /// when it was paused): resume it with `"on_resume": "reboot"`.
    E2B_ERR_GUEST_UNRESPONSIVE = 29,
    /// The service is busy right now (HTTP 503); nothing was changed. Retry after a short wait.
    E2B_ERR_SERVICE_BUSY = 30,
    /// The sandbox's disk is full (HTTP 507).
    E2B_ERR_NOT_ENOUGH_SPACE = 31,
    /// Any other failure; the message says what.
    E2B_ERR_OTHER = 99,
}

impl E2bErrorCode {
    /// Every code, for `e2b_error_code_name` and the tests.
    pub(crate) const ALL: [E2bErrorCode; 33] = [
        E2bErrorCode::E2B_OK,
        E2bErrorCode::E2B_ERR_NULL_ARG,
        E2bErrorCode::E2B_ERR_INVALID_UTF8,
        E2bErrorCode::E2B_ERR_INVALID_ARGUMENT,
        E2bErrorCode::E2B_ERR_TIMEOUT,
        E2bErrorCode::E2B_ERR_SANDBOX_NOT_FOUND,
        E2bErrorCode::E2B_ERR_CONNECTION_LOST,
        E2bErrorCode::E2B_ERR_AUTHENTICATION,
        E2bErrorCode::E2B_ERR_KERNEL,
        E2bErrorCode::E2B_ERR_HTTP,
        E2bErrorCode::E2B_ERR_PROTOCOL,
        E2bErrorCode::E2B_ERR_CLOSED,
        E2bErrorCode::E2B_ERR_CALLBACK,
        E2bErrorCode::E2B_ERR_PANIC,
        E2bErrorCode::E2B_ERR_UNSUPPORTED,
        E2bErrorCode::E2B_ERR_SETUP,
        E2bErrorCode::E2B_ERR_RATE_LIMITED,
        E2bErrorCode::E2B_ERR_TRANSPORT,
        E2bErrorCode::E2B_ERR_FILE_NOT_FOUND,
        E2bErrorCode::E2B_ERR_NOT_A_DIRECTORY,
        E2bErrorCode::E2B_ERR_PERMISSION_DENIED,
        E2bErrorCode::E2B_ERR_IS_A_DIRECTORY,
        E2bErrorCode::E2B_ERR_OUTPUT_LOST,
        E2bErrorCode::E2B_ERR_IO,
        E2bErrorCode::E2B_ERR_COMMAND_FAILED,
        E2bErrorCode::E2B_ERR_PROCESS_NOT_FOUND,
        E2bErrorCode::E2B_ERR_TERMINAL_NOT_FOUND,
        E2bErrorCode::E2B_ERR_SANDBOX_PAUSED,
        E2bErrorCode::E2B_ERR_SANDBOX_UNREACHABLE,
        E2bErrorCode::E2B_ERR_GUEST_UNRESPONSIVE,
        E2bErrorCode::E2B_ERR_SERVICE_BUSY,
        E2bErrorCode::E2B_ERR_NOT_ENOUGH_SPACE,
        E2bErrorCode::E2B_ERR_OTHER,
    ];

    /// The C name, NUL-terminated, for `e2b_error_code_name`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            E2bErrorCode::E2B_OK => "E2B_OK\0",
            E2bErrorCode::E2B_ERR_NULL_ARG => "E2B_ERR_NULL_ARG\0",
            E2bErrorCode::E2B_ERR_INVALID_UTF8 => "E2B_ERR_INVALID_UTF8\0",
            E2bErrorCode::E2B_ERR_INVALID_ARGUMENT => "E2B_ERR_INVALID_ARGUMENT\0",
            E2bErrorCode::E2B_ERR_TIMEOUT => "E2B_ERR_TIMEOUT\0",
            E2bErrorCode::E2B_ERR_SANDBOX_NOT_FOUND => "E2B_ERR_SANDBOX_NOT_FOUND\0",
            E2bErrorCode::E2B_ERR_CONNECTION_LOST => "E2B_ERR_CONNECTION_LOST\0",
            E2bErrorCode::E2B_ERR_AUTHENTICATION => "E2B_ERR_AUTHENTICATION\0",
            E2bErrorCode::E2B_ERR_KERNEL => "E2B_ERR_KERNEL\0",
            E2bErrorCode::E2B_ERR_HTTP => "E2B_ERR_HTTP\0",
            E2bErrorCode::E2B_ERR_PROTOCOL => "E2B_ERR_PROTOCOL\0",
            E2bErrorCode::E2B_ERR_CLOSED => "E2B_ERR_CLOSED\0",
            E2bErrorCode::E2B_ERR_CALLBACK => "E2B_ERR_CALLBACK\0",
            E2bErrorCode::E2B_ERR_PANIC => "E2B_ERR_PANIC\0",
            E2bErrorCode::E2B_ERR_UNSUPPORTED => "E2B_ERR_UNSUPPORTED\0",
            E2bErrorCode::E2B_ERR_SETUP => "E2B_ERR_SETUP\0",
            E2bErrorCode::E2B_ERR_RATE_LIMITED => "E2B_ERR_RATE_LIMITED\0",
            E2bErrorCode::E2B_ERR_TRANSPORT => "E2B_ERR_TRANSPORT\0",
            E2bErrorCode::E2B_ERR_FILE_NOT_FOUND => "E2B_ERR_FILE_NOT_FOUND\0",
            E2bErrorCode::E2B_ERR_NOT_A_DIRECTORY => "E2B_ERR_NOT_A_DIRECTORY\0",
            E2bErrorCode::E2B_ERR_PERMISSION_DENIED => "E2B_ERR_PERMISSION_DENIED\0",
            E2bErrorCode::E2B_ERR_IS_A_DIRECTORY => "E2B_ERR_IS_A_DIRECTORY\0",
            E2bErrorCode::E2B_ERR_OUTPUT_LOST => "E2B_ERR_OUTPUT_LOST\0",
            E2bErrorCode::E2B_ERR_IO => "E2B_ERR_IO\0",
            E2bErrorCode::E2B_ERR_COMMAND_FAILED => "E2B_ERR_COMMAND_FAILED\0",
            E2bErrorCode::E2B_ERR_PROCESS_NOT_FOUND => "E2B_ERR_PROCESS_NOT_FOUND\0",
            E2bErrorCode::E2B_ERR_TERMINAL_NOT_FOUND => "E2B_ERR_TERMINAL_NOT_FOUND\0",
            E2bErrorCode::E2B_ERR_SANDBOX_PAUSED => "E2B_ERR_SANDBOX_PAUSED\0",
            E2bErrorCode::E2B_ERR_SANDBOX_UNREACHABLE => "E2B_ERR_SANDBOX_UNREACHABLE\0",
            E2bErrorCode::E2B_ERR_GUEST_UNRESPONSIVE => "E2B_ERR_GUEST_UNRESPONSIVE\0",
            E2bErrorCode::E2B_ERR_SERVICE_BUSY => "E2B_ERR_SERVICE_BUSY\0",
            E2bErrorCode::E2B_ERR_NOT_ENOUGH_SPACE => "E2B_ERR_NOT_ENOUGH_SPACE\0",
            E2bErrorCode::E2B_ERR_OTHER => "E2B_ERR_OTHER\0",
        }
    }
}

/// A failure on its way to the caller: a code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FfiError {
    pub(crate) code: E2bErrorCode,
    pub(crate) message: String,
}

impl FfiError {
    pub(crate) fn new(code: E2bErrorCode, message: impl Into<String>) -> FfiError {
        FfiError {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn null(what: &str) -> FfiError {
        FfiError::new(E2bErrorCode::E2B_ERR_NULL_ARG, format!("{what} is NULL"))
    }
}

impl From<Error> for FfiError {
    fn from(e: Error) -> FfiError {
        use E2bErrorCode::*;
        let code = match &e {
            Error::SandboxNotFound { .. } => E2B_ERR_SANDBOX_NOT_FOUND,
            Error::Timeout { .. } | Error::InterruptIgnored { .. } => E2B_ERR_TIMEOUT,
            Error::ConnectionLost { .. } => E2B_ERR_CONNECTION_LOST,
            Error::Authentication { .. } => E2B_ERR_AUTHENTICATION,
            Error::RateLimited { .. } => E2B_ERR_RATE_LIMITED,
            Error::KernelNotFound { .. }
            | Error::KernelDisrupted { .. }
            | Error::KernelSetup { .. } => E2B_ERR_KERNEL,
            Error::Http { .. } => E2B_ERR_HTTP,
            // A refused certificate was a transport error before it had a variant of its own.
            Error::Transport { .. } | Error::UntrustedCertificate { .. } => E2B_ERR_TRANSPORT,
            Error::Protocol { .. } => E2B_ERR_PROTOCOL,
            Error::FileNotFound { .. } => E2B_ERR_FILE_NOT_FOUND,
            Error::NotADirectory { .. } => E2B_ERR_NOT_A_DIRECTORY,
            Error::PermissionDenied { .. } => E2B_ERR_PERMISSION_DENIED,
            Error::IsADirectory { .. } => E2B_ERR_IS_A_DIRECTORY,
            Error::OutputLost { .. } => E2B_ERR_OUTPUT_LOST,
            Error::Io { .. } => E2B_ERR_IO,
            Error::CommandFailed { .. } => E2B_ERR_COMMAND_FAILED,
            Error::ProcessNotFound { .. } => E2B_ERR_PROCESS_NOT_FOUND,
            Error::TerminalNotFound { .. } => E2B_ERR_TERMINAL_NOT_FOUND,
            Error::InvalidArgument(_)
            | Error::RequestTooLarge { .. }
            | Error::Unsupported { .. } => E2B_ERR_INVALID_ARGUMENT,
            Error::Setup { .. }
            | Error::IsolationUnavailable { .. }
            | Error::SpawnFailed { .. } => E2B_ERR_SETUP,
            // Our own callback wrappers never panic on purpose (an abort is recognised before
            // this conversion), so a panic here is a bug in this library.
            Error::CallbackPanicked { .. } => E2B_ERR_PANIC,
            Error::Closed => E2B_ERR_CLOSED,
            Error::SandboxPaused { .. } => E2B_ERR_SANDBOX_PAUSED,
            Error::SandboxUnreachable { .. } => E2B_ERR_SANDBOX_UNREACHABLE,
            Error::GuestUnresponsive { .. } => E2B_ERR_GUEST_UNRESPONSIVE,
            Error::ServiceBusy { .. } => E2B_ERR_SERVICE_BUSY,
            Error::NotEnoughSpace { .. } => E2B_ERR_NOT_ENOUGH_SPACE,
            // Variants added later map here until they get a code of their own.
            #[allow(unreachable_patterns)]
            _ => E2B_ERR_OTHER,
        };
        FfiError::new(code, e.report())
    }
}

struct LastError {
    code: E2bErrorCode,
    /// Kept as a C string so `e2b_last_error_message` can hand out a pointer into it.
    message: CString,
}

thread_local! {
    static LAST_ERROR: RefCell<LastError> = RefCell::new(LastError {
        code: E2bErrorCode::E2B_OK,
        message: CString::default(),
    });
}

/// Records the outcome of the call that is returning on this thread.
pub(crate) fn set_last(code: E2bErrorCode, message: &str) {
    // Interior NULs would cut the message short in C; show them instead.
    let message = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    // `try_with` fails only while the thread is being torn down; nothing can read it then.
    let _ = LAST_ERROR.try_with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            last.code = code;
            last.message = message;
        }
    });
}

/// The code of the last call on this thread.
pub(crate) fn last_code() -> E2bErrorCode {
    LAST_ERROR
        .try_with(|last| last.try_borrow().map(|l| l.code).ok())
        .ok()
        .flatten()
        .unwrap_or(E2bErrorCode::E2B_OK)
}

/// A pointer to the message of the last call on this thread; valid until the next call that
/// records an outcome on this thread.
pub(crate) fn last_message_ptr() -> *const c_char {
    LAST_ERROR
        .try_with(|last| last.try_borrow().map(|l| l.message.as_ptr()).ok())
        .ok()
        .flatten()
        .unwrap_or(c"".as_ptr())
}

/// Runs `f` with the bytes of the last message of this thread.
pub(crate) fn with_last_message<T>(f: impl FnOnce(&[u8]) -> T) -> Option<T> {
    LAST_ERROR
        .try_with(|last| last.try_borrow().map(|l| f(l.message.as_bytes())).ok())
        .ok()
        .flatten()
}

/// Runs the body of a fallible exported function: catches panics, records the outcome as the
/// thread's last error and returns its code.
pub(crate) fn guard(f: impl FnOnce() -> Result<(), FfiError>) -> E2bErrorCode {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => {
            set_last(E2bErrorCode::E2B_OK, "");
            E2bErrorCode::E2B_OK
        }
        Ok(Err(e)) => {
            set_last(e.code, &e.message);
            e.code
        }
        Err(payload) => {
            let message = format!(
                "internal error (a Rust panic was caught at the C boundary): {}",
                panic_message(payload.as_ref())
            );
            // Dropping the payload runs foreign Drop code; keep that inside the boundary too.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            set_last(E2bErrorCode::E2B_ERR_PANIC, &message);
            E2bErrorCode::E2B_ERR_PANIC
        }
    }
}

/// Runs the body of an exported function that cannot fail (getters, free functions): a panic
/// yields `fallback` and leaves the last error alone.
pub(crate) fn guard_infallible<T>(fallback: T, f: impl FnOnce() -> T + UnwindSafe) -> T {
    match catch_unwind(f) {
        Ok(v) => v,
        Err(payload) => {
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            fallback
        }
    }
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_named() {
        for code in E2bErrorCode::ALL {
            let name = code.name();
            assert!(name.starts_with("E2B_") && name.ends_with('\0'), "{name}");
            assert_eq!(format!("{code:?}\0"), name);
        }
        assert_eq!(E2bErrorCode::E2B_OK as i32, 0);
        assert_eq!(E2bErrorCode::E2B_ERR_CLOSED as i32, 11);
        assert_eq!(E2bErrorCode::E2B_ERR_PERMISSION_DENIED as i32, 20);
        assert_eq!(E2bErrorCode::E2B_ERR_IS_A_DIRECTORY as i32, 21);
        assert_eq!(E2bErrorCode::E2B_ERR_OUTPUT_LOST as i32, 22);
        assert_eq!(E2bErrorCode::E2B_ERR_IO as i32, 23);
        assert_eq!(E2bErrorCode::E2B_ERR_COMMAND_FAILED as i32, 24);
        let numbers: Vec<i32> = E2bErrorCode::ALL.iter().map(|c| *c as i32).collect();
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "ALL lists every code once, in order: {numbers:?}"
        );
        assert_eq!(E2bErrorCode::E2B_ERR_OTHER as i32, 99);
    }

    #[test]
    fn panic_becomes_an_error_code_with_its_message() {
        let code = guard(|| panic!("boom {}", 42));
        assert_eq!(code, E2bErrorCode::E2B_ERR_PANIC);
        assert_eq!(last_code(), E2bErrorCode::E2B_ERR_PANIC);
        let msg = with_last_message(|m| String::from_utf8_lossy(m).into_owned()).unwrap();
        assert!(msg.contains("boom 42"), "{msg}");

        // The next successful call clears it.
        assert_eq!(guard(|| Ok(())), E2bErrorCode::E2B_OK);
        assert_eq!(last_code(), E2bErrorCode::E2B_OK);
        assert_eq!(with_last_message(<[u8]>::len), Some(0));
    }

    #[test]
    fn panic_with_a_panicking_payload_is_contained() {
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("payload drop");
            }
        }
        let code = guard(|| std::panic::panic_any(Bomb));
        assert_eq!(code, E2bErrorCode::E2B_ERR_PANIC);
        assert_eq!(guard_infallible(7, || std::panic::panic_any(Bomb)), 7);
    }

    #[test]
    fn errors_map_to_codes_with_their_causes() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = FfiError::from(Error::Transport {
            endpoint: "GET /api".into(),
            source: Box::new(io),
        });
        assert_eq!(e.code, E2bErrorCode::E2B_ERR_TRANSPORT);
        assert_eq!(e.message, "could not reach GET /api: refused");
        assert_eq!(
            FfiError::from(Error::Closed).code,
            E2bErrorCode::E2B_ERR_CLOSED
        );
    }

    #[test]
    fn file_command_and_output_errors_have_codes_of_their_own() {
        use E2bErrorCode::*;
        let path = || "a/b".to_string();
        let cases = [
            (Error::FileNotFound { path: path() }, E2B_ERR_FILE_NOT_FOUND),
            (
                Error::NotADirectory { path: path() },
                E2B_ERR_NOT_A_DIRECTORY,
            ),
            (Error::IsADirectory { path: path() }, E2B_ERR_IS_A_DIRECTORY),
            (
                Error::PermissionDenied { path: path() },
                E2B_ERR_PERMISSION_DENIED,
            ),
            (
                Error::OutputLost {
                    missing: Some(2),
                    partial: Box::default(),
                },
                E2B_ERR_OUTPUT_LOST,
            ),
            (
                Error::Io {
                    path: "/tmp/x".into(),
                    source: std::io::Error::other("disk full"),
                },
                E2B_ERR_IO,
            ),
            (
                Error::CommandFailed {
                    exit_code: 3,
                    stdout: String::new(),
                    stderr: "boom\n".into(),
                },
                E2B_ERR_COMMAND_FAILED,
            ),
            (
                Error::TerminalNotFound {
                    name: "e2b1".into(),
                },
                E2B_ERR_TERMINAL_NOT_FOUND,
            ),
        ];
        for (error, code) in cases {
            let text = error.to_string();
            let e = FfiError::from(error);
            assert_eq!(e.code, code, "{text}");
            assert!(e.message.starts_with(&text), "{}", e.message);
        }
        let io = FfiError::from(Error::Io {
            path: "/tmp/x".into(),
            source: std::io::Error::other("disk full"),
        });
        assert_eq!(io.message, "/tmp/x: local I/O failed: disk full");
    }

    #[test]
    fn interior_nul_does_not_truncate_the_message() {
        set_last(E2bErrorCode::E2B_ERR_OTHER, "a\0b");
        let msg = with_last_message(|m| m.to_vec()).unwrap();
        assert_eq!(msg, b"a\\0b");
    }
}
