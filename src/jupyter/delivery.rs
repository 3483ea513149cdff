//! What the connection worker hands to a caller waiting on one request.

use std::fmt;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};

use crate::error::{Error, KernelEvent};
use crate::jupyter::wire::Incoming;

/// When the worker wakes the thread waiting for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WakeOn {
    /// For every message the waiter acts on as it comes (output for callbacks, the reply, the
    /// final idle).
    Output,
    /// Only for the end of the request (its reply and idle together), a failure or a
    /// reconnect: for a waiter with nothing to do before the end, which then takes every
    /// message at once. Each wake-up saved is a switch between threads, which on a busy
    /// machine waits for a time slice.
    End,
}

/// One item on a request's reply channel.
#[derive(Debug)]
pub(crate) enum Delivery {
    Message(Incoming),
    /// The websocket was re-established while the request was pending: anything the server
    /// wrote into the old socket may be lost, so the waiter should check for gaps. Every
    /// pending request of a waiter gets one, so a waiter with several requests (an execution,
    /// its replay and probes) acts once per reconnect: `epoch` counts the connection's
    /// reconnects.
    Reconnected {
        epoch: u64,
    },
    Failed(Failure),
}

/// Waits for the next delivery of a request sent from this thread, until `deadline` (`None`:
/// no limit).
///
/// The worker unparks the sending thread once it has queued something worth acting on, so
/// this parks on a futex right away. crossbeam's blocking `recv` would first spin and call
/// `sched_yield` about eight times per wait, which on a busy machine hands the CPU to other
/// processes in the middle of a round trip (measured: ~14 yields per `run_code("1")`).
/// Spurious wake-ups only cost a `try_recv`.
pub(crate) fn next(
    rx: &Receiver<Delivery>,
    deadline: Option<Instant>,
) -> Result<Delivery, RecvTimeoutError> {
    loop {
        match rx.try_recv() {
            Ok(d) => return Ok(d),
            Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
            Err(TryRecvError::Empty) => {}
        }
        match deadline {
            None => std::thread::park(),
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => std::thread::park_timeout(left),
                // One last look: the deadline and a delivery can arrive together.
                _ => return rx.try_recv().map_err(|_| RecvTimeoutError::Timeout),
            },
        }
    }
}

/// Why the worker ended a request: cheap to clone, so one outage can fail many requests, and
/// turned into a fresh [`Error`] for each of them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Failure {
    Closed,
    SandboxGone {
        sandbox_id: String,
    },
    SandboxPaused {
        sandbox_id: String,
    },
    KernelGone {
        kernel_id: String,
    },
    Lost {
        kernel_id: String,
        cause: String,
    },
    Kernel {
        kernel_id: String,
        event: KernelEvent,
    },
    Unauthorized {
        status: u16,
        endpoint: String,
    },
    Protocol {
        message: String,
    },
    /// One request only: it was over the size limit and never sent.
    TooLarge {
        size: usize,
        limit: usize,
    },
}

impl Failure {
    pub(crate) fn to_error(&self) -> Error {
        match self {
            Failure::Closed => Error::Closed,
            Failure::SandboxGone { sandbox_id } => Error::SandboxNotFound {
                sandbox_id: sandbox_id.clone(),
            },
            Failure::SandboxPaused { sandbox_id } => Error::SandboxPaused {
                sandbox_id: sandbox_id.clone(),
            },
            Failure::KernelGone { kernel_id } => Error::KernelNotFound {
                kernel_id: kernel_id.clone(),
            },
            Failure::Lost { kernel_id, cause } => Error::ConnectionLost {
                kernel_id: kernel_id.clone(),
                source: Some(Box::new(Cause(cause.clone()))),
            },
            Failure::Kernel { kernel_id, event } => Error::KernelDisrupted {
                kernel_id: kernel_id.clone(),
                event: *event,
            },
            Failure::Unauthorized { status, endpoint } => Error::Authentication {
                status: *status,
                endpoint: endpoint.clone(),
            },
            Failure::Protocol { message } => Error::protocol(message.clone()),
            Failure::TooLarge { size, limit } => Error::RequestTooLarge {
                size: *size,
                limit: *limit,
            },
        }
    }
}

/// The last transport error of a lost connection, kept as text so it can be shared.
#[derive(Debug)]
struct Cause(String);

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Cause {}
