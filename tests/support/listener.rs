//! What the test servers (the fault proxy, the scripted websocket server) share: a listener on
//! 127.0.0.1 (or on a Unix socket) whose accept loop runs on its own thread, the threads they start, and a shutdown
//! that joins them within a deadline, so a server never hangs a test.
// Each test binary (and benches/compare) uses a different subset of this API.
#![allow(dead_code)]

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a server's shutdown waits for its threads before leaving stragglers behind.
pub const JOIN_DEADLINE: Duration = Duration::from_secs(2);
/// Pause after a failed accept (out of descriptors and the like), so the loop does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(20);

/// A server's stop flag and the threads it started.
#[derive(Default)]
pub struct Threads {
    stop: AtomicBool,
    handles: Mutex<Vec<JoinHandle<()>>>,
    /// Numbers the threads `spawn_numbered` names.
    spawned: std::sync::atomic::AtomicU64,
}

impl Threads {
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// [`Threads::spawn`] under `prefix-N`, N counting from 0: one thread per client.
    pub fn spawn_numbered(
        &self,
        prefix: &str,
        f: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<()> {
        let n = self.spawned.fetch_add(1, Ordering::SeqCst);
        self.spawn(format!("{prefix}-{n}"), f)
    }

    /// Starts a named thread and keeps its handle; finished ones are reaped here, so a long
    /// soak does not accumulate them.
    pub fn spawn(&self, name: String, f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        let handle = std::thread::Builder::new().name(name).spawn(f)?;
        let mut handles = self.handles.lock().unwrap();
        let (done, running): (Vec<_>, Vec<_>) = std::mem::take(&mut *handles)
            .into_iter()
            .partition(|h| h.is_finished());
        *handles = running;
        handles.push(handle);
        drop(handles);
        for h in done {
            let _ = h.join();
        }
        Ok(())
    }

    /// Joins every thread started so far that finishes by `deadline`; returns how many did not.
    pub fn join_by(&self, deadline: Instant) -> usize {
        join_by(std::mem::take(&mut *self.handles.lock().unwrap()), deadline)
    }
}

/// Joins every handle that finishes by `deadline`; returns how many did not.
pub fn join_by(handles: Vec<JoinHandle<()>>, deadline: Instant) -> usize {
    let mut left = 0;
    for h in handles {
        while !h.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        if h.is_finished() {
            let _ = h.join();
        } else {
            left += 1;
        }
    }
    left
}

/// Where a [`Listener`] listens.
enum Bound {
    Tcp(SocketAddr, TcpListener),
    /// The socket's path and the private directory holding it, removed on close.
    Unix(PathBuf, UnixListener),
}

/// A listening socket on a free port of 127.0.0.1, or on a Unix socket in a fresh private
/// directory, with its accept loop on a thread.
pub struct Listener {
    addr: Option<SocketAddr>,
    path: Option<PathBuf>,
    /// A second handle on the listening socket, to close it on shutdown.
    socket: Option<Bound>,
    acceptor: Option<JoinHandle<()>>,
}

impl Listener {
    /// Calls `on_accept` with each accepted connection, on a thread named `{name}-{port}`,
    /// until `stopping` says so (checked after every accept).
    pub fn start(
        name: &str,
        stopping: impl Fn() -> bool + Send + 'static,
        on_accept: impl FnMut(TcpStream) + Send + 'static,
    ) -> std::io::Result<Listener> {
        let socket = TcpListener::bind("127.0.0.1:0")?;
        let addr = socket.local_addr()?;
        let listener = socket.try_clone()?;
        let acceptor = accept_loop(
            format!("{name}-{}", addr.port()),
            move || listener.accept().map(|(s, _)| s),
            stopping,
            on_accept,
        )?;
        Ok(Listener {
            addr: Some(addr),
            path: None,
            socket: Some(Bound::Tcp(addr, socket)),
            acceptor: Some(acceptor),
        })
    }

    /// As [`Listener::start`], on a Unix socket `{name}.sock` in a new 0700 directory under
    /// the temp dir (see [`Listener::path`]).
    pub fn start_unix(
        name: &str,
        stopping: impl Fn() -> bool + Send + 'static,
        on_accept: impl FnMut(UnixStream) + Send + 'static,
    ) -> std::io::Result<Listener> {
        use std::os::unix::fs::PermissionsExt;
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "e2b-test-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        let path = dir.join(format!("{name}.sock"));
        let socket = UnixListener::bind(&path)?;
        let listener = socket.try_clone()?;
        let acceptor = accept_loop(
            format!("{name}-unix"),
            move || listener.accept().map(|(s, _)| s),
            stopping,
            on_accept,
        )?;
        Ok(Listener {
            addr: None,
            path: Some(path.clone()),
            socket: Some(Bound::Unix(path, socket)),
            acceptor: Some(acceptor),
        })
    }

    /// The TCP address. Panics for a Unix listener, which has none.
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("a Unix listener has no TCP address")
    }

    /// The Unix socket's path, for a listener made with [`Listener::start_unix`].
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Wakes the accept loop (whose `stopping` must now say yes) and joins it by `deadline`;
    /// returns 1 if it did not finish, else 0.
    pub fn close(&mut self, deadline: Instant) -> usize {
        match self.socket.take() {
            Some(Bound::Tcp(addr, socket)) => {
                // On Linux shutting the listener down wakes accept(); the connect below does
                // it everywhere.
                #[cfg(target_os = "linux")]
                let _ = socket2::SockRef::from(&socket).shutdown(Shutdown::Both);
                drop(socket);
                let _ = TcpStream::connect_timeout(&addr, Duration::from_millis(200));
            }
            Some(Bound::Unix(path, socket)) => {
                #[cfg(target_os = "linux")]
                let _ = socket2::SockRef::from(&socket).shutdown(Shutdown::Both);
                let _ = UnixStream::connect(&path);
                drop(socket);
                if let Some(dir) = path.parent() {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
            None => {}
        }
        join_by(self.acceptor.take().into_iter().collect(), deadline)
    }
}

/// Accepts with `accept` on a thread named `name`, handing each connection to `on_accept`.
fn accept_loop<S: Send + 'static>(
    name: String,
    accept: impl Fn() -> std::io::Result<S> + Send + 'static,
    stopping: impl Fn() -> bool + Send + 'static,
    mut on_accept: impl FnMut(S) + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            loop {
                let accepted = accept();
                if stopping() {
                    return;
                }
                match accepted {
                    Ok(stream) => on_accept(stream),
                    Err(e) => {
                        log::debug!("{name}: accept failed: {e}");
                        std::thread::sleep(ACCEPT_RETRY);
                    }
                }
            }
        })
}
