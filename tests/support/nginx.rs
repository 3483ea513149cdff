//! Debian's nginx as a TLS-terminating reverse proxy on 127.0.0.1, with the usual websocket
//! upgrade configuration, in front of a Jupyter server; and self-signed certificates made by
//! `openssl req -x509` with its defaults (which mark them `CA:TRUE`), as Jupyter's docs show.
// Each test binary (and benches/compare) uses a different subset of these helpers.
#![allow(dead_code)]

use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const START_DEADLINE: Duration = Duration::from_secs(30);
const INSTALL: &str = "install nginx (Debian: apt-get install nginx) and openssl";

/// A key and its self-signed certificate, in PEM files.
pub struct SelfSigned {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl SelfSigned {
    /// `openssl req -x509 -newkey rsa:2048 -nodes` with only the subject given (`CN=localhost`):
    /// everything else is openssl's default, `basicConstraints=critical,CA:TRUE` included.
    pub fn openssl_default(dir: &Path, name: &str) -> SelfSigned {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        let ok = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
            ])
            .args(["-subj", "/CN=localhost", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run openssl ({e}): {INSTALL}"))
            .success();
        assert!(ok, "openssl req -x509 failed");
        SelfSigned { cert, key }
    }

    pub fn pem(&self) -> Vec<u8> {
        fs::read(&self.cert).unwrap()
    }
}

/// The nginx binary: on PATH, or where Debian puts it (`/usr/sbin` is not on a user's PATH).
pub fn nginx_binary() -> PathBuf {
    for candidate in ["nginx", "/usr/sbin/nginx"] {
        let ran = Command::new(candidate)
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if ran.is_ok_and(|s| s.success()) {
            return PathBuf::from(candidate);
        }
    }
    panic!("nginx not found: {INSTALL}");
}

/// A running nginx: `https://127.0.0.1:PORT` → `http://upstream`. Killed on drop.
pub struct Nginx {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Nginx {
    /// Starts nginx with `cert` on a free port, proxying everything (websocket upgrades
    /// included) to `upstream`. `extra` goes into the `location` block (e.g. `tcp_nodelay off;`).
    pub fn start(upstream: SocketAddr, cert: &SelfSigned, extra: &str) -> Nginx {
        let bin = nginx_binary();
        let dir = std::env::temp_dir().join(format!("e2b-nginx-{}", uuid::Uuid::new_v4().simple()));
        fs::create_dir_all(dir.join("tmp")).unwrap();
        let mut last = String::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let conf = dir.join("nginx.conf");
            fs::write(&conf, config(&dir, port, upstream, cert, extra)).unwrap();
            let log = File::create(dir.join("stderr.log")).unwrap();
            let mut cmd = Command::new(&bin);
            cmd.arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(&conf)
                .args(["-g", "daemon off;"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log);
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
            let mut child = cmd.spawn().expect("spawn nginx");
            let start = Instant::now();
            while start.elapsed() < START_DEADLINE {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Nginx { child, port, dir };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            last = fs::read_to_string(dir.join("error.log")).unwrap_or_default()
                + &fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
        }
        panic!("nginx did not start:\n{last}");
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// `https://localhost:PORT`: the name the certificate carries.
    pub fn url_by_name(&self) -> String {
        format!("https://localhost:{}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let pgid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The usual reverse-proxy set-up for Jupyter (as JupyterHub's docs give it): HTTP/1.1 to the
/// upstream, `Upgrade`/`Connection` passed on for websockets, long read timeouts.
fn config(dir: &Path, port: u16, upstream: SocketAddr, cert: &SelfSigned, extra: &str) -> String {
    // Workers of a root master run as `nobody`, who could not write the temp dirs here.
    let user = if nix::unistd::geteuid().is_root() {
        "user root root;"
    } else {
        ""
    };
    let d = dir.display();
    format!(
        r#"worker_processes 1;
{user}
error_log {d}/error.log;
pid {d}/nginx.pid;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    client_max_body_size 0;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        '' close;
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 1d;
            proxy_send_timeout 1d;
            {extra}
        }}
    }}
}}
"#,
        cert = cert.cert.display(),
        key = cert.key.display(),
    )
}
