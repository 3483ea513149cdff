//! Timeouts, the reconnect policy and secrets: plain structs with `Default` and chainable setters.

use std::fmt;
use std::time::Duration;

/// How long each kind of call may take. Separate from how long a cloud sandbox *lives*
/// (that is the sandbox's lifetime, set on the E2B builder).
///
/// Each field is documented on its setter of the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeouts {
    /// See [`Timeouts::connect`].
    pub connect: Duration,
    /// See [`Timeouts::kernel_start`].
    pub kernel_start: Duration,
    /// See [`Timeouts::request`].
    pub request: Duration,
    /// See [`Timeouts::execution`].
    pub execution: Option<Duration>,
    /// See [`Timeouts::sandbox_start`].
    pub sandbox_start: Duration,
    /// See [`Timeouts::close`].
    pub close: Duration,
    /// See [`Timeouts::interrupt_grace`].
    pub interrupt_grace: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            kernel_start: Duration::from_secs(60),
            request: Duration::from_secs(30),
            execution: Some(Duration::from_secs(300)),
            sandbox_start: Duration::from_secs(120),
            close: Duration::from_secs(5),
            interrupt_grace: Duration::from_millis(500),
        }
    }
}

impl Timeouts {
    /// Deadline for opening one TCP connection plus its HTTP or websocket handshake.
    /// Defaults to 10 s.
    pub fn connect(mut self, d: Duration) -> Self {
        self.connect = d;
        self
    }

    /// Deadline for a kernel the SDK just started, or one that restarted, to answer:
    /// jupyter_server holds the first websocket handshake until the kernel is alive and has
    /// replied to `kernel_info` (for up to 60 s by its own default), so this covers the
    /// kernel's start-up. Opening the TCP connection is still bounded by
    /// [`Timeouts::connect`]. Defaults to 60 s.
    pub fn kernel_start(mut self, d: Duration) -> Self {
        self.kernel_start = d;
        self
    }

    /// Deadline for one HTTP request/response (REST, contents API, control plane).
    /// Defaults to 30 s.
    pub fn request(mut self, d: Duration) -> Self {
        self.request = d;
        self
    }

    /// Default deadline for one code execution; `None` waits as long as the kernel runs.
    /// On expiry the kernel is interrupted. Defaults to 300 s (E2B's default).
    pub fn execution(mut self, d: Option<Duration>) -> Self {
        self.execution = d;
        self
    }

    /// Deadline for a sandbox to become usable: the local server answering, an E2B sandbox
    /// created (or resumed) and answering, a JupyterHub user's server spawned. Does not
    /// include building the local Python environment the first time (nor starting a kernel:
    /// [`Timeouts::kernel_start`]). Defaults to 120 s.
    pub fn sandbox_start(mut self, d: Duration) -> Self {
        self.sandbox_start = d;
        self
    }

    /// How long `close()` and `Drop` may take in all: stopping every connection worker and
    /// shutting down the kernels of a server the sandbox does not own. What is not done by then
    /// is abandoned (and logged). Defaults to 5 s.
    pub fn close(mut self, d: Duration) -> Self {
        self.close = d;
        self
    }

    /// How long an execution that passed its deadline (or whose callback failed) may take to
    /// stop once the kernel is interrupted. A Python cell normally stops within milliseconds;
    /// one that ignores SIGINT, or native code that never returns to the interpreter, does not,
    /// and the call then returns [`Error::InterruptIgnored`](crate::Error::InterruptIgnored)
    /// after this grace, so a call never takes longer than its timeout plus this.
    /// Defaults to 500 ms.
    pub fn interrupt_grace(mut self, d: Duration) -> Self {
        self.interrupt_grace = d;
        self
    }
}

/// How a kernel connection is re-established after it breaks.
///
/// The first retry happens at once; later ones wait an exponentially growing, jittered delay up
/// to `max_delay`. Retrying stops when either `max_attempts` or `max_elapsed` is used up; both
/// reset after every successful connect.
///
/// Each field is documented on its setter of the same name.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ReconnectPolicy {
    /// See [`ReconnectPolicy::first_delay`].
    pub first_delay: Duration,
    /// See [`ReconnectPolicy::max_delay`].
    pub max_delay: Duration,
    /// See [`ReconnectPolicy::multiplier`]; values below 1 count as 1.
    pub multiplier: f64,
    /// See [`ReconnectPolicy::jitter`]; values outside 0..=1 are clamped.
    pub jitter: f64,
    /// See [`ReconnectPolicy::max_attempts`].
    pub max_attempts: u32,
    /// See [`ReconnectPolicy::max_elapsed`].
    pub max_elapsed: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            first_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(500),
            multiplier: 2.0,
            jitter: 0.5,
            max_attempts: 40,
            max_elapsed: Duration::from_secs(15),
        }
    }
}

impl ReconnectPolicy {
    /// Never reconnect: the first break fails pending calls.
    pub fn disabled() -> Self {
        ReconnectPolicy {
            max_attempts: 0,
            ..ReconnectPolicy::default()
        }
    }

    /// Delay before the second attempt (the first is immediate). Defaults to 5 ms.
    pub fn first_delay(mut self, d: Duration) -> Self {
        self.first_delay = d;
        self
    }

    /// Upper bound for one delay. Defaults to 500 ms.
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }

    /// Growth factor between delays, at least 1. Defaults to 2.
    pub fn multiplier(mut self, m: f64) -> Self {
        self.multiplier = m.max(1.0);
        self
    }

    /// Randomisation of each delay, from 0 (none) to 1 (±100 %). Defaults to 0.5.
    pub fn jitter(mut self, j: f64) -> Self {
        self.jitter = j.clamp(0.0, 1.0);
        self
    }

    /// Attempts per outage before giving up; 0 disables reconnecting. Defaults to 40.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// Time per outage before giving up. Defaults to 15 s.
    pub fn max_elapsed(mut self, d: Duration) -> Self {
        self.max_elapsed = d;
        self
    }
}

/// Keep-alive of the kernel websocket.
///
/// Each field is documented on its setter of the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Keepalive {
    /// See [`Keepalive::idle_ping`].
    pub idle_ping: Duration,
    /// See [`Keepalive::pong_timeout`].
    pub pong_timeout: Duration,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            idle_ping: Duration::from_secs(5),
            pong_timeout: Duration::from_secs(3),
        }
    }
}

impl Keepalive {
    /// Send a ping after this long without any frame from the server. Defaults to 5 s.
    pub fn idle_ping(mut self, d: Duration) -> Self {
        self.idle_ping = d;
        self
    }

    /// Treat the connection as dead when nothing arrives this long after a ping (a half-open
    /// TCP connection never reports an error by itself). Defaults to 3 s.
    pub fn pong_timeout(mut self, d: Duration) -> Self {
        self.pong_timeout = d;
        self
    }
}

/// Everything that shapes one kernel connection.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionConfig {
    pub(crate) timeouts: Timeouts,
    pub(crate) reconnect: ReconnectPolicy,
    pub(crate) keepalive: Keepalive,
    pub(crate) max_message_size: usize,
    pub(crate) max_request_size: usize,
    pub(crate) binary_framing: bool,
    pub(crate) ack_nudge: bool,
}

/// Tornado's default `websocket_max_message_size`, which jupyter_server keeps: a larger message
/// makes the server reset the connection.
pub(crate) const SERVER_MESSAGE_LIMIT: usize = 10 * 1024 * 1024;

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            timeouts: Timeouts::default(),
            reconnect: ReconnectPolicy::default(),
            keepalive: Keepalive::default(),
            max_message_size: 256 << 20,
            max_request_size: SERVER_MESSAGE_LIMIT,
            binary_framing: true,
            ack_nudge: false,
        }
    }
}

impl ConnectionConfig {
    /// Whether the connection answers each batch of frames it reads with an empty, unsolicited
    /// pong (which a websocket server takes without answering). Behind a reverse proxy (nginx,
    /// JupyterHub's configurable-http-proxy) a stock jupyter_server's Nagle waits for the
    /// proxy's delayed ACK, about 40 ms per small round trip; the pong's bytes carry the
    /// proxy's ACK to the server at once. It cuts `run_code("1")` behind nginx from ~48 ms to
    /// ~10 ms but costs the server a frame per batch; the server-side fix
    /// (`server/e2b_nodelay.py`, see the README) removes the wait for every client and is the
    /// better one. Defaults to `false`; not needed when the SDK is the server's direct peer
    /// (it sets TCP_QUICKACK).
    pub fn ack_nudge(mut self, on: bool) -> Self {
        self.ack_nudge = on;
        self
    }

    /// Largest websocket message accepted from the server; a larger one fails the pending
    /// requests with a protocol error. Defaults to 256 MiB.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Largest websocket message sent to the server. A request whose encoded message is larger
    /// (an execution's code, a command) fails at once with
    /// [`Error::RequestTooLarge`](crate::Error::RequestTooLarge) instead of being sent: a server
    /// resets the connection on a message over its own limit, which would look like a network
    /// cut. Defaults to 10 MiB, jupyter_server's limit unless its owner changed
    /// `tornado_settings.websocket_max_message_size`.
    pub fn max_request_size(mut self, bytes: usize) -> Self {
        self.max_request_size = bytes;
        self
    }

    /// Call deadlines. Defaults to [`Timeouts::default`].
    pub fn timeouts(mut self, t: Timeouts) -> Self {
        self.timeouts = t;
        self
    }

    /// Reconnect behaviour. Defaults to [`ReconnectPolicy::default`].
    pub fn reconnect(mut self, r: ReconnectPolicy) -> Self {
        self.reconnect = r;
        self
    }

    /// Keep-alive pings. Defaults to [`Keepalive::default`].
    pub fn keepalive(mut self, k: Keepalive) -> Self {
        self.keepalive = k;
        self
    }

    /// Offer jupyter_server's binary `v1.kernel.websocket.jupyter.org` framing; servers without
    /// it get JSON either way. Binary saves about 1.7 ms per round trip, but jupyter_server
    /// 2.x stalls for seconds when a binary frame sent just before a connection broke reaches
    /// it after the reconnect (see the README). The local sandbox's server is patched against
    /// that; on a server you do not control, `false` trades the latency for immunity. Defaults
    /// to `true` here; [`SandboxBuilder`](crate::SandboxBuilder) picks `false` for every server
    /// the SDK did not start (E2B, existing servers) unless told otherwise.
    pub fn binary_framing(mut self, offer: bool) -> Self {
        self.binary_framing = offer;
        self
    }
}

/// A token or API key. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself. Keep it out of logs.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "***" })
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret::new(s)
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_debugs() {
        let s = Secret::new("tok-123");
        assert_eq!(format!("{s:?}"), "***");
        assert!(!format!("{:?}", (s, 1)).contains("tok"));
    }
}
