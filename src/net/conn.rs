//! One connected stream to a server: TCP, or a Unix socket for the isolated local sandbox,
//! whose server has no network to listen on. ureq and tungstenite run over any `Read + Write`;
//! this enum keeps the socket-level calls (readiness fd, timeouts, shutdown) in one place.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, Transport,
};

/// A TCP or Unix stream.
#[derive(Debug)]
pub(crate) enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

macro_rules! each {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            Conn::Tcp($s) => $e,
            Conn::Unix($s) => $e,
        }
    };
}

impl Conn {
    pub(crate) fn try_clone(&self) -> io::Result<Conn> {
        Ok(match self {
            Conn::Tcp(s) => Conn::Tcp(s.try_clone()?),
            Conn::Unix(s) => Conn::Unix(s.try_clone()?),
        })
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        each!(self, s => s.shutdown(how))
    }

    pub(crate) fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        each!(self, s => s.set_read_timeout(t))
    }

    pub(crate) fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        each!(self, s => s.set_write_timeout(t))
    }

    pub(crate) fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        each!(self, s => s.set_nonblocking(on))
    }
}

impl AsRawFd for Conn {
    fn as_raw_fd(&self) -> RawFd {
        each!(self, s => s.as_raw_fd())
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        each!(self, s => s.read(buf))
    }
}

impl Read for &Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        each!(*self, s => { let mut s: &_ = s; s.read(buf) })
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        each!(self, s => s.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        each!(self, s => s.flush())
    }
}

impl Write for &Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        each!(*self, s => { let mut s: &_ = s; s.write(buf) })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Connects to the Unix socket at `path`, refusing a symbolic link (or anything but a socket) in
/// its last component. The isolated local sandbox's sockets live in directories its code can
/// write: a link planted there must not send the SDK's requests, its token, or a relayed
/// client to a socket of the host.
pub(crate) fn connect_unix(path: &Path) -> io::Result<UnixStream> {
    use std::os::unix::fs::FileTypeExt;
    let not_a_socket = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is {what}, not a socket", path.display()),
        )
    };
    #[cfg(target_os = "linux")]
    {
        use nix::fcntl::{OFlag, open};
        use nix::sys::stat::Mode;
        // O_PATH | O_NOFOLLOW opens a link itself, so that what is checked is what is used.
        let fd = open(
            path,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(io::Error::from)?;
        let file = std::fs::File::from(fd);
        let kind = file.metadata()?.file_type();
        if kind.is_symlink() {
            return Err(not_a_socket("a symbolic link"));
        }
        if !kind.is_socket() {
            return Err(not_a_socket("another kind of file"));
        }
        match UnixStream::connect(format!("/proc/self/fd/{}", file.as_raw_fd())) {
            // No /proc: the socket was checked a moment ago; connect by its path.
            Err(e)
                if e.kind() == io::ErrorKind::NotFound && !Path::new("/proc/self/fd").exists() =>
            {
                UnixStream::connect(path)
            }
            connected => connected,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let kind = std::fs::symlink_metadata(path)?.file_type();
        if kind.is_symlink() {
            return Err(not_a_socket("a symbolic link"));
        }
        if !kind.is_socket() {
            return Err(not_a_socket("another kind of file"));
        }
        UnixStream::connect(path)
    }
}

/// A ureq connector that opens every connection to one Unix socket, whatever the URL's host:
/// URLs stay `http://localhost/...`, which is also the Host jupyter_server accepts.
#[derive(Debug, Clone)]
pub(crate) struct UnixConnector(pub(crate) Arc<Path>);

impl Connector<()> for UnixConnector {
    type Out = Box<dyn Transport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _: Option<()>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        // A local connect completes or fails at once: no timeout to apply.
        let stream = connect_unix(&self.0)?;
        let buffers = crate::net::transport_buffers(details);
        let stream = Arc::new(Shared(stream));
        (details.register_shutdown)(Arc::downgrade(&stream) as _)?;
        Ok(Some(Box::new(UnixTransport {
            stream,
            buffers,
            read_timeout: None,
            write_timeout: None,
        })))
    }
}

/// The stream, shared with the agent so that `Agent::shutdown` can interrupt its I/O.
struct Shared(UnixStream);

impl ureq::unversioned::transport::ShutdownHandle for Shared {
    fn shutdown(&self) {
        let _ = self.0.shutdown(Shutdown::Both);
    }
}

/// ureq's TCP transport, for a Unix stream.
struct UnixTransport {
    stream: Arc<Shared>,
    buffers: LazyBuffers,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl std::fmt::Debug for UnixTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnixTransport").finish_non_exhaustive()
    }
}

/// The timeout a ureq deadline asks for, or the error once it has passed.
fn timeout_of(t: NextTimeout) -> Result<Option<Duration>, ureq::Error> {
    if t.after.is_zero() {
        return Err(ureq::Error::Timeout(t.reason));
    }
    Ok(t.not_zero().map(|d| *d))
}

fn io_error(e: io::Error, t: NextTimeout) -> ureq::Error {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ureq::Error::Timeout(t.reason),
        _ => ureq::Error::Io(e),
    }
}

impl Transport for UnixTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let timeout = timeout.for_write();
        let t = timeout_of(timeout)?;
        if t != self.write_timeout {
            self.stream.0.set_write_timeout(t)?;
            self.write_timeout = t;
        }
        let output = &self.buffers.output()[..amount];
        (&self.stream.0)
            .write_all(output)
            .map_err(|e| io_error(e, timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let timeout = timeout.for_read();
        let t = timeout_of(timeout)?;
        if t != self.read_timeout {
            self.stream.0.set_read_timeout(t)?;
            self.read_timeout = t;
        }
        let input = self.buffers.input_append_buf();
        let amount = loop {
            match (&self.stream.0).read(input) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other.map_err(|e| io_error(e, timeout))?,
            }
        };
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        // As ureq's TCP transport: a pooled connection with nothing to read is still open.
        if self.stream.0.set_nonblocking(true).is_err() {
            return false;
        }
        let mut buf = [0u8; 1];
        let open = matches!(
            (&self.stream.0).read(&mut buf),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock
        );
        open && self.stream.0.set_nonblocking(false).is_ok()
    }
}
