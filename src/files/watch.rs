//! `files().watch_dir()`: changes in a directory of the sandbox, as they happen.
//!
//! A watcher thread in one of the sandbox's private kernels (`watch.py`: inotify
//! through ctypes, Linux) numbers events into a bounded buffer, and a thread per watch here
//! long-polls it with short silent cells through the one execution driver, each asking for
//! the events after the last one it has. A cell's reply lost in a cut is recovered by the
//! driver like any cell's; a poll asked again returns the same events, dropped here by
//! number: each event arrives once, in order. (One long-running cell streaming events would
//! not do: what the client missed in a cut is fetched by a cell that queues behind the running
//! one.) Events go into a bounded queue that [`WatchHandle`] reads from.

pub(crate) use crate::model::fs_event::{FsEvent, FsEventKind};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::error::{Error, TimeoutPhase};
use crate::files::Files;
use crate::kernel::fault::SandboxFault;
use crate::kernel::module::PyModule;
use crate::kernel::pool::Lease;
use crate::sandbox::Sandbox;

/// The watcher's source.
const WATCHER: PyModule = PyModule {
    name: "__e2b_watch",
    about: "directory watch",
    source: include_str!("watch.py"),
};
/// Events a [`WatchHandle`] holds for its reader by default.
pub const DEFAULT_WATCH_CAPACITY: usize = 4096;
/// How long one poll waits in the sandbox for an event: also how long a stop may wait for
/// the poll in flight.
const POLL: Duration = Duration::from_millis(500);

/// Options of a directory watch; get one with [`Files::watch`], start it with
/// [`WatchBuilder::start`].
#[derive(Debug)]
#[must_use = "nothing is watched until .start() is called"]
pub struct WatchBuilder {
    files: Files,
    path: String,
    recursive: bool,
    capacity: usize,
}

impl WatchBuilder {
    pub(crate) fn new(files: Files, path: &str) -> WatchBuilder {
        WatchBuilder {
            files,
            path: path.to_string(),
            recursive: false,
            capacity: DEFAULT_WATCH_CAPACITY,
        }
    }

    /// Also watch every directory below, including ones created later. Defaults to `false`:
    /// only the directory's own entries.
    ///
    /// A new directory's own watch begins a moment (milliseconds) after the directory
    /// appears, as with any inotify watcher: what is in it by then is reported as created,
    /// once, but a file created and removed within that moment is not reported at all.
    pub fn recursive(mut self, recursive: bool) -> Self {
        self.recursive = recursive;
        self
    }

    /// How many events the handle holds for a reader that falls behind; past that, events
    /// are dropped and counted, and the reader gets one [`FsEventKind::Overflow`] in their
    /// place. Defaults to [`DEFAULT_WATCH_CAPACITY`] (4096); at least 1.
    pub fn capacity(mut self, events: usize) -> Self {
        self.capacity = events.max(1);
        self
    }

    /// Starts watching; returns once the watcher in the sandbox is in place, so every change
    /// made after this returns is reported.
    ///
    /// # Errors
    ///
    /// [`Error::FileNotFound`] for a missing directory, [`Error::NotADirectory`] for a file,
    /// [`Error::PermissionDenied`]; [`Error::Closed`] and connection errors.
    pub fn start(self) -> Result<WatchHandle, Error> {
        if self.files.e2b()?.is_some() {
            return self.start_on_e2b();
        }
        let resolved = self.files.path(&self.path)?;
        let rel = resolved.rel.as_str();
        let sandbox = self.files.sandbox().clone();
        let spec =
            json!({"path": if rel.is_empty() { "." } else { rel }, "recursive": self.recursive});
        let shared = Shared::new(self.capacity);
        let (tx, rx) = crossbeam_channel::bounded(1);
        let timeouts = &sandbox.config().timeouts;
        let limit = timeouts.kernel_start + timeouts.request + timeouts.connect;
        let thread = {
            let (sandbox, shared) = (sandbox.clone(), shared.clone());
            std::thread::Builder::new()
                .name("e2b-watch".into())
                .spawn(move || Watcher::run(sandbox, &spec, &shared, tx))
                .map_err(|e| Error::Io {
                    path: "watch thread".into(),
                    source: e,
                })?
        };
        let mut handle = WatchHandle {
            shared,
            thread: Some(thread),
            path: self.path,
        };
        match rx.recv_timeout(limit) {
            Ok(Ok(())) => Ok(handle),
            Ok(Err(e)) => Err(resolved.named(e)),
            Err(_) => {
                let _ = handle.stop();
                Err(Error::Timeout {
                    phase: TimeoutPhase::KernelReply,
                    after: limit,
                })
            }
        }
    }
}

impl WatchBuilder {
    /// A watch through envd's polling watcher (what E2B's sync SDK uses): created here, so
    /// every change after this returns is reported; a thread polls it into the queue.
    fn start_on_e2b(self) -> Result<WatchHandle, Error> {
        let Some(e2b) = self.files.e2b()? else {
            return Err(Error::protocol("the sandbox has no E2B plane"));
        };
        let watch = e2b.watch(&self.path, self.recursive)?;
        let shared = Shared::new(self.capacity);
        let files = self.files.clone();
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("e2b-watch".into())
                .spawn(move || {
                    let failure = (|| -> Result<(), Error> {
                        let Some(e2b) = files.e2b()? else {
                            return Ok(());
                        };
                        while !shared.stop.load(Ordering::SeqCst) {
                            let events = e2b.poll(&watch)?;
                            if !events.is_empty() {
                                let mut q = crate::sync::lock(&shared.queue);
                                for event in events {
                                    q.push(event);
                                }
                                drop(q);
                                shared.ready.notify_all();
                            }
                            std::thread::sleep(E2B_POLL);
                        }
                        e2b.unwatch(&watch)
                    })()
                    .err();
                    if let Some(e) = &failure {
                        log::debug!("watch ended: {e}");
                    }
                    let mut q = crate::sync::lock(&shared.queue);
                    q.ended = true;
                    if !shared.stop.load(Ordering::SeqCst) {
                        q.error = failure;
                    }
                    drop(q);
                    shared.ready.notify_all();
                })
                .map_err(|e| Error::Io {
                    path: "watch thread".into(),
                    source: e,
                })?
        };
        Ok(WatchHandle {
            shared,
            thread: Some(thread),
            path: self.path,
        })
    }
}

/// How often envd's watcher is polled.
const E2B_POLL: Duration = Duration::from_millis(50);

impl Shared {
    fn new(capacity: usize) -> Arc<Shared> {
        Arc::new(Shared {
            queue: Mutex::new(Queue {
                events: VecDeque::new(),
                capacity,
                dropped: 0,
                ended: false,
                error: None,
            }),
            ready: Condvar::new(),
            stop: AtomicBool::new(false),
        })
    }
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    stop: AtomicBool,
}

struct Queue {
    events: VecDeque<FsEvent>,
    capacity: usize,
    /// Events dropped since the last [`FsEventKind::Overflow`] went into the queue.
    dropped: u64,
    ended: bool,
    /// What ended the watch, other than a stop, until a reader takes it.
    error: Option<Error>,
}

impl Queue {
    fn push(&mut self, event: FsEvent) {
        if self.dropped > 0 && self.events.len() < self.capacity {
            self.events.push_back(FsEvent::overflow(Some(self.dropped)));
            self.dropped = 0;
        }
        if self.dropped == 0 && self.events.len() < self.capacity {
            self.events.push_back(event);
        } else {
            self.dropped += 1;
        }
    }

    fn pop(&mut self) -> Option<FsEvent> {
        if let Some(event) = self.events.pop_front() {
            return Some(event);
        }
        (self.dropped > 0).then(|| FsEvent::overflow(Some(std::mem::take(&mut self.dropped))))
    }
}

/// A running directory watch, from [`Files::watch_dir`] or [`WatchBuilder::start`]. An
/// iterator of events (blocking until the next one) that ends once the watch is stopped or
/// the directory itself is removed or moved; [`WatchHandle::next_timeout`] waits at most a
/// given time. `Send`, and it keeps the sandbox alive (it holds a clone). Dropping it stops
/// the watch.
///
/// Latency: an event reaches the handle about one kernel round trip after the change, as the
/// poll waiting in the sandbox returns at once: measured on the local sandbox
/// (`examples/watch.rs`, 2 busy cores), ~4 ms median and 5–8 ms p95 from writing a file to
/// its event, about a fifth of a `commands().run("true")` round trip.
pub struct WatchHandle {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    path: String,
}

impl std::fmt::Debug for WatchHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchHandle")
            .field("path", &self.path)
            .field("queued", &self.queued())
            .field("finished", &self.is_finished())
            .finish_non_exhaustive()
    }
}

impl WatchHandle {
    /// The next event, waiting at most `limit`: `Ok(None)` when none came in time, or once
    /// the watch has ended and every event was read ([`WatchHandle::is_finished`] tells
    /// which).
    ///
    /// # Errors
    ///
    /// Once, what ended the watch other than [`WatchHandle::stop`] or the directory's removal:
    /// a lost connection or sandbox ([`Error::Closed`], [`Error::ConnectionLost`], ...),
    /// [`Error::OutputLost`] when events could not be recovered after a cut.
    pub fn next_timeout(&mut self, limit: Duration) -> Result<Option<FsEvent>, Error> {
        self.next_until(Some(Instant::now() + limit))
    }

    /// Stops the watch and waits for the watcher in the sandbox to end (within the poll in
    /// flight, at most ~0.5 s, plus a round trip).
    /// Events that arrived before are still yielded, then iteration ends. Stopping twice does
    /// nothing.
    ///
    /// # Errors
    ///
    /// None today; kept fallible for teardown errors a later version may report.
    pub fn stop(&mut self) -> Result<(), Error> {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            log::warn!("the watch thread of {:?} panicked", self.path);
            let mut q = crate::sync::lock(&self.shared.queue);
            q.ended = true;
        }
        Ok(())
    }

    /// True once the watch has ended and every event was read.
    pub fn is_finished(&self) -> bool {
        let q = crate::sync::lock(&self.shared.queue);
        q.ended && q.events.is_empty() && q.dropped == 0 && q.error.is_none()
    }

    /// Events waiting to be read (not counting dropped ones).
    pub fn queued(&self) -> usize {
        crate::sync::lock(&self.shared.queue).events.len()
    }

    /// Events dropped because the queue was full, not yet reported by an
    /// [`FsEventKind::Overflow`] event.
    pub fn dropped(&self) -> u64 {
        crate::sync::lock(&self.shared.queue).dropped
    }

    fn next_until(&mut self, until: Option<Instant>) -> Result<Option<FsEvent>, Error> {
        let mut q = crate::sync::lock(&self.shared.queue);
        loop {
            if let Some(event) = q.pop() {
                return Ok(Some(event));
            }
            if q.ended {
                return q.error.take().map_or(Ok(None), Err);
            }
            q = match until {
                None => self
                    .shared
                    .ready
                    .wait(q)
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
                Some(until) => {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    self.shared
                        .ready
                        .wait_timeout(q, left)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0
                }
            };
        }
    }
}

impl Iterator for WatchHandle {
    type Item = Result<FsEvent, Error>;

    fn next(&mut self) -> Option<Result<FsEvent, Error>> {
        self.next_until(None).transpose()
    }
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The watch thread: long-polls the watcher in the sandbox and fills the queue.
struct Watcher<'a> {
    shared: &'a Shared,
    started: Option<crossbeam_channel::Sender<Result<(), Error>>>,
}

impl Watcher<'_> {
    fn run(
        sandbox: Sandbox,
        spec: &Value,
        shared: &Shared,
        started: crossbeam_channel::Sender<Result<(), Error>>,
    ) {
        let mut w = Watcher {
            shared,
            started: Some(started),
        };
        let failure = w.watch(&sandbox, spec).err();
        if let Some(tx) = w.started.take() {
            let _ = tx.send(Err(failure.unwrap_or_else(|| {
                Error::protocol("the sandbox's watcher ended before it started")
            })));
            return;
        }
        if let Some(e) = &failure {
            log::debug!("watch ended: {e}");
        }
        let mut q = crate::sync::lock(&shared.queue);
        q.ended = true;
        if !shared.stop.load(Ordering::SeqCst) {
            q.error = failure;
        }
        drop(q);
        shared.ready.notify_all();
    }

    /// Runs the watch in a private kernel, leased for as long as it lasts: it goes back to
    /// the pool after a watch that ended cleanly, and is shut down after a poll that failed
    /// (which may leave the watcher running in it).
    fn watch(&mut self, sandbox: &Sandbox, spec: &Value) -> Result<(), Error> {
        let mut lease = Lease::take(sandbox)?;
        let timeout = sandbox.config().timeouts.request;
        let start = lease.call(&WATCHER, "start", std::slice::from_ref(spec), timeout)?;
        let id = match start.get("ok") {
            Some(ok) => ok["id"].as_str().unwrap_or("").to_string(),
            None => return Err(failure_of(&start)),
        };
        log::debug!(
            "watching {spec} on kernel {} (watch {id})",
            lease.kernel().id
        );
        if let Some(tx) = self.started.take() {
            let _ = tx.send(Ok(()));
        }
        let id = Value::String(id);
        let stop = |lease: &mut Lease<Sandbox>| {
            lease
                .call(&WATCHER, "stop", std::slice::from_ref(&id), timeout)
                .map(drop)
        };
        let mut after = 0u64;
        loop {
            if self.shared.stop.load(Ordering::SeqCst) {
                return stop(&mut lease);
            }
            let args = [id.clone(), json!(after), json!(POLL.as_secs_f64())];
            let out = lease.call(&WATCHER, "poll", &args, timeout + POLL)?;
            let Some(ok) = out.get("ok") else {
                return Err(failure_of(&out));
            };
            let mut q = crate::sync::lock(&self.shared.queue);
            for e in ok["events"].as_array().into_iter().flatten() {
                // A poll asked again after a cut returns what an earlier answer held.
                let seq = e[0].as_u64().unwrap_or(0);
                if seq <= after {
                    continue;
                }
                after = seq;
                let path = e[2].as_str().unwrap_or("").to_string();
                let kind = match e[1].as_str() {
                    Some("create") => FsEventKind::Create,
                    Some("write") => FsEventKind::Write,
                    Some("remove") => FsEventKind::Remove,
                    Some("rename") => FsEventKind::Rename,
                    Some("chmod") => FsEventKind::Chmod,
                    Some("overflow") => {
                        q.push(FsEvent::overflow(e[3].as_u64()));
                        continue;
                    }
                    other => {
                        log::warn!("unknown watch event {other:?}");
                        continue;
                    }
                };
                log::trace!("watch event {kind:?} {path:?}");
                q.push(FsEvent {
                    kind,
                    path,
                    dropped: None,
                });
            }
            drop(q);
            self.shared.ready.notify_all();
            if let Some(reason) = ok["ended"].as_str() {
                log::debug!("watch {id} ended: {reason}");
                return stop(&mut lease);
            }
        }
    }
}

fn failure_of(out: &Value) -> Error {
    SandboxFault::of(out, "").to_error("watch", |message| {
        Error::protocol(format!("the sandbox's watcher failed: {message}"))
    })
}
