//! A real JupyterHub on 127.0.0.1 for tests: `jupyterhub` from PyPI (in a venv of its own
//! under the target directory, with the same jupyter_server and ipykernel as the local
//! sandbox's), its `configurable-http-proxy` from npm (in `target/chp`), the dummy
//! authenticator and the simple local-process spawner (single-user servers run as the test's
//! own user, root included). Its state (sqlite, cookie secret, users' homes) lives in a temp
//! dir. Dropping the [`Hub`] stops it, its proxy and every single-user server.
#![allow(dead_code)]

use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The pinned releases. configurable-http-proxy 5 wants Node 20; 4.6 runs on the Node the
/// README asks for (18.20 for Prism).
pub const JUPYTERHUB_VERSION: &str = "6.1.1";
pub const CHP_VERSION: &str = "4.6.3";
/// The local sandbox's pins, so the single-user servers are the server the SDK is tested on.
const SERVER_PINS: [&str; 2] = ["jupyter_server==2.21.1", "ipykernel==7.4.0"];

const START_DEADLINE: Duration = Duration::from_secs(90);
const STOP_DEADLINE: Duration = Duration::from_secs(15);

/// The admin service's token: it creates the users' tokens, nothing in the SDK sees it.
const ADMIN_TOKEN: &str = "e2b-test-hub-admin-token-0123456789";

/// The user whose spawner always fails (its server exits at once).
pub const BROKEN_USER: &str = "broken";
/// The user whose spawner never answers (its server sleeps).
pub const STUCK_USER: &str = "stuck";

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target")
}

/// The venv with jupyterhub, jupyter_server and ipykernel, built once; returns its `bin`
/// directory.
pub fn ensure_venv() -> PathBuf {
    crate::support::require_tool(
        "python3",
        "install Python 3.9 or later with venv (Debian: apt-get install python3 python3-venv)",
    );
    let hub = format!("jupyterhub=={JUPYTERHUB_VERSION}");
    let install = [hub.as_str(), SERVER_PINS[0], SERVER_PINS[1]];
    let python = super::installs::python_venv(
        &target_dir().join("hub-venv"),
        &install.join(" "),
        &install,
        &[],
    );
    python.parent().expect("the venv's bin").to_path_buf()
}

/// configurable-http-proxy, installed once with npm; returns its executable.
pub fn ensure_chp() -> PathBuf {
    const NODE: &str =
        "install Node.js 18 or later and npm (Debian: apt-get install nodejs, and npm if missing)";
    crate::support::require_tool("node", NODE);
    crate::support::require_tool("npm", NODE);
    super::installs::npm_package(
        &target_dir().join("chp"),
        "configurable-http-proxy",
        CHP_VERSION,
        "configurable-http-proxy",
    )
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port on 127.0.0.1")
}

/// What a test may change about the hub.
#[derive(Default, Clone)]
pub struct HubSetup {
    /// `(real, routed)`: alice's server listens on `real`, and the Hub routes to `routed`
    /// (where the test puts a fault proxy in front of `real`), so cuts can be made between the
    /// Hub's proxy and the server.
    pub alice_route: Option<(u16, u16)>,
    /// Extra lines for the single-user servers' `jupyter_server_config.py`.
    pub server_config: String,
}

/// A running JupyterHub.
pub struct Hub {
    child: Child,
    /// The Hub's public URL (its proxy), `http://127.0.0.1:PORT`.
    pub url: String,
    dir: PathBuf,
    keep_dir: bool,
}

impl Hub {
    /// Starts a hub whose users are `alice`, `bob`, [`BROKEN_USER`] and [`STUCK_USER`].
    pub fn start(setup: &HubSetup) -> Hub {
        crate::support::init_logs();
        let bin = ensure_venv();
        let chp = ensure_chp();
        let dir = std::env::temp_dir().join(format!("e2b-hub-{}", uuid::Uuid::new_v4().simple()));
        fs::create_dir_all(dir.join("home")).unwrap();
        fs::create_dir_all(dir.join("etc")).unwrap();
        // The users' servers keep their temporary files (commands' logs) here, not in /tmp.
        fs::create_dir_all(dir.join("tmp")).unwrap();
        let mut last = String::new();
        for _ in 0..5 {
            let ports = [free_port(), free_port(), free_port()];
            fs::write(
                dir.join("jupyterhub_config.py"),
                config(&dir, &bin, &chp, ports, setup),
            )
            .unwrap();
            fs::write(
                dir.join("etc/jupyter_server_config.py"),
                &setup.server_config,
            )
            .unwrap();
            let log = File::create(dir.join("hub.log")).unwrap();
            let mut cmd = Command::new(bin.join("jupyterhub"));
            cmd.arg("-f")
                .arg(dir.join("jupyterhub_config.py"))
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log);
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
            let child = cmd.spawn().expect("spawn jupyterhub");
            let mut hub = Hub {
                child,
                url: format!("http://127.0.0.1:{}", ports[0]),
                dir: dir.clone(),
                keep_dir: true,
            };
            if hub.wait_up() {
                hub.keep_dir = false;
                return hub;
            }
            last = hub.log();
            hub.keep_dir = true;
            drop(hub);
        }
        panic!("JupyterHub did not start; its last log:\n{last}");
    }

    /// True once the Hub answers through its proxy.
    fn wait_up(&mut self) -> bool {
        let start = Instant::now();
        while start.elapsed() < START_DEADLINE {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if self
                .admin(Method::Get, "/hub/api/")
                .is_some_and(|(s, _)| s == 200)
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// An API request as the admin service: status and body, or `None` when it got no answer.
    pub fn admin(&self, method: Method, path: &str) -> Option<(u16, String)> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let url = format!("{}{path}", self.url);
        let auth = format!("token {ADMIN_TOKEN}");
        let resp = match method {
            Method::Get => agent.get(&url).header("Authorization", &auth).call(),
            Method::Delete => agent.delete(&url).header("Authorization", &auth).call(),
            Method::Post(body) => agent
                .post(&url)
                .header("Authorization", &auth)
                .content_type("application/json")
                .send(body),
        };
        let mut resp = resp.ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.body_mut().read_to_string().unwrap_or_default()))
    }

    /// A new API token of `user`, as the Hub's token page makes one.
    pub fn user_token(&self, user: &str) -> String {
        let (status, body) = self
            .admin(
                Method::Post(r#"{"note": "e2b-blocking test", "expires_in": 3600}"#),
                &format!("/hub/api/users/{user}/tokens"),
            )
            .expect("the Hub answers");
        assert_eq!(status, 201, "token for {user}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["token"].as_str().unwrap().to_string()
    }

    /// The Hub's record of `user`'s default server: `None` when it is not running.
    pub fn server(&self, user: &str) -> Option<serde_json::Value> {
        let (_, body) = self.admin(Method::Get, &format!("/hub/api/users/{user}"))?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["servers"].get("").cloned()
    }

    /// Stops `user`'s default server and waits until the Hub says it is stopped.
    pub fn stop_server(&self, user: &str) {
        let _ = self.admin(Method::Delete, &format!("/hub/api/users/{user}/server"));
        let start = Instant::now();
        while self.server(user).is_some() {
            assert!(
                start.elapsed() < STOP_DEADLINE,
                "{user}'s server did not stop"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The pid of the Hub's configurable-http-proxy.
    pub fn proxy_pid(&self) -> Option<u32> {
        crate::support::descendants(self.child.id())
            .into_iter()
            .find(|pid| {
                fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains("configurable-http-proxy"))
            })
    }

    /// The pid of a single-user server (its process runs `jupyterhub-singleuser`) of `user`.
    pub fn server_pid(&self, user: &str) -> Option<u32> {
        let home = self.dir.join("home").join(user);
        crate::support::descendants(self.child.id())
            .into_iter()
            .find(|pid| {
                fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains("jupyterhub-singleuser"))
                    && fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|c| c == home)
            })
    }

    /// `user`'s home, the root of their server.
    pub fn home(&self, user: &str) -> PathBuf {
        self.dir.join("home").join(user)
    }

    /// What the Hub (and its proxy) logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("hub.log")).unwrap_or_default()
    }
}

/// Methods of [`Hub::admin`].
pub enum Method {
    Get,
    Delete,
    Post(&'static str),
}

impl Drop for Hub {
    fn drop(&mut self) {
        // The single-user servers run in sessions of their own: remember them before the Hub
        // goes, then let the Hub stop them and its proxy, and kill whatever is left.
        let pid = self.child.id();
        let below = crate::support::descendants(pid);
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < STOP_DEADLINE {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = nix::sys::signal::killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        for p in below {
            let _ = kill(Pid::from_raw(p as i32), Signal::SIGKILL);
        }
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("JupyterHub log ({}):\n{}", self.dir.display(), self.log());
        }
        if !self.keep_dir && !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The Hub's `jupyterhub_config.py`: proxy on `ports[0]` (its API on `ports[2]`), Hub on
/// `ports[1]`.
fn config(dir: &Path, bin: &Path, chp: &Path, ports: [u16; 3], setup: &HubSetup) -> String {
    let route = match setup.alice_route {
        Some((real, routed)) => format!("{{'alice': ({real}, {routed})}}"),
        None => "{}".into(),
    };
    format!(
        r#"import os
from jupyterhub.spawner import SimpleLocalProcessSpawner

DIR = {dir:?}
ROUTES = {route}

class TestSpawner(SimpleLocalProcessSpawner):
    """Runs as the Hub's own user (root too); a routed user's server is reached through the
    port the test forwards to it."""

    async def start(self):
        name = self.user.name
        if name in ROUTES:
            self.port = ROUTES[name][0]
        if name == {broken:?}:
            self.cmd = ["/bin/sh", "-c", "echo this server cannot start >&2; exit 3"]
            # It never answers: the Hub gives up on it after this many seconds.
            self.http_timeout = 1
        if name == {stuck:?}:
            self.cmd = ["/bin/sh", "-c", "exec sleep 600"]
        ip, port = await super().start()
        if name in ROUTES:
            port = ROUTES[name][1]
        return ip, port

c.JupyterHub.bind_url = "http://127.0.0.1:{proxy}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api}"
c.ConfigurableHTTPProxy.command = [{chp:?}]
c.ConfigurableHTTPProxy.auth_token = "e2b-test-proxy-token"
# A killed proxy is noticed (and started again) within a second rather than 5.
c.ConfigurableHTTPProxy.check_running_interval = 1
c.JupyterHub.db_url = "sqlite:///" + os.path.join(DIR, "hub.sqlite")
c.JupyterHub.cookie_secret_file = os.path.join(DIR, "cookie_secret")
c.JupyterHub.pid_file = os.path.join(DIR, "hub.pid")
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {{"alice", "bob", {broken:?}, {stuck:?}}}
c.JupyterHub.spawner_class = TestSpawner
c.SimpleLocalProcessSpawner.home_dir_template = os.path.join(DIR, "home", "{{username}}")
c.Spawner.cmd = [{singleuser:?}]
c.Spawner.args = ["--allow-root"]
c.Spawner.environment = {{"JUPYTER_CONFIG_PATH": os.path.join(DIR, "etc"), "TMPDIR": os.path.join(DIR, "tmp")}}
c.JupyterHub.services = [{{"name": "test-admin", "api_token": "{admin}"}}]
c.JupyterHub.load_roles = [{{
    "name": "test-admin",
    "scopes": ["admin:users", "admin:servers", "tokens", "read:users"],
    "services": ["test-admin"],
}}]
"#,
        dir = dir.display().to_string(),
        broken = BROKEN_USER,
        stuck = STUCK_USER,
        proxy = ports[0],
        hub = ports[1],
        proxy_api = ports[2],
        chp = chp.display().to_string(),
        singleuser = bin.join("jupyterhub-singleuser").display().to_string(),
        admin = ADMIN_TOKEN,
    )
}
