//! A TLS-terminating proxy on 127.0.0.1 with a certificate from a private test CA (rcgen),
//! in front of a plain-http server: what an Enterprise Gateway behind a company ingress, or a
//! sandbox proxy with its own CA, looks like to a client. The CA is trusted nowhere else.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::listener::{JOIN_DEADLINE, Listener, Threads};

/// How long the reading side holds the TLS stream before letting the writing side in.
const POLL: Duration = Duration::from_millis(5);

/// The private CA and the proxy's certificate for `localhost` and `127.0.0.1`.
pub struct TestCa {
    /// The CA certificate, PEM: what a client must be told to trust.
    pub ca_pem: String,
    /// The proxy's own certificate, PEM: what a client pins to trust exactly it.
    pub leaf_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: Vec<u8>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "e2b-blocking test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("leaf params")
            .signed_by(&leaf_key, &issuer)
            .expect("leaf certificate");
        TestCa {
            ca_pem: ca_cert.pem(),
            leaf_pem: leaf.pem(),
            chain: vec![leaf.der().clone(), ca_cert.der().clone()],
            key: leaf_key.serialize_der(),
        }
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()));
        Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("protocol versions")
                .with_no_client_auth()
                .with_single_cert(self.chain.clone(), key)
                .expect("server certificate"),
        )
    }
}

struct Shared {
    target: SocketAddr,
    config: Arc<rustls::ServerConfig>,
    threads: Threads,
    live: Mutex<Vec<TcpStream>>,
    handshakes: AtomicU64,
}

/// The proxy: `https://localhost:PORT` (or `127.0.0.1`) → `http://target`.
pub struct TlsProxy {
    shared: Arc<Shared>,
    listener: Listener,
}

impl TlsProxy {
    pub fn start(target: SocketAddr, ca: &TestCa) -> io::Result<TlsProxy> {
        let shared = Arc::new(Shared {
            target,
            config: ca.server_config(),
            threads: Threads::default(),
            live: Mutex::new(Vec::new()),
            handshakes: AtomicU64::new(0),
        });
        let listener = {
            let (a, b) = (shared.clone(), shared.clone());
            Listener::start(
                "tls-proxy",
                move || a.stopping(),
                move |client| {
                    let s = b.clone();
                    let _ = b
                        .threads
                        .spawn_numbered("tls-proxy", move || serve(&s, client));
                },
            )?
        };
        Ok(TlsProxy { shared, listener })
    }

    /// `https://localhost:PORT`.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.listener.addr().port())
    }

    /// Connections that completed a TLS handshake.
    pub fn handshakes(&self) -> u64 {
        self.shared.handshakes.load(Ordering::SeqCst)
    }

    /// Closes every live connection (both sides), as a network cut would.
    pub fn cut_all(&self) -> usize {
        let live = std::mem::take(&mut *self.shared.live.lock().unwrap());
        for s in &live {
            let _ = s.shutdown(Shutdown::Both);
        }
        live.len() / 2
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.shared.threads.stop();
        self.cut_all();
        let deadline = Instant::now() + JOIN_DEADLINE;
        self.listener.close(deadline);
        self.shared.threads.join_by(deadline);
    }
}

impl Shared {
    fn stopping(&self) -> bool {
        self.threads.stopping()
    }
}

/// One connection: TLS on the client side, plain TCP to the target. The TLS stream cannot be
/// split, so the client-to-target side reads it in short turns under a lock and the other side
/// writes to it between those turns.
fn serve(shared: &Shared, client: TcpStream) {
    let Ok(conn) = rustls::ServerConnection::new(shared.config.clone()) else {
        return;
    };
    let Ok(server) = TcpStream::connect(shared.target) else {
        return;
    };
    let _ = server.set_nodelay(true);
    let _ = client.set_nodelay(true);
    {
        let mut live = shared.live.lock().unwrap();
        for s in [client.try_clone(), server.try_clone()]
            .into_iter()
            .flatten()
        {
            live.push(s);
        }
    }
    let mut tls = rustls::StreamOwned::new(conn, client);
    // Complete the handshake before anything else (a failed one just ends the connection).
    let _ = tls.sock.set_read_timeout(Some(Duration::from_secs(5)));
    while tls.conn.is_handshaking() {
        if tls.conn.complete_io(&mut tls.sock).is_err() {
            return;
        }
    }
    shared.handshakes.fetch_add(1, Ordering::SeqCst);
    let _ = tls.sock.set_read_timeout(Some(POLL));
    let tls = Arc::new(Mutex::new(tls));
    let (Ok(mut upstream_r), Ok(mut upstream_w)) = (server.try_clone(), server.try_clone()) else {
        return;
    };
    let down = {
        let tls = tls.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match upstream_r.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let mut t = tls.lock().unwrap();
                if t.write_all(&buf[..n]).and_then(|_| t.flush()).is_err() {
                    break;
                }
            }
            if let Ok(mut t) = tls.lock() {
                t.conn.send_close_notify();
                let _ = t.flush();
                let _ = t.sock.shutdown(Shutdown::Both);
            }
        })
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let read = {
            let mut t = tls.lock().unwrap();
            t.read(&mut buf)
        };
        match read {
            Ok(0) => break,
            Ok(n) => {
                if upstream_w.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                // Let the other side write between our turns.
                std::thread::yield_now();
            }
            Err(_) => break,
        }
    }
    let _ = server.shutdown(Shutdown::Both);
    let _ = down.join();
}
