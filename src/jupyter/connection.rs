//! The handle to one kernel connection. A background thread ([`Worker`]) owns the websocket;
//! the handle queues requests over a channel and wakes the worker at once through a
//! `mio::Waker`, so sending never waits for a read timeout.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::{Poll, Waker};

use crate::config::ConnectionConfig;
use crate::error::{Error, TimeoutPhase};
use crate::jupyter::delivery::{Delivery, WakeOn};
use crate::jupyter::link::io_setup;
use crate::jupyter::liveness::SandboxProbe;
use crate::jupyter::state::{ConnectionState, ConnectionWatch};
use crate::jupyter::websocket::{self, Limits, Target};
use crate::jupyter::wire::{Framing, Outgoing};
use crate::jupyter::worker::{Command, Shared, WAKE, Worker};

pub(crate) struct Connection {
    commands: Sender<Command>,
    waker: Arc<Waker>,
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
    /// Disconnects when the worker thread ends (its sender is dropped then).
    stopped: Receiver<()>,
    kernel_id: String,
    session_id: String,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("kernel_id", &self.kernel_id)
            .field("state", &self.shared.state.get())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects on the caller's thread, so handshake errors come back directly, then hands the
    /// socket to a new worker thread.
    pub(crate) fn open(
        target: Target,
        config: ConnectionConfig,
        backend: Arc<dyn SandboxProbe>,
    ) -> Result<Connection, Error> {
        let shared = Arc::new(Shared::new(&target.kernel_id));
        let socket = websocket::first_connect(
            &format!("kernel {}", target.kernel_id),
            Limits::new_kernel(&config.timeouts),
            &config.reconnect,
            |limits| {
                let framing = (!config.binary_framing).then_some(Framing::Legacy);
                websocket::connect(&target, limits, framing, config.max_message_size)
            },
        )?;
        let poll = Poll::new().map_err(io_setup)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE).map_err(io_setup)?);
        let (commands, command_rx) = crossbeam_channel::unbounded();
        let (stopped_tx, stopped) = crossbeam_channel::bounded::<()>(0);
        let kernel_id = target.kernel_id.clone();
        let session_id = target.session_id.clone();
        let mut worker = Worker::new(target, config, backend, command_rx, poll, shared.clone());
        worker.adopt(socket).map_err(io_setup)?;
        let short: String = kernel_id.chars().take(8).collect();
        let handle = std::thread::Builder::new()
            .name(format!("e2b-kernel-{short}"))
            .spawn(move || {
                let _stopped = stopped_tx;
                worker.run();
            })
            .map_err(io_setup)?;
        Ok(Connection {
            commands,
            waker,
            shared,
            worker: Mutex::new(Some(handle)),
            stopped,
            kernel_id,
            session_id,
        })
    }

    /// How many times the kernel restarted, died or shut down since the connection opened.
    pub(crate) fn kernel_events(&self) -> u64 {
        self.shared.kernel_events.load(Ordering::SeqCst)
    }

    pub(crate) fn session_id(&self) -> &str {
        &self.session_id
    }

    /// Queues a request; its replies arrive on the returned channel.
    pub(crate) fn send(&self, msg: Outgoing) -> Result<Receiver<Delivery>, Error> {
        let (tx, rx) = crossbeam_channel::unbounded();
        self.send_on(msg, tx, WakeOn::Output)?;
        Ok(rx)
    }

    /// Queues a request whose replies go to an existing channel (several requests, one waiter).
    /// The calling thread is unparked when a reply needs attention (as `wake_on` says); wait
    /// for them with [`crate::jupyter::delivery::next`] (a plain blocking `recv` works too).
    pub(crate) fn send_on(
        &self,
        msg: Outgoing,
        reply: Sender<Delivery>,
        wake_on: WakeOn,
    ) -> Result<(), Error> {
        if let Some(f) = self.failure() {
            return Err(f.to_error());
        }
        self.commands
            .send(Command::Send {
                msg,
                reply,
                waiter: std::thread::current(),
                wake_on,
            })
            .map_err(|_| Error::Closed)?;
        self.wake();
        // A worker that stopped meanwhile may never read the request: it sets the failure
        // first, then fails what it finds queued, so a request it may have missed sees the
        // failure here.
        if let Some(f) = self.failure() {
            return Err(f.to_error());
        }
        Ok(())
    }

    /// Stops routing replies of a request the caller no longer waits for.
    pub(crate) fn forget(&self, msg_id: &str) {
        let _ = self.commands.send(Command::Forget {
            msg_id: msg_id.to_string(),
        });
        self.wake();
    }

    pub(crate) fn state(&self) -> ConnectionState {
        self.shared.state.get()
    }

    pub(crate) fn watch(&self) -> ConnectionWatch {
        self.shared.state.watch()
    }

    /// The error calls get once the connection is gone for good.
    pub(crate) fn failure(&self) -> Option<crate::jupyter::delivery::Failure> {
        self.shared.failure()
    }

    fn wake(&self) {
        if let Err(e) = self.waker.wake() {
            log::warn!("kernel {}: wake failed: {e}", self.kernel_id);
        }
    }

    /// Stops the worker, waiting at most `timeout`. Idempotent.
    pub(crate) fn close(&self, timeout: Duration) -> Result<(), Error> {
        self.request_close();
        if self.wait_closed(Instant::now() + timeout) {
            Ok(())
        } else {
            Err(Error::Timeout {
                phase: TimeoutPhase::Close,
                after: timeout,
            })
        }
    }

    /// Asks the worker to stop, without waiting; see [`Connection::wait_closed`].
    pub(crate) fn request_close(&self) {
        let _ = self.commands.send(Command::Shutdown);
        self.wake();
    }

    /// Waits until the worker stopped (after [`Connection::request_close`]), at most until
    /// `deadline`; a worker still running then is detached and this returns false. Idempotent.
    pub(crate) fn wait_closed(&self, deadline: Instant) -> bool {
        let handle = crate::sync::lock(&self.worker).take();
        let Some(handle) = handle else {
            return true;
        };
        match self.stopped.recv_deadline(deadline) {
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) | Ok(()) => {
                // The worker has returned from run(); joining cannot block for long.
                if std::thread::current().id() != handle.thread().id() {
                    let _ = handle.join();
                }
                true
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                log::warn!(
                    "kernel {}: worker did not stop in time; detaching it",
                    self.kernel_id
                );
                false
            }
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let _ = self.close(Duration::from_secs(2));
    }
}
