//! A TCP proxy on 127.0.0.1 (or a Unix-socket one, for the isolated local sandbox's server)
//! that injects faults between a client (the SDK) and a server (a
//! real jupyter_server): abrupt cuts, cuts in the middle of a chunk (so mid-frame), stalls that
//! hold every byte while the connection stays open, refused reconnects, and random cuts in the
//! background from a seed that reproduces the sequence.
//!
//! Each accepted connection gets its own connection to the target and two pump threads, one
//! per direction. Pumps read with a short timeout so they notice stop, stall and cut flags
//! within [`TICK`]; a cut shuts both sockets down in both directions, which also wakes a pump
//! blocked in a write. Dropping the [`FaultProxy`] closes the listener and every connection and
//! joins every thread it started within a deadline: it never hangs a test.
// Each test binary (and benches/compare) uses a different subset of this API.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::listener::{JOIN_DEADLINE, Listener, Threads, join_by};

/// How often a pump (or the chaos thread) looks at the proxy's flags.
pub const TICK: Duration = Duration::from_millis(20);
/// Largest chunk a pump reads, and so forwards, at once.
const CHUNK: usize = 64 * 1024;
/// Connecting to the target; it is on loopback, so this only matters if it is wedged.
const TARGET_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// xorshift64*: a tiny reproducible PRNG, so a failing chaos run can be replayed from its seed.
#[derive(Debug, Clone)]
pub struct XorShift64(u64);

impl XorShift64 {
    /// Any seed is fine, 0 included: it is scrambled (splitmix64) into a non-zero state.
    pub fn new(seed: u64) -> XorShift64 {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        XorShift64(if z == 0 { 0x853c_49e6_748f_ea9b } else { z })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// Uniform in `[min, max]`, to the microsecond (`min` when `max <= min`).
    pub fn between(&mut self, min: Duration, max: Duration) -> Duration {
        let span = max.saturating_sub(min).as_micros() as u64;
        min + Duration::from_micros(self.below(span.saturating_add(1)))
    }
}

/// Where the proxy forwards to.
#[derive(Debug, Clone)]
enum Target {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp(a) => write!(f, "{a}"),
            Target::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

/// One side of a proxied connection: TCP or a Unix socket.
#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn connect(target: &Target) -> io::Result<Stream> {
        Ok(match target {
            Target::Tcp(addr) => {
                Stream::Tcp(TcpStream::connect_timeout(addr, TARGET_CONNECT_TIMEOUT)?)
            }
            Target::Unix(path) => Stream::Unix(UnixStream::connect(path)?),
        })
    }

    fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
        })
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
        }
    }

    /// No Nagle delay, and reads that wake every [`TICK`].
    fn prepare(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => {
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(TICK))
            }
            Stream::Unix(s) => s.set_read_timeout(Some(TICK)),
        }
    }

    /// ACK at once, like the SDK: otherwise the peer's Nagle and this hop's delayed ACK add
    /// ~40 ms to every small exchange through the proxy. Unix sockets have no ACKs.
    fn quickack(&self) {
        #[cfg(target_os = "linux")]
        if let Stream::Tcp(s) = self {
            let _ = socket2::SockRef::from(s).set_tcp_quickack(true);
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One proxied connection: a handle on both sockets, so a cut can shut them from outside.
struct Link {
    id: u64,
    client: Stream,
    server: Stream,
    cut: AtomicBool,
    /// Directions still forwarding; the link leaves the registry when this reaches 0.
    open_directions: AtomicU8,
}

impl Link {
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }

    fn is_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }
}

/// A background chaos thread, joined by whichever of its guard and the proxy drops first.
struct Chaos {
    id: u64,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

struct Shared {
    target: Target,
    refuse: AtomicBool,
    stall: AtomicBool,
    /// Set by `cut_all_mid_chunk`: the next chunk read in either direction is forwarded only
    /// in part, then every connection is cut.
    mid_chunk: AtomicBool,
    accepted: AtomicU64,
    refused: AtomicU64,
    cuts: AtomicU64,
    to_server: AtomicU64,
    to_client: AtomicU64,
    next_id: AtomicU64,
    links: Mutex<Vec<Arc<Link>>>,
    threads: Threads,
    chaos: Mutex<Vec<Chaos>>,
    /// Picks where mid-chunk cuts fall.
    rng: Mutex<XorShift64>,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.threads.stopping()
    }

    /// Cuts every live connection; counts one cut when there was any. Returns how many.
    fn cut_all(&self) -> usize {
        let links = std::mem::take(&mut *self.links.lock().unwrap());
        if !links.is_empty() {
            self.cuts.fetch_add(1, Ordering::SeqCst);
        }
        for link in &links {
            link.cut();
        }
        links.len()
    }

    fn forget(&self, id: u64) {
        self.links.lock().unwrap().retain(|l| l.id != id);
    }

    fn counter(&self, dir: Direction) -> &AtomicU64 {
        match dir {
            Direction::ToServer => &self.to_server,
            Direction::ToClient => &self.to_client,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Direction {
    ToServer,
    ToClient,
}

/// The proxy. Clients connect to [`FaultProxy::addr`]; each connection is forwarded to the
/// target given to [`FaultProxy::start`]. Dropping it closes the listener and every connection
/// and joins its threads (within a deadline).
pub struct FaultProxy {
    shared: Arc<Shared>,
    listener: Listener,
}

impl FaultProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards every connection to `target`.
    pub fn start(target: SocketAddr) -> io::Result<FaultProxy> {
        FaultProxy::start_to(Target::Tcp(target), false)
    }

    /// Listens on a Unix socket of its own (see [`FaultProxy::socket_path`]) and forwards
    /// every connection to the Unix socket `target`: for the isolated local sandbox's server.
    pub fn start_unix(target: &Path) -> io::Result<FaultProxy> {
        FaultProxy::start_to(Target::Unix(target.to_path_buf()), true)
    }

    fn start_to(target: Target, unix: bool) -> io::Result<FaultProxy> {
        let shared = Arc::new(Shared {
            target: target.clone(),
            refuse: AtomicBool::new(false),
            stall: AtomicBool::new(false),
            mid_chunk: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
            to_server: AtomicU64::new(0),
            to_client: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            links: Mutex::new(Vec::new()),
            threads: Threads::default(),
            chaos: Mutex::new(Vec::new()),
            rng: Mutex::new(XorShift64::new(0x5eed)),
        });
        let listener = {
            let (a, b) = (shared.clone(), shared.clone());
            if unix {
                Listener::start_unix(
                    "fproxy",
                    move || a.stopping(),
                    move |client| accept(&b, Stream::Unix(client)),
                )?
            } else {
                Listener::start(
                    "fproxy-accept",
                    move || a.stopping(),
                    move |client| accept(&b, Stream::Tcp(client)),
                )?
            }
        };
        let proxy = FaultProxy { shared, listener };
        log::debug!("fault proxy {} -> {target}", proxy.name());
        Ok(proxy)
    }

    /// Where clients connect, for logs.
    fn name(&self) -> String {
        match self.listener.path() {
            Some(p) => p.display().to_string(),
            None => self.listener.addr().to_string(),
        }
    }

    /// Where clients connect to a proxy made with [`FaultProxy::start_unix`].
    pub fn socket_path(&self) -> Option<&Path> {
        self.listener.path()
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.listener.addr()
    }

    /// Where connections are forwarded, for a TCP target.
    pub fn target(&self) -> Option<SocketAddr> {
        match self.shared.target {
            Target::Tcp(a) => Some(a),
            Target::Unix(_) => None,
        }
    }

    /// Closes every live connection now, abruptly: both sockets shut down in both directions,
    /// so the client reads EOF (or a reset) at once. Returns how many connections were cut.
    pub fn cut_all(&self) -> usize {
        self.shared.cut_all()
    }

    /// Arms a mid-chunk cut: the next chunk read in either direction, on any connection, is
    /// forwarded only in part (a random strict prefix: at least one byte when the chunk has
    /// two or more), then every live connection is cut. With a websocket on top this cuts in
    /// the middle of a frame. The cut stays armed until some chunk flows, even one on a
    /// connection opened later.
    pub fn cut_all_mid_chunk(&self) {
        self.shared.mid_chunk.store(true, Ordering::SeqCst);
    }

    /// Whether a mid-chunk cut is armed and has not happened yet.
    pub fn mid_chunk_cut_pending(&self) -> bool {
        self.shared.mid_chunk.load(Ordering::SeqCst)
    }

    /// While true, new connections are accepted and closed at once (counted in
    /// [`connections_accepted`](Self::connections_accepted) and [`refused`](Self::refused)).
    /// Live connections are not affected.
    pub fn set_refuse(&self, refuse: bool) {
        self.shared.refuse.store(refuse, Ordering::SeqCst);
    }

    /// While true, no byte is forwarded in either direction and every connection stays open:
    /// a stalled, half-open link. Bytes wait in the socket buffers (at most one chunk per
    /// direction inside the proxy) and flow again, in order, once the stall is lifted.
    pub fn set_stall(&self, stall: bool) {
        self.shared.stall.store(stall, Ordering::SeqCst);
    }

    /// Starts cutting every live connection at random intervals in `[min, max]`, each time
    /// choosing at random between an immediate cut and a mid-chunk one (see
    /// [`cut_all_mid_chunk`](Self::cut_all_mid_chunk)). The intervals and choices come from
    /// `seed`, so print it. Runs until the returned guard or the proxy is dropped.
    pub fn start_random_cuts(&self, min: Duration, max: Duration, seed: u64) -> RandomCuts {
        log::info!(
            "fault proxy {}: random cuts every {min:?}..={max:?}, seed {seed}",
            self.name()
        );
        *self.shared.rng.lock().unwrap() = XorShift64::new(seed ^ 0xa5a5_a5a5_a5a5_a5a5);
        let stop = Arc::new(AtomicBool::new(false));
        let triggered = Arc::new(AtomicU64::new(0));
        let id = self.shared.next_id.fetch_add(1, Ordering::SeqCst);
        let spawned = {
            let (shared, stop, triggered) = (self.shared.clone(), stop.clone(), triggered.clone());
            std::thread::Builder::new()
                .name(format!("fproxy-chaos-{id}"))
                .spawn(move || chaos_loop(&shared, &stop, &triggered, min, max, seed))
        };
        match spawned {
            Ok(handle) => self.shared.chaos.lock().unwrap().push(Chaos {
                id,
                stop: stop.clone(),
                handle,
            }),
            Err(e) => log::error!("fault proxy: cannot start the chaos thread: {e}"),
        }
        RandomCuts {
            shared: self.shared.clone(),
            id,
            stop,
            triggered,
        }
    }

    /// Connections accepted so far, refused ones included.
    pub fn connections_accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections closed at once because [`set_refuse`](Self::set_refuse) was on.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// Cuts made so far: each `cut_all`, mid-chunk cut or random cut that found at least one
    /// live connection counts once.
    pub fn cuts(&self) -> u64 {
        self.shared.cuts.load(Ordering::SeqCst)
    }

    /// Connections currently forwarding (at least one direction open).
    pub fn live_connections(&self) -> usize {
        self.shared.links.lock().unwrap().len()
    }

    /// Bytes forwarded client -> server so far.
    pub fn bytes_to_server(&self) -> u64 {
        self.shared.to_server.load(Ordering::SeqCst)
    }

    /// Bytes forwarded server -> client so far.
    pub fn bytes_to_client(&self) -> u64 {
        self.shared.to_client.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let deadline = Instant::now() + JOIN_DEADLINE;
        self.shared.threads.stop();
        self.shared.cut_all();
        let mut stragglers = self.listener.close(deadline);
        // The acceptor may have opened a link after the first sweep.
        self.shared.cut_all();
        let chaos = std::mem::take(&mut *self.shared.chaos.lock().unwrap());
        let handles: Vec<JoinHandle<()>> = chaos
            .into_iter()
            .map(|c| {
                c.stop.store(true, Ordering::SeqCst);
                c.handle
            })
            .collect();
        stragglers += join_by(handles, deadline);
        stragglers += self.shared.threads.join_by(deadline);
        if stragglers > 0 {
            log::warn!(
                "fault proxy {}: {stragglers} thread(s) still running after {JOIN_DEADLINE:?}",
                self.name()
            );
        }
    }
}

/// Background random cuts from [`FaultProxy::start_random_cuts`]; dropping it (or calling
/// [`stop`](Self::stop)) stops them and joins the thread.
#[must_use = "random cuts stop as soon as this guard is dropped"]
pub struct RandomCuts {
    shared: Arc<Shared>,
    id: u64,
    stop: Arc<AtomicBool>,
    triggered: Arc<AtomicU64>,
}

impl RandomCuts {
    /// Random cuts fired so far (immediate ones plus armed mid-chunk ones), whether or not a
    /// connection was live at the time.
    pub fn triggered(&self) -> u64 {
        self.triggered.load(Ordering::SeqCst)
    }

    /// Stops the random cuts now (the same as dropping the guard).
    pub fn stop(self) {}
}

impl Drop for RandomCuts {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let mine = {
            let mut chaos = self.shared.chaos.lock().unwrap();
            chaos
                .iter()
                .position(|c| c.id == self.id)
                .map(|i| chaos.swap_remove(i))
        };
        if let Some(c) = mine {
            join_by(vec![c.handle], Instant::now() + JOIN_DEADLINE);
        }
    }
}

/// One accepted client: refused, or forwarded.
fn accept(shared: &Arc<Shared>, client: Stream) {
    shared.accepted.fetch_add(1, Ordering::SeqCst);
    if shared.refuse.load(Ordering::SeqCst) {
        shared.refused.fetch_add(1, Ordering::SeqCst);
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    if let Err(e) = open_link(shared, client) {
        log::debug!("fault proxy: cannot forward a connection: {e}");
    }
}

/// Connects to the target, registers the link and starts its two pumps.
fn open_link(shared: &Arc<Shared>, client: Stream) -> io::Result<()> {
    let server = match Stream::connect(&shared.target) {
        Ok(s) => s,
        Err(e) => {
            let _ = client.shutdown(Shutdown::Both);
            return Err(e);
        }
    };
    let setup = || -> io::Result<[Stream; 4]> {
        for s in [&client, &server] {
            s.prepare()?;
        }
        Ok([
            client.try_clone()?,
            server.try_clone()?,
            client.try_clone()?,
            server.try_clone()?,
        ])
    };
    let [up_from, up_to, down_to, down_from] = match setup() {
        Ok(streams) => streams,
        Err(e) => {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
            return Err(e);
        }
    };
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let link = Arc::new(Link {
        id,
        client,
        server,
        cut: AtomicBool::new(false),
        open_directions: AtomicU8::new(2),
    });
    shared.links.lock().unwrap().push(link.clone());
    for (from, to, dir, name) in [
        (up_from, up_to, Direction::ToServer, "up"),
        (down_from, down_to, Direction::ToClient, "down"),
    ] {
        let (s, l) = (shared.clone(), link.clone());
        if let Err(e) = shared
            .threads
            .spawn(format!("fproxy-{id}-{name}"), move || {
                pump(&s, &l, dir, from, to)
            })
        {
            link.cut();
            shared.forget(id);
            return Err(e);
        }
    }
    Ok(())
}

/// How a pump ended.
enum End {
    /// `from` closed cleanly: pass the half-close on, keep the other direction going.
    Eof,
    /// Cut, stopped or failed: tear the whole link down.
    Abort,
}

/// Copies `from` to `to` until `from` closes, either side fails, or the link is cut.
fn pump(shared: &Shared, link: &Link, dir: Direction, mut from: Stream, mut to: Stream) {
    let mut buf = vec![0u8; CHUNK];
    let held = |shared: &Shared| {
        // Hold while stalled; Abort if cut or stopped meanwhile.
        while shared.stall.load(Ordering::SeqCst) && !shared.stopping() && !link.is_cut() {
            std::thread::sleep(TICK);
        }
        shared.stopping() || link.is_cut()
    };
    let end = loop {
        if held(shared) {
            break End::Abort;
        }
        from.quickack();
        let n = match from.read(&mut buf) {
            Ok(0) => break End::Eof,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(_) => break End::Abort,
        };
        // A stall that began during the read holds this chunk too.
        if held(shared) {
            break End::Abort;
        }
        if shared.mid_chunk.swap(false, Ordering::SeqCst) {
            let keep = if n >= 2 {
                1 + shared.rng.lock().unwrap().below(n as u64 - 1) as usize
            } else {
                0
            };
            if to.write_all(&buf[..keep]).is_ok() {
                shared.counter(dir).fetch_add(keep as u64, Ordering::SeqCst);
            }
            log::debug!("fault proxy: mid-chunk cut {dir:?} after {keep} of {n} bytes");
            shared.cut_all();
            break End::Abort;
        }
        if to.write_all(&buf[..n]).is_err() {
            break End::Abort;
        }
        shared.counter(dir).fetch_add(n as u64, Ordering::SeqCst);
    };
    match end {
        End::Eof if !link.is_cut() => {
            let _ = to.shutdown(Shutdown::Write);
            if link.open_directions.fetch_sub(1, Ordering::SeqCst) == 1 {
                link.cut();
                shared.forget(link.id);
            }
        }
        _ => {
            link.cut();
            shared.forget(link.id);
        }
    }
}

fn chaos_loop(
    shared: &Shared,
    stop: &AtomicBool,
    triggered: &AtomicU64,
    min: Duration,
    max: Duration,
    seed: u64,
) {
    let mut rng = XorShift64::new(seed);
    let stopped = || stop.load(Ordering::SeqCst) || shared.stopping();
    loop {
        let wake = Instant::now() + rng.between(min, max);
        loop {
            if stopped() {
                return;
            }
            let left = wake.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(TICK));
        }
        if rng.below(2) == 0 {
            shared.cut_all();
        } else {
            shared.mid_chunk.store(true, Ordering::SeqCst);
        }
        triggered.fetch_add(1, Ordering::SeqCst);
    }
}
