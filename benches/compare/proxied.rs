//! Round trips through a reverse proxy: Debian's nginx with TLS and the usual websocket
//! configuration, in front of a stock jupyter_server (Nagle back on after the upgrade) and in
//! front of one that loads `server/e2b_nodelay.py`; the stock server direct for reference.
//! Ours (plain, and with `ConnectionConfig::ack_nudge`) and websocket-client take turns.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::nginx::{Nginx, SelfSigned};
use crate::util::{Res, Rest};
use crate::{Bench, Client, Kind, Results, client, env_num, push, strings};

const TOKEN: &str = "bench-nginx-token";

pub const DIRECT: &str = "direct to the stock server";
pub const STOCK: &str = "nginx + TLS, stock server";
pub const FIXED: &str = "nginx + TLS, server with e2b_nodelay";
/// The paths, in the order of the report.
pub const PATHS: [&str; 3] = [DIRECT, STOCK, FIXED];
pub const OURS: &str = "e2b-blocking";
pub const OURS_NUDGE: &str = "e2b-blocking, ack_nudge(true)";
pub const WSC: &str = "websocket-client";
pub const CLIENTS: [&str; 3] = [OURS, OURS_NUDGE, WSC];

/// The result key of `client` on `path`.
pub fn key(path: &str, client: &str) -> String {
    format!("{client} | {path}")
}

/// A stock jupyter_server from the peers' venv; killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(python: &Path, dir: &Path, nodelay: bool) -> Res<Server> {
        std::fs::create_dir_all(dir.join("root"))?;
        let ext = Path::new(env!("CARGO_MANIFEST_DIR")).join("server");
        let config = dir.join("config.py");
        let text = if nodelay {
            format!(
                "import sys\nsys.path.insert(0, {:?})\nc.ServerApp.jpserver_extensions = {{'e2b_nodelay': True}}\n",
                ext.display().to_string()
            )
        } else {
            String::new()
        };
        std::fs::write(&config, text)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = std::fs::File::create(dir.join("server.log"))?;
        let child = Command::new(python)
            .args(["-m", "jupyter_server"])
            .arg(format!("--config={}", config.display()))
            .arg("--ServerApp.ip=127.0.0.1")
            .arg(format!("--ServerApp.port={port}"))
            .arg("--ServerApp.port_retries=0")
            .arg(format!("--IdentityProvider.token={TOKEN}"))
            .arg(format!(
                "--ServerApp.root_dir={}",
                dir.join("root").display()
            ))
            .arg("--ZMQChannelsWebsocketConnection.limit_rate=False")
            .arg("--allow-root")
            .env("JUPYTER_RUNTIME_DIR", dir.join("runtime"))
            .env("JUPYTER_DATA_DIR", dir.join("data"))
            .env("JUPYTER_CONFIG_DIR", dir.join("config"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut server = Server { child, addr };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if server.child.try_wait()?.is_some() {
                return Err(format!("jupyter_server exited; see {}", dir.display()).into());
            }
            if ureq::get(format!("http://{addr}/api")).call().is_ok() {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = server.child.kill();
        Err("jupyter_server did not answer within 60 s".into())
    }
}

pub fn nginx(bench: &Bench, results: &mut Results, quick: bool) -> Res<()> {
    let dir: PathBuf = std::env::temp_dir().join(format!("e2b-bench-nginx-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cert = SelfSigned::openssl_default(&dir, "server");
    let stock = Server::start(&bench.python, &dir.join("stock"), false)?;
    let fixed = Server::start(&bench.python, &dir.join("nodelay"), true)?;
    let via_stock = Nginx::start(stock.addr, &cert, "");
    let via_fixed = Nginx::start(fixed.addr, &cert, "");
    let cert_path = cert.cert.display().to_string();
    // Each path: where the clients connect, and the server its kernels are started on.
    let paths = [
        (DIRECT, format!("http://{}", stock.addr), stock.addr),
        (STOCK, via_stock.url_by_name(), stock.addr),
        (FIXED, via_fixed.url_by_name(), fixed.addr),
    ];
    let clients: Vec<Client> = vec![
        client(OURS, Kind::Ours, &[]),
        client(OURS_NUDGE, Kind::Ours, &[]),
        client(WSC, Kind::Peer("websocket-client"), &[]),
    ];
    let n = env_num("E2B_BENCH_ROUNDS", if quick { 1 } else { 2 });
    let it = if quick { "30" } else { "100" };
    let args = strings(&["--iterations", it, "--warmup", "10"]);
    eprintln!(
        "compare: nginx: {n} round(s) of {} clients on {} paths",
        clients.len(),
        paths.len()
    );
    for r in 0..n {
        for (p, (path, url, server)) in paths.iter().enumerate() {
            let mut b = bench.clone();
            b.url = url.clone();
            b.token = TOKEN.to_string();
            b.rest = Rest::new(&format!("http://{server}"), TOKEN);
            b.env = vec![
                ("E2B_BENCH_CERT".into(), cert_path.clone()),
                ("E2B_BENCH_CAFILE".into(), cert_path.clone()),
            ];
            for i in 0..clients.len() {
                let c = &clients[(i + r + p) % clients.len()];
                let mut b = b.clone();
                if c.name == OURS_NUDGE {
                    b.env.push(("E2B_BENCH_ACK_NUDGE".into(), "1".into()));
                }
                let v = b.run_fresh(c, "roundtrip", &args, Duration::from_secs(300));
                push(results, "nginx", &key(path, c.name), v);
            }
        }
    }
    drop((via_stock, via_fixed, stock, fixed));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
