//! The crate's one error type.

use std::fmt;
use std::time::Duration;

/// A boxed error kept as the [`source`](std::error::Error::source) of an [`Error`].
///
/// The wrapped types (`std::io::Error`, `ureq::Error`, `tungstenite::Error`, …) are not part of
/// this crate's API; inspect them only for diagnostics.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in this crate.
///
/// Each variant says what a caller can do about it. The underlying cause, if any, is available
/// through [`std::error::Error::source`] and is not repeated in the message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The sandbox no longer exists (killed, timed out, or its local process died).
    /// Fatal for this handle: create a new sandbox.
    #[error("sandbox {sandbox_id} not found: it was killed or has exited")]
    SandboxNotFound {
        /// The sandbox's id.
        sandbox_id: String,
    },

    /// The sandbox is paused (by this handle, another client, or its lifecycle's `on_timeout`
    /// pause). Nothing runs in it until it is resumed: resume it with
    /// [`E2bSandbox::resume`](crate::e2b::E2bSandbox::resume) (or connect to it by id), or create
    /// it with [`Lifecycle::auto_resume`](crate::e2b::Lifecycle::auto_resume) so that the next call
    /// resumes it.
    #[error("sandbox {sandbox_id} is paused: resume it (connect) before using it")]
    SandboxPaused {
        /// The sandbox's id.
        sandbox_id: String,
    },

    /// The sandbox could not be reached while it is not known to be stopped: E2B's proxy says it
    /// runs but the port is not open (its network or the service inside is down), or it gave
    /// another 502. Retrying later may work; [`E2bSandbox::info`](crate::e2b::E2bSandbox::info)
    /// tells the sandbox's state.
    #[error("sandbox {sandbox_id} is unreachable: {message}")]
    SandboxUnreachable {
        /// The sandbox's id.
        sandbox_id: String,
        /// What the proxy said.
        message: String,
    },

    /// A paused sandbox cannot be resumed with its memory: its snapshot was taken while the
    /// guest agent (envd) did not answer, and restoring that memory would bring the
    /// unresponsive agent back. Resume it with
    /// [`OnResume::Reboot`](crate::e2b::OnResume::Reboot), which cold-boots it from disk.
    #[error(
        "sandbox {sandbox_id} was paused with an unresponsive guest agent: resume it with OnResume::Reboot"
    )]
    GuestUnresponsive {
        /// The sandbox's id.
        sandbox_id: String,
    },

    /// The service refused the call because it is busy right now (HTTP 503): no capacity to
    /// place a sandbox, or the sandbox's node cannot serve the request yet (a strict pause
    /// whose guest does not answer). Nothing was changed; the same call may be retried after
    /// a short wait.
    #[error("service busy: HTTP 503 from {endpoint}: {message}")]
    ServiceBusy {
        /// Method and path of the request.
        endpoint: String,
        /// The service's message, shortened.
        message: String,
    },

    /// The sandbox's disk is full (HTTP 507). Free space in the sandbox, or create it from a
    /// template with a larger disk.
    #[error("not enough space: {endpoint}: {message}")]
    NotEnoughSpace {
        /// Method and path of the request.
        endpoint: String,
        /// The server's message, shortened.
        message: String,
    },

    /// A deadline passed. `phase` says which one; for [`TimeoutPhase::Execution`] the kernel was
    /// interrupted and went idle, so it is usable again (when it ignores the interrupt the error
    /// is [`Error::InterruptIgnored`] instead).
    #[error("timed out after {after:?} while {phase}")]
    Timeout {
        /// What was being waited for.
        phase: TimeoutPhase,
        /// The deadline that passed.
        after: Duration,
    },

    /// An execution passed its deadline and the kernel did not stop within
    /// [`Timeouts::interrupt_grace`](crate::Timeouts::interrupt_grace) of being interrupted:
    /// the code ignores SIGINT or is stuck in native code. Unless `restarted`, the kernel still
    /// runs it and later calls on this context wait behind it: restart the context
    /// ([`Sandbox::restart_context`](crate::Sandbox::restart_context) with
    /// [`Sandbox::default_context`](crate::Sandbox::default_context) for the default one), or
    /// ask for that up front with
    /// [`CodeBuilder::restart_on_timeout`](crate::CodeBuilder::restart_on_timeout).
    #[error("execution timed out after {after:?} and kernel {kernel_id} ignored the interrupt; {}",
        if *restarted { "it was restarted and its state is lost" } else { "it is still busy: restart the context" })]
    InterruptIgnored {
        /// The kernel (the context's id) that ran the execution.
        kernel_id: String,
        /// The execution's deadline.
        after: Duration,
        /// Whether the context was restarted (state lost, usable again).
        restarted: bool,
    },

    /// A request is larger than the server accepts in one websocket message (jupyter_server:
    /// Tornado's 10 MiB by default), so it was not sent. Send less (write big inputs with
    /// `files()` and read them in code), or raise the limit with
    /// [`SandboxBuilder::max_request_size`](crate::SandboxBuilder::max_request_size) if the
    /// server accepts more.
    #[error("request of {size} bytes is over the server's message limit of {limit} bytes")]
    RequestTooLarge {
        /// The encoded request's size in bytes.
        size: usize,
        /// The limit it was checked against.
        limit: usize,
    },

    /// Setting a kernel up (the output hook, env vars, working directory) failed in the kernel.
    /// The kernel was shut down; the message names the step and the kernel's error.
    #[error("setting up kernel {kernel_id} failed: {message}")]
    KernelSetup {
        /// The kernel id.
        kernel_id: String,
        /// The step and the kernel's error (`name: value`).
        message: String,
    },

    /// The websocket to a kernel was lost and could not be re-established within the reconnect
    /// budget, while the sandbox itself still seemed to exist; or the connection broke every
    /// time one request was sent, before the kernel received it. Retrying later may work.
    #[error("connection to kernel {kernel_id} lost")]
    ConnectionLost {
        /// The kernel whose connection was lost (`terminal:<name>` for a terminal's).
        kernel_id: String,
        /// What broke the connection last.
        #[source]
        source: Option<BoxError>,
    },

    /// The server rejected the credentials (HTTP 401 or 403). Fix the token or API key.
    #[error("authentication failed: HTTP {status} from {endpoint}")]
    Authentication {
        /// The HTTP status code.
        status: u16,
        /// Method and path of the request (never the query string, which may hold a token).
        endpoint: String,
    },

    /// The server asked the client to slow down (HTTP 429).
    #[error("rate limited by {endpoint}")]
    RateLimited {
        /// Method and path of the request.
        endpoint: String,
        /// How long the server asked to wait, when it said.
        retry_after: Option<Duration>,
    },

    /// The kernel does not exist (any more).
    #[error("kernel {kernel_id} not found")]
    KernelNotFound {
        /// The kernel id.
        kernel_id: String,
    },

    /// The terminal does not exist (any more): its shell exited, it was killed, or no terminal
    /// has that name. Also returned when sending to a terminal whose session has ended.
    #[error("terminal {name} not found")]
    TerminalNotFound {
        /// The terminal's name.
        name: String,
    },

    /// The kernel died or was restarted while a request was in flight; the request's output is
    /// incomplete and kernel state may be lost. The next call runs on the restarted kernel.
    #[error("kernel {kernel_id} {event} during the request")]
    KernelDisrupted {
        /// The kernel id.
        kernel_id: String,
        /// What happened.
        event: KernelEvent,
    },

    /// Output of an execution was lost in a connection cut and could not be fetched again (the
    /// kernel's replay ring had dropped it). `partial` holds what did arrive; the code ran.
    #[error("output of the execution was lost in a connection cut ({} message(s) missing)", missing.map_or_else(|| "unknown".to_string(), |n| n.to_string()))]
    OutputLost {
        /// How many messages are missing, when known.
        missing: Option<u64>,
        /// Everything that did arrive.
        partial: Box<crate::model::execution::Execution>,
    },

    /// The server answered an HTTP request with an unexpected status.
    #[error("HTTP {status} from {endpoint}: {message}")]
    Http {
        /// The HTTP status code.
        status: u16,
        /// Method and path of the request.
        endpoint: String,
        /// The server's message, shortened.
        message: String,
    },

    /// The network failed below HTTP or websocket level (refused, reset, DNS, TLS).
    #[error("could not reach {endpoint}")]
    Transport {
        /// Method and path, or the host, that could not be reached.
        endpoint: String,
        /// The I/O, TLS or HTTP client error.
        #[source]
        source: BoxError,
    },

    /// The server's TLS certificate is not trusted: `reason` says what is wrong with it and the
    /// message what to do (trust its CA with
    /// [`SandboxBuilder::add_root_certificate`](crate::SandboxBuilder::add_root_certificate), or
    /// exactly this certificate with
    /// [`SandboxBuilder::trust_server_certificate`](crate::SandboxBuilder::trust_server_certificate)).
    #[error("the TLS certificate of {endpoint} is not trusted: {reason}; {hint}")]
    UntrustedCertificate {
        /// Method and path, or the host, whose certificate was refused.
        endpoint: String,
        /// What is wrong with the certificate.
        reason: String,
        /// What to do about it.
        hint: &'static str,
        /// The TLS library's error.
        #[source]
        source: BoxError,
    },

    /// The server sent something this client cannot understand (malformed JSON, a bad frame,
    /// an HTML page where JSON was expected, an oversize message).
    #[error("protocol error: {message}")]
    Protocol {
        /// What was wrong, without the offending payload.
        message: String,
        /// The parser's error, when there is one.
        #[source]
        source: Option<BoxError>,
    },

    /// A file or directory in the sandbox does not exist.
    #[error("{path}: no such file or directory")]
    FileNotFound {
        /// The path: relative to the sandbox root, or absolute when the call named an
        /// absolute path or the path is outside the root.
        path: String,
    },

    /// A path that must be a directory is a file, or the other way round.
    #[error("{path}: not a directory")]
    NotADirectory {
        /// The path: relative to the sandbox root, or absolute when the call named an
        /// absolute path or the path is outside the root.
        path: String,
    },

    /// A path that must be a file is a directory (reading or downloading a directory).
    #[error("{path}: is a directory")]
    IsADirectory {
        /// The path: relative to the sandbox root, or absolute when the call named an
        /// absolute path or the path is outside the root.
        path: String,
    },

    /// The sandbox refused access to a path; from
    /// [`LocalSandbox::open`](crate::local::LocalSandbox::open) and
    /// [`create`](crate::local::LocalSandbox::create), also a symbolic link on the path.
    #[error("{path}: permission denied")]
    PermissionDenied {
        /// The path: relative to the sandbox root, or absolute when the call named an
        /// absolute path or the path is outside the root.
        path: String,
    },

    /// A local file operation failed (saving an image, reading a file to upload).
    #[error("{path}: local I/O failed")]
    Io {
        /// The local path.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// The code raised an exception. Only produced on request, by
    /// [`Execution::check`](crate::Execution::check): an exception is data
    /// ([`Execution::error`](crate::Execution::error)), not an error, until then.
    #[error("the code raised {}: {}", .0.name, .0.value)]
    ExecutionFailed(Box<crate::model::execution::ExecutionError>),

    /// A command exited with a non-zero code. Only produced on request, by
    /// `CommandResult::check`: a non-zero exit code is data, not an error, until then.
    #[error("command exited with code {exit_code}{}", last_line(stderr))]
    CommandFailed {
        /// The exit code; negative when a signal killed the process (`-9` for SIGKILL).
        exit_code: i32,
        /// Everything the command wrote to stdout.
        stdout: String,
        /// Everything the command wrote to stderr.
        stderr: String,
    },

    /// No command with this pid was started through the sandbox, or it ended too long ago
    /// (from [`Commands::connect`](crate::Commands::connect)).
    #[error("no command with pid {pid} was started through this sandbox")]
    ProcessNotFound {
        /// The pid asked for.
        pid: u32,
    },

    /// The caller passed something this crate cannot act on. Fix the call.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The sandbox's software is too old, or of a kind that lacks what the call needs (on E2B:
    /// its envd version, which the control plane reports).
    #[error("{feature} needs {needs}; the sandbox has {found}")]
    Unsupported {
        /// What was asked for.
        feature: &'static str,
        /// What it needs (`envd 0.3.0`).
        needs: String,
        /// What the sandbox has.
        found: String,
    },

    /// Setting up the local sandbox failed: no suitable Python, the venv could not be built, or
    /// the server did not start. The message says which step; the cause is the source.
    #[error("local sandbox setup failed: {message}")]
    Setup {
        /// The step that failed.
        message: String,
        /// What made it fail.
        #[source]
        source: Option<BoxError>,
    },

    /// JupyterHub could not start the user's server: its spawner failed, or the server did not
    /// come up within the Hub's own timeouts. `message` is the Hub's (its log says more);
    /// asking again starts a new spawn.
    #[error("JupyterHub could not start server {server}: {message}")]
    SpawnFailed {
        /// JupyterHub's name for the server: `user`, or `user/name` for a named server.
        server: String,
        /// What the Hub reported.
        message: String,
    },

    /// The local sandbox cannot be isolated here: no bubblewrap, or no user namespaces for it.
    /// Install bubblewrap, or opt out explicitly with
    /// [`LocalOptions::isolation`](crate::LocalOptions::isolation)`(`[`Isolation::None`](crate::Isolation::None)`)`.
    #[error(
        "the local sandbox cannot be isolated: {reason}; install bubblewrap (Debian/Ubuntu: \
         apt-get install bubblewrap) or opt out with LocalOptions::isolation(Isolation::None)"
    )]
    IsolationUnavailable {
        /// What is missing.
        reason: String,
        /// What failed, when something was tried.
        #[source]
        source: Option<BoxError>,
    },

    /// A user callback panicked. The execution was abandoned; the connection is unaffected.
    #[error("a {callback} callback panicked: {message}")]
    CallbackPanicked {
        /// Which callback.
        callback: &'static str,
        /// The panic message, when it was a string.
        message: String,
    },

    /// A command's stdin is closed: by
    /// [`CommandHandle::close_stdin`](crate::CommandHandle::close_stdin), or because the command
    /// (and everything that inherited its stdin) has ended.
    #[error("the command's stdin is closed")]
    StdinClosed,

    /// The handle was closed; create a new sandbox.
    #[error("the sandbox handle is closed")]
    Closed,
}

/// What was being waited for when a [`Error::Timeout`] happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutPhase {
    /// Starting the local server or creating a cloud sandbox.
    SandboxStart,
    /// Opening a TCP or websocket connection.
    Connect,
    /// Waiting for a newly started kernel to answer its first connection.
    KernelStart,
    /// An HTTP request/response.
    Request,
    /// A code execution (the kernel has been interrupted).
    Execution,
    /// Waiting for a kernel reply other than an execution.
    KernelReply,
    /// A command in the sandbox ran past its timeout; its process group has been killed.
    Command,
    /// Shutting down.
    Close,
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutPhase::SandboxStart => "starting the sandbox",
            TimeoutPhase::Connect => "connecting",
            TimeoutPhase::KernelStart => "waiting for a new kernel to start",
            TimeoutPhase::Request => "waiting for an HTTP response",
            TimeoutPhase::Execution => "executing code",
            TimeoutPhase::KernelReply => "waiting for a kernel reply",
            TimeoutPhase::Command => "running a command (it was killed)",
            TimeoutPhase::Close => "closing",
        })
    }
}

/// A kernel life-cycle event that ends in-flight requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KernelEvent {
    /// The kernel process died and the server is restarting it.
    Restarting,
    /// The kernel died and the server gave up restarting it.
    Dead,
    /// The kernel was shut down or restarted on request.
    Shutdown,
}

impl fmt::Display for KernelEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KernelEvent::Restarting => "died and is restarting",
            KernelEvent::Dead => "died",
            KernelEvent::Shutdown => "was shut down or restarted",
        })
    }
}

/// `": <last non-empty line of stderr>"`, shortened, for [`Error::CommandFailed`]'s message.
fn last_line(stderr: &str) -> String {
    const MAX: usize = 200;
    match stderr.lines().rev().map(str::trim).find(|l| !l.is_empty()) {
        Some(line) if line.chars().count() > MAX => {
            format!(": {}…", line.chars().take(MAX).collect::<String>())
        }
        Some(line) => format!(": {line}"),
        None => String::new(),
    }
}

/// An [`Error`] whose `Debug` form is its [report](Error::report): the message and its causes
/// on one line. It is the error type for a `main` that should print errors the way a user
/// reads them: `?` turns an [`Error`] into it, and Rust prints a failed `main`'s error with
/// `Debug`, which for [`Error`] itself lists every field.
///
/// # Examples
///
/// ```no_run
/// use e2b_blocking::{Report, Sandbox};
///
/// fn main() -> Result<(), Report> {
///     let sbx = Sandbox::local()?; // without bubblewrap: "Error: the local sandbox cannot be isolated: …"
///     println!("{:?}", sbx.run_code("1 + 1")?.text());
///     Ok(())
/// }
/// ```
pub struct Report(Error);

impl Report {
    /// The error, to match on its variant.
    pub fn error(&self) -> &Error {
        &self.0
    }

    /// The error, taken back.
    pub fn into_error(self) -> Error {
        self.0
    }
}

impl From<Error> for Report {
    fn from(error: Error) -> Report {
        Report(error)
    }
}

impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.report())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.report())
    }
}

impl Error {
    /// The message followed by every cause in `source()` order, joined with ": ": one line
    /// for a log or a user (the C ABI's error messages are made of it). An empty cause, or one
    /// whose text its parent already ends with (many wrappers print their source), is skipped.
    pub fn report(&self) -> String {
        let mut text = self.to_string();
        let mut next = std::error::Error::source(self);
        while let Some(cause) = next {
            let line = cause.to_string();
            if !line.is_empty() && !text.ends_with(&line) {
                text.push_str(": ");
                text.push_str(&line);
            }
            next = cause.source();
        }
        text
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Error {
        Error::Protocol {
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn protocol_from(message: impl Into<String>, source: impl Into<BoxError>) -> Error {
        Error::Protocol {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    pub(crate) fn setup(message: impl Into<String>, source: impl Into<BoxError>) -> Error {
        Error::Setup {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    pub(crate) fn setup_msg(message: impl Into<String>) -> Error {
        Error::Setup {
            message: message.into(),
            source: None,
        }
    }

    /// True when this handle cannot be used any more ([`Error::Closed`],
    /// [`Error::SandboxNotFound`]). A paused sandbox is not fatal: it can be resumed.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Error::Closed | Error::SandboxNotFound { .. })
    }

    /// True for a [`Error::Timeout`] or an [`Error::InterruptIgnored`] (a deadline passed).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. } | Error::InterruptIgnored { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_stays_small() {
        let size = std::mem::size_of::<Error>();
        assert!(size <= 80, "Error is {size} bytes");
    }

    #[test]
    fn cause_is_source_not_message() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = Error::Transport {
            endpoint: "GET /api".into(),
            source: Box::new(io),
        };
        assert_eq!(err.to_string(), "could not reach GET /api");
        let source = std::error::Error::source(&err).map(|s| s.to_string());
        assert_eq!(source.as_deref(), Some("refused"));
    }

    #[test]
    fn report_lists_each_cause_once() {
        let inner =
            tungstenite::Error::Protocol(tungstenite::error::ProtocolError::HandshakeIncomplete);
        let err = Error::protocol_from("websocket handshake failed", inner);
        assert_eq!(
            err.report(),
            "protocol error: websocket handshake failed: \
             WebSocket protocol error: Handshake not finished"
        );
    }
}
