//! What a kernel connection asks of the sandbox it runs in, once its link is lost: whether the
//! sandbox still exists. The backends answer it (each implements [`SandboxProbe`]); this layer
//! only names the question, so it needs nothing from the layers above.

use std::fmt;

/// Whether a sandbox still exists, as far as its backend can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    Alive,
    Gone,
    /// The sandbox exists but is paused: nothing answers until it is resumed (E2B).
    Paused,
    /// The backend could not tell (its own API did not answer).
    Unknown,
}

/// A sandbox as its connections see it: its id for errors, and whether it still exists.
pub(crate) trait SandboxProbe: Send + Sync + fmt::Debug {
    /// The id used in errors and logs: the E2B sandbox id, or a local or server name.
    fn sandbox_id(&self) -> &str;

    /// Asked after a connection is lost for good, to tell `SandboxNotFound` from a network fault.
    fn probe(&self) -> Liveness;
}
