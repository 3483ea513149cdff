//! The observable state of a kernel connection.

use std::sync::Mutex;

use crossbeam_channel::{Receiver, Sender};

use crate::sync::lock;

/// Where a kernel connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// The first connect is under way.
    Connecting,
    /// The websocket is open.
    Connected,
    /// The websocket broke; `attempt` counts the reconnect attempts of this outage (from 1).
    Reconnecting {
        /// Attempt number within the current outage.
        attempt: u32,
    },
    /// The connection is gone for good.
    Closed {
        /// Why.
        reason: CloseReason,
    },
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// `close()` or `Drop`.
    Requested,
    /// The sandbox no longer exists.
    SandboxGone,
    /// The kernel no longer exists on the server.
    KernelGone,
    /// The server refused the credentials.
    Unauthorized,
    /// The reconnect budget ran out while the sandbox still seemed to exist.
    GaveUp,
}

/// The current state plus everyone watching it. Transitions are logged at `debug`.
#[derive(Debug)]
pub(crate) struct StateCell {
    kernel_id: String,
    inner: Mutex<(ConnectionState, Vec<Sender<ConnectionState>>)>,
}

impl StateCell {
    pub(crate) fn new(kernel_id: &str) -> StateCell {
        StateCell {
            kernel_id: kernel_id.to_string(),
            inner: Mutex::new((ConnectionState::Connecting, Vec::new())),
        }
    }

    pub(crate) fn get(&self) -> ConnectionState {
        lock(&self.inner).0.clone()
    }

    pub(crate) fn set(&self, next: ConnectionState) {
        let mut g = lock(&self.inner);
        if g.0 == next {
            return;
        }
        log::debug!("kernel {}: {:?} -> {:?}", self.kernel_id, g.0, next);
        g.0 = next.clone();
        g.1.retain(|tx| tx.send(next.clone()).is_ok());
    }

    /// Every later transition; dropping the watch unsubscribes.
    pub(crate) fn watch(&self) -> ConnectionWatch {
        let (tx, rx) = crossbeam_channel::unbounded();
        lock(&self.inner).1.push(tx);
        ConnectionWatch { rx }
    }
}

/// The later states of one kernel connection, in order, each once. Get one with
/// [`Sandbox::watch_connection`](crate::Sandbox::watch_connection) or
/// [`Sandbox::watch_context`](crate::Sandbox::watch_context); dropping it unsubscribes.
/// States queue until read (a connection changes state a few times per outage).
#[derive(Debug)]
pub struct ConnectionWatch {
    rx: Receiver<ConnectionState>,
}

impl ConnectionWatch {
    /// Waits for the next state; `None` once the connection is gone and every state was read.
    pub fn recv(&self) -> Option<ConnectionState> {
        self.rx.recv().ok()
    }

    /// Waits at most `timeout` for the next state; `None` when none came in time (or none
    /// ever will).
    pub fn recv_timeout(&self, timeout: std::time::Duration) -> Option<ConnectionState> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// The next state if one is queued, without waiting.
    pub fn try_recv(&self) -> Option<ConnectionState> {
        self.rx.try_recv().ok()
    }

    /// Every state queued now, without waiting.
    pub fn try_iter(&self) -> impl Iterator<Item = ConnectionState> + '_ {
        self.rx.try_iter()
    }
}
