//! A TCP proxy on 127.0.0.1 that injects faults between the SDK and a real jupyter_server:
//! abrupt cuts (optionally in the middle of a chunk, so mid-frame), stalls, refused reconnects,
//! and random cuts in the background.
// Each test binary uses a different subset.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often blocked threads look at the proxy's flags.
const TICK: Duration = Duration::from_millis(20);

#[derive(Default)]
struct Flags {
    stop: AtomicBool,
    refuse: AtomicBool,
    stall: AtomicBool,
    /// When set, the next chunk in either direction is forwarded only in part, then all
    /// connections are cut.
    cut_mid_chunk: AtomicBool,
    accepted: AtomicU64,
    cuts: AtomicU64,
}

/// One proxied connection: both sockets, so a cut can shut them down from outside.
struct Link {
    client: TcpStream,
    server: TcpStream,
}

impl Link {
    fn cut(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }
}

struct Inner {
    target: SocketAddr,
    flags: Flags,
    links: Mutex<Vec<Arc<Link>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    seed: AtomicU64,
}

impl Inner {
    fn cut_all(&self) {
        let links: Vec<Arc<Link>> = std::mem::take(&mut *self.links.lock().unwrap());
        if !links.is_empty() {
            self.flags.cuts.fetch_add(1, Ordering::SeqCst);
        }
        for l in links {
            l.cut();
        }
    }

    /// xorshift64*: reproducible from the seed.
    fn random(&self, below: u64) -> u64 {
        let mut x = self.seed.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.seed.store(x, Ordering::Relaxed);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d) % below.max(1)
    }

    fn spawn(self: &Arc<Self>, name: &str, f: impl FnOnce() + Send + 'static) {
        if let Ok(h) = std::thread::Builder::new().name(name.into()).spawn(f) {
            self.threads.lock().unwrap().push(h);
        }
    }
}

/// The proxy. Dropping it closes the listener and every connection and joins its threads.
pub struct FaultProxy {
    inner: Arc<Inner>,
    addr: SocketAddr,
}

impl FaultProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `target`.
    pub fn start(target: SocketAddr) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            target,
            flags: Flags::default(),
            links: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
            seed: AtomicU64::new(0x853c_49e6_748f_ea9b),
        });
        let acceptor = inner.clone();
        inner.spawn("fault-proxy-accept", move || {
            accept_loop(acceptor, listener)
        });
        Ok(FaultProxy { inner, addr })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every live connection now, abruptly, in both directions.
    pub fn cut_all(&self) {
        self.inner.cut_all();
    }

    /// Cuts every connection in the middle of the next chunk forwarded either way.
    pub fn cut_all_mid_chunk(&self) {
        self.inner.flags.cut_mid_chunk.store(true, Ordering::SeqCst);
    }

    /// While true, new connections are accepted and closed at once.
    pub fn set_refuse(&self, refuse: bool) {
        self.inner.flags.refuse.store(refuse, Ordering::SeqCst);
    }

    /// While true, nothing is forwarded either way; connections stay open (a half-open link).
    pub fn set_stall(&self, stall: bool) {
        self.inner.flags.stall.store(stall, Ordering::SeqCst);
    }

    /// Cuts all connections at random intervals in `[min, max]` until the returned guard (or
    /// the proxy) is dropped; half of the cuts land in the middle of a chunk.
    pub fn start_random_cuts(&self, min: Duration, max: Duration, seed: u64) -> RandomCuts {
        self.inner.seed.store(seed | 1, Ordering::Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        let (inner, flag) = (self.inner.clone(), stop.clone());
        let handle = std::thread::Builder::new()
            .name("fault-proxy-chaos".into())
            .spawn(move || {
                while !flag.load(Ordering::SeqCst) && !inner.flags.stop.load(Ordering::SeqCst) {
                    let span = max.saturating_sub(min).as_millis() as u64;
                    let wait = min + Duration::from_millis(inner.random(span + 1));
                    let mut slept = Duration::ZERO;
                    while slept < wait && !flag.load(Ordering::SeqCst) {
                        std::thread::sleep(TICK.min(wait - slept));
                        slept += TICK;
                    }
                    if flag.load(Ordering::SeqCst) {
                        break;
                    }
                    if inner.random(2) == 0 {
                        inner.flags.cut_mid_chunk.store(true, Ordering::SeqCst);
                    } else {
                        inner.cut_all();
                    }
                }
            })
            .ok();
        RandomCuts { stop, handle }
    }

    /// Connections accepted so far.
    pub fn connections_accepted(&self) -> u64 {
        self.inner.flags.accepted.load(Ordering::SeqCst)
    }

    /// Cuts made so far (each `cut_all` that found live connections counts once).
    pub fn cuts(&self) -> u64 {
        self.inner.flags.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.inner.flags.stop.store(true, Ordering::SeqCst);
        self.inner.cut_all();
        let threads: Vec<JoinHandle<()>> = std::mem::take(&mut *self.inner.threads.lock().unwrap());
        for t in threads {
            let _ = t.join();
        }
    }
}

/// Background random cuts; dropping it stops them.
pub struct RandomCuts {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for RandomCuts {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    while !inner.flags.stop.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            Err(_) => continue,
        };
        inner.flags.accepted.fetch_add(1, Ordering::SeqCst);
        if inner.flags.refuse.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(server) = TcpStream::connect(inner.target) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let ok = client.set_nonblocking(false).is_ok()
            && client.set_nodelay(true).is_ok()
            && server.set_nodelay(true).is_ok()
            && client.set_read_timeout(Some(TICK)).is_ok()
            && server.set_read_timeout(Some(TICK)).is_ok();
        let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
            continue;
        };
        if !ok {
            continue;
        }
        let link = Arc::new(Link { client, server });
        inner.links.lock().unwrap().push(link.clone());
        let (a, b) = (inner.clone(), inner.clone());
        let (l1, l2) = (link.clone(), link);
        let (c3, s3) = match (c2.try_clone(), s2.try_clone()) {
            (Ok(c), Ok(s)) => (c, s),
            _ => continue,
        };
        inner.spawn("fault-proxy-up", move || pump(a, c2, s2, l1));
        inner.spawn("fault-proxy-down", move || pump(b, s3, c3, l2));
    }
}

/// Copies `from` to `to` until either side closes or the link is cut.
fn pump(inner: Arc<Inner>, mut from: TcpStream, mut to: TcpStream, link: Arc<Link>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        if inner.flags.stop.load(Ordering::SeqCst) {
            break;
        }
        if pending.is_empty() {
            // Like the SDK, ACK at once: otherwise the server's Nagle and this hop's delayed
            // ACK add ~40 ms to every small exchange through the proxy.
            #[cfg(target_os = "linux")]
            let _ = socket2::SockRef::from(&from).set_tcp_quickack(true);
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(_) => break,
            }
        }
        if inner.flags.stall.load(Ordering::SeqCst) {
            std::thread::sleep(TICK);
            continue;
        }
        if inner.flags.cut_mid_chunk.swap(false, Ordering::SeqCst) {
            let part = if pending.len() > 1 {
                1 + inner.random(pending.len() as u64 - 1) as usize
            } else {
                0
            };
            let _ = to.write_all(&pending[..part]);
            let _ = to.flush();
            inner.cut_all();
            break;
        }
        if to.write_all(&pending).is_err() {
            break;
        }
        pending.clear();
    }
    link.cut();
    inner
        .links
        .lock()
        .unwrap()
        .retain(|l| !Arc::ptr_eq(l, &link));
}
