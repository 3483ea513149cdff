//! `Sandbox::get_host` for an isolated local sandbox, whose network namespace has only its own
//! loopback: a TCP listener on the host's 127.0.0.1 whose connections are relayed into the
//! sandbox. Inside, `socat` (a command of the sandbox, as E2B's envd uses) listens on a Unix
//! socket in a directory bound into the sandbox and connects each client to `127.0.0.1:PORT`
//! there; outside, a thread accepts TCP connections and joins each to that Unix socket.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::backend::local::bwrap;
use crate::commands::CommandHandle;
use crate::error::Error;
use crate::sandbox::Sandbox;

/// How long the relay inside may take to listen.
const RELAY_START: Duration = Duration::from_secs(15);

/// A running forward; dropping it closes the listener, every connection and the relay.
pub(crate) struct Forward {
    stop: Arc<AtomicBool>,
    listener: TcpListener,
    acceptor: Option<JoinHandle<()>>,
    links: Arc<Links>,
    relay: Option<CommandHandle>,
    socket: PathBuf,
}

impl std::fmt::Debug for Forward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forward")
            .field("listener", &self.listener.local_addr().ok())
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

/// Starts forwarding a new `127.0.0.1` port of the host to `port` inside the sandbox whose
/// server directory is `dir` and whose network the host sees through `/proc/{netns_pid}/net`.
/// Returns the host address and the forward.
///
/// # Errors
///
/// [`Error::Setup`] when `socat` is missing or the relay does not start; the errors of
/// spawning a command.
pub(crate) fn start(
    sandbox: &Sandbox,
    dir: &Path,
    netns_pid: Option<u32>,
    port: u16,
) -> Result<(String, Forward), Error> {
    if !on_path("socat") {
        return Err(Error::setup_msg(
            "get_host on an isolated local sandbox relays through `socat`, which is not on \
             PATH: install it (Debian/Ubuntu: apt-get install socat)",
        ));
    }
    let name = format!("{port}-{}.sock", uuid::Uuid::new_v4().simple());
    let socket = dir.join(bwrap::FORWARDS).join(&name);
    let inside = Path::new(bwrap::STATE).join(bwrap::FORWARDS).join(&name);
    let mut relay = sandbox
        .commands()
        .cmd(format!(
            "exec socat UNIX-LISTEN:{},fork,mode=600 TCP:127.0.0.1:{port}",
            inside.display()
        ))
        .timeout(None)
        .spawn()?;
    let deadline = Instant::now() + RELAY_START;
    let table = socket_table(netns_pid);
    while !relay_listening(&socket, &inside, table.as_deref()) {
        if let Some(done) = relay.try_wait()? {
            return Err(Error::setup_msg(format!(
                "the relay for port {port} exited with {}: {}",
                done.exit_code,
                done.stderr.trim()
            )));
        }
        if Instant::now() >= deadline {
            let _ = relay.kill();
            return Err(Error::setup_msg(format!(
                "the relay for port {port} did not listen within {RELAY_START:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::setup("cannot listen on 127.0.0.1", e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::setup("cannot read the forward's address", e))?;
    let accepting = listener
        .try_clone()
        .map_err(|e| Error::setup("cannot share the forward's listener", e))?;
    let stop = Arc::new(AtomicBool::new(false));
    let links: Arc<Links> = Arc::default();
    let acceptor = {
        let (stop, links, socket) = (stop.clone(), links.clone(), socket.clone());
        std::thread::Builder::new()
            .name(format!("e2b-forward-{}", addr.port()))
            .spawn(move || accept_loop(&accepting, &stop, &links, &socket))
            .map_err(|e| Error::setup("cannot start the forward's thread", e))?
    };
    log::debug!("forwarding {addr} to port {port} in the sandbox");
    Ok((
        addr.to_string(),
        Forward {
            stop,
            listener,
            acceptor: Some(acceptor),
            links,
            relay: Some(relay),
            socket,
        },
    ))
}

/// The sandbox's own table of Unix sockets (`/proc/{netns_pid}/net/unix`), when the host can
/// read it.
fn socket_table(netns_pid: Option<u32>) -> Option<PathBuf> {
    let table = PathBuf::from(format!("/proc/{}/net/unix", netns_pid?));
    match std::fs::File::open(&table) {
        Ok(_) => Some(table),
        Err(e) => {
            log::debug!("forward: cannot read the sandbox's Unix sockets: {e}");
            None
        }
    }
}

/// True once the relay listens. socat makes its socket file at `bind()`, then chmods the path
/// and only then listens: a connection in between is refused, and a link planted there in
/// between makes the chmod fail and socat exit. So the file is not enough; the sandbox's
/// `table` of Unix sockets says when one bound to `inside` listens. Without the table, the
/// file is all there is to go by.
fn relay_listening(socket: &Path, inside: &Path, table: Option<&Path>) -> bool {
    match table {
        Some(table) => {
            std::fs::read_to_string(table).is_ok_and(|table| unix_listening(&table, inside))
        }
        None => std::fs::symlink_metadata(socket).is_ok(),
    }
}

/// Whether `/proc/net/unix` text lists a listening socket bound to `path`.
fn unix_listening(table: &str, path: &Path) -> bool {
    // `__SO_ACCEPTCON` in the Flags column: the socket is listening.
    const ACCEPTING: u32 = 0x1_0000;
    let Some(path) = path.to_str() else {
        return false;
    };
    // Num RefCount Protocol Flags Type St Inode Path
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.len() == 8
            && fields[7] == path
            && u32::from_str_radix(fields[3], 16).is_ok_and(|flags| flags & ACCEPTING != 0)
    })
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .any(|dir| dir.join(program).is_file())
}

/// The live connections by id, both ends, so that dropping the forward can cut them.
type Links = Mutex<(u64, HashMap<u64, (TcpStream, UnixStream)>)>;

fn accept_loop(listener: &TcpListener, stop: &AtomicBool, links: &Arc<Links>, socket: &Path) {
    loop {
        let accepted = listener.accept();
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let client = match accepted {
            Ok((client, _)) => client,
            Err(e) => {
                log::warn!("forward: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        if let Err(e) = join(client, links, socket) {
            log::debug!("forward: cannot relay a connection: {e}");
        }
    }
}

/// Connects `client` to the relay's socket and copies both ways on two threads; the link is
/// forgotten once both directions end.
fn join(client: TcpStream, links: &Arc<Links>, socket: &Path) -> io::Result<()> {
    let inner = crate::net::conn::connect_unix(socket)?;
    let _ = client.set_nodelay(true);
    let id = {
        let mut links = crate::sync::lock(links);
        let id = links.0;
        links.0 += 1;
        links
            .1
            .insert(id, (client.try_clone()?, inner.try_clone()?));
        id
    };
    let (mut c_read, mut c_write) = (client.try_clone()?, client);
    let (mut i_read, mut i_write) = (inner.try_clone()?, inner);
    let links = links.clone();
    std::thread::Builder::new()
        .name("e2b-forward-link".into())
        .spawn(move || {
            let up = std::thread::Builder::new()
                .name("e2b-forward-up".into())
                .spawn(move || {
                    let _ = io::copy(&mut c_read, &mut i_write);
                    let _ = i_write.shutdown(Shutdown::Write);
                });
            let _ = io::copy(&mut i_read, &mut c_write);
            let _ = c_write.shutdown(Shutdown::Write);
            match up {
                Ok(up) => {
                    let _ = up.join();
                }
                Err(e) => log::warn!("forward: no thread for the upstream direction: {e}"),
            }
            crate::sync::lock(&links).1.remove(&id);
        })?;
    Ok(())
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Shutting the listener down wakes accept() (Linux) and refuses new connections.
        let _ = socket2::SockRef::from(&self.listener).shutdown(Shutdown::Both);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for (_, (client, inner)) in crate::sync::lock(&self.links).1.drain() {
            let _ = client.shutdown(Shutdown::Both);
            let _ = inner.shutdown(Shutdown::Both);
        }
        if let Some(mut relay) = self.relay.take()
            && let Err(e) = relay.kill()
        {
            log::debug!("forward: could not stop the relay: {e}");
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
Num       RefCount Protocol Flags    Type St Inode Path
0000000060498235: 00000002 00000000 00010000 0001 01 16337532 /run/e2b-blocking/fwd/80-a.sock
00000000f50a30d3: 00000002 00000000 00000000 0001 01 16337533 /run/e2b-blocking/fwd/81-b.sock
0000000096922776: 00000003 00000000 00000000 0001 03  1197
";

    #[test]
    fn only_a_listening_socket_of_that_path_counts() {
        let listening = |p: &str| unix_listening(TABLE, Path::new(p));
        assert!(listening("/run/e2b-blocking/fwd/80-a.sock"));
        // Bound, not yet listening (socat between bind and listen).
        assert!(!listening("/run/e2b-blocking/fwd/81-b.sock"));
        assert!(!listening("/run/e2b-blocking/fwd/80-a"));
        assert!(!listening("/run/e2b-blocking/fwd/82-c.sock"));
    }
}
