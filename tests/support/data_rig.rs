//! E2B's data plane as it runs today, on 127.0.0.1: the stand-ins of `tests/rig` (envd and the
//! code-interpreter server, in front of a real jupyter_server on a 0600 Unix socket), behind
//! the sandbox-proxy stand-in of [`super::e2b_rig`] and with its scripted control plane.
//!
//! The stand-ins run in a user and mount namespace of their own where fresh directories are
//! bound over `/home` (so `/home/user` is the sandbox's home, as on E2B) and `/tmp` (so what
//! the sandbox leaves in its `/tmp` goes with the rig; the stand-ins' own state is in
//! `/home/.rig`), and in a PID
//! namespace, so that dropping the rig ends every process started in it (commands started
//! through envd run in sessions of their own). Their Python packages (`tests/rig/requirements.txt`)
//! go into a venv under the target directory, built once and shared by every test process.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use super::e2b_rig::{API_KEY, PlaneLog, SANDBOX_ID, SandboxProxy, control_plane_answering};
use super::scripted_ws::ScriptedWs;

/// The envd version the rig's control plane reports: the newest the vendored spec knows of,
/// so no feature is refused for age.
pub const ENVD_VERSION: &str = "0.6.4";
/// The envd access token of the rig's sandbox.
pub const ENVD_TOKEN: &str = "envd-token-of-the-rig";
/// The sandbox's traffic token when the rig is started with [`Options::private`].
pub const TRAFFIC_TOKEN: &str = "traffic-token-of-the-rig";

const RIG_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rig");

/// The rig venv's Python, building the venv first when it is missing or older than
/// `requirements.txt`. One build at a time across processes (a lock file beside it).
pub fn rig_python() -> PathBuf {
    let requirements = Path::new(RIG_DIR).join("requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).expect("tests/rig/requirements.txt");
    let requirements = requirements.display().to_string();
    super::installs::python_venv(
        &Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2b-rig-venv"),
        &wanted,
        &["-r", &requirements],
        &[&["-m", "bash_kernel.install", "--sys-prefix"]],
    )
}

/// The host paths the rig runs from, `:`-separated: the repository (the rig's scripts) and the
/// venv with the Python it was made from.
pub fn keep_paths(python: &Path) -> String {
    let venv = python.parent().and_then(Path::parent).unwrap_or(python);
    let mut keep = vec![
        Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf(),
        venv.to_path_buf(),
    ];
    if let Ok(real) = std::fs::canonicalize(python) {
        keep.extend(real.parent().and_then(Path::parent).map(Path::to_path_buf));
    }
    keep.iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// What the rig's sandbox is like.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Sandbox env vars (envd's `/envs`, what every process gets).
    pub envs: Vec<(String, String)>,
    /// Traffic not public: the proxy wants [`TRAFFIC_TOKEN`].
    pub private: bool,
    /// The control plane hands out this envd token instead of [`ENVD_TOKEN`].
    pub envd_token: Option<String>,
    /// The control plane reports this envd version instead of [`ENVD_VERSION`].
    pub envd_version: Option<String>,
    /// envd and the code-interpreter server take no access token (a sandbox created with
    /// `secure=false`): for clients that cannot be given one, such as E2B's SDK in debug mode.
    pub open: bool,
}

/// The stand-ins' process and where they listen.
pub struct Standins {
    child: Child,
    /// Held open: the stand-ins stop when it closes.
    _stdin: ChildStdin,
    pub envd: SocketAddr,
    pub interpreter: SocketAddr,
    dir: PathBuf,
}

impl Standins {
    /// Starts the stand-ins on free ports of 127.0.0.1, with envd's token [`ENVD_TOKEN`]
    /// unless [`Options::open`].
    pub fn start(options: &Options) -> Standins {
        let python = rig_python();
        let dir =
            std::env::temp_dir().join(format!("e2b-data-rig-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("home/user")).unwrap();
        std::fs::create_dir_all(dir.join("home/.rig")).unwrap();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let envs: serde_json::Map<String, Value> = options
            .envs
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let mut child = Command::new("unshare")
            .args([
                "-rm",
                "-p",
                "-f",
                "--kill-child",
                "--propagation",
                "private",
            ])
            // The rig's own /tmp hides the host's; what it runs from (the repository, the
            // venv) may be under /tmp (a clone there), so those are bound back at their paths.
            .args([
                "sh",
                "-c",
                "mount --bind \"$0/home\" /home && IFS=: && \
                 for p in $E2B_RIG_KEEP; do case \"$p\" in /tmp/*) \
                   mkdir -p \"$0/tmp${p#/tmp}\" && mount --bind \"$p\" \"$0/tmp${p#/tmp}\" || exit 1;; \
                 esac; done; unset IFS; mount --rbind \"$0/tmp\" /tmp && exec \"$@\"",
            ])
            .env("E2B_RIG_KEEP", keep_paths(&python))
            .arg(&dir)
            .arg(&python)
            .arg(Path::new(RIG_DIR).join("main.py"))
            .args(["--state", "/home/.rig"])
            .args([
                "--token",
                if options.open { "" } else { ENVD_TOKEN },
                "--envs",
            ])
            .arg(Value::Object(envs).to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("unshare (util-linux) runs the rig");
        let stdin = child.stdin.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let mut line = String::new();
        let read = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        if read.is_err() || line.trim().is_empty() {
            let _ = child.kill();
            let mut err = String::new();
            let _ = stderr.read_to_string(&mut err);
            let _ = child.wait();
            panic!("the rig did not start: {err}");
        }
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = stderr.read_to_end(&mut sink);
        });
        let ports: Value = serde_json::from_str(line.trim()).expect("the rig's ports line");
        let addr = |name: &str| -> SocketAddr {
            format!("127.0.0.1:{}", ports[name].as_u64().expect("a port"))
                .parse()
                .unwrap()
        };
        Standins {
            envd: addr("envd"),
            interpreter: addr("interpreter"),
            child,
            _stdin: stdin,
            dir,
        }
    }

    /// The host directory that is `/home` in the sandbox.
    pub fn home(&self) -> PathBuf {
        self.dir.join("home")
    }

    /// The jupyter_server's log, for a failing test's message.
    pub fn jupyter_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("home/.rig/jupyter.log")).unwrap_or_default()
    }
}

impl Drop for Standins {
    fn drop(&mut self) {
        // Killing unshare kills the namespace's first process, and with it every other.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The whole rig: the stand-ins, the proxy in front of them, the control plane.
pub struct DataRig {
    pub standins: Standins,
    pub proxy: SandboxProxy,
    pub plane: ScriptedWs,
    pub plane_log: PlaneLog,
    pub gone: Arc<AtomicBool>,
}

impl DataRig {
    pub fn start() -> DataRig {
        DataRig::start_with(&Options::default())
    }

    pub fn start_with(options: &Options) -> DataRig {
        let standins = Standins::start(options);
        let gone = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let proxy = SandboxProxy::start_ports(
            &[("49983", standins.envd), ("49999", standins.interpreter)],
            SANDBOX_ID,
            gone.clone(),
            paused.clone(),
        )
        .expect("proxy starts");
        let mut access = json!({
            "envdVersion": options.envd_version.as_deref().unwrap_or(ENVD_VERSION),
        });
        if !options.open {
            access["envdAccessToken"] = json!(options.envd_token.as_deref().unwrap_or(ENVD_TOKEN));
        }
        if options.private {
            proxy.require_traffic_token(TRAFFIC_TOKEN);
            access["trafficAccessToken"] = json!(TRAFFIC_TOKEN);
        }
        // A pause here is the proxy's part of one only (see `SandboxProxy::pause_hook`); the
        // stand-ins run on, in namespaces of their own.
        let (plane, plane_log) =
            control_plane_answering(gone.clone(), paused, proxy.pause_hook(), access);
        DataRig {
            standins,
            proxy,
            plane,
            plane_log,
            gone,
        }
    }

    /// A config that reaches the control plane and, through the proxy, the sandbox.
    pub fn config(&self) -> e2b_blocking::E2bConfig {
        e2b_blocking::E2bConfig::default()
            .api_key(API_KEY)
            .api_url(self.plane.http_url())
            .sandbox_url(self.proxy.url())
            .request_timeout(Duration::from_secs(30))
    }

    /// A sandbox on the rig, with default options.
    pub fn sandbox(&self) -> e2b_blocking::Sandbox {
        super::init_logs();
        e2b_blocking::Sandbox::builder()
            .e2b_with(&self.config(), &e2b_blocking::E2bOptions::default())
            .expect("sandbox on the rig")
    }

    /// The sandbox dies: the control plane says 404, the proxy 502.
    pub fn kill_sandbox(&self) {
        self.gone.store(true, Ordering::SeqCst);
        self.proxy.mark_gone();
    }

    /// The host path of a path under `/home` in the sandbox.
    pub fn host_path(&self, sandbox_path: &str) -> PathBuf {
        self.standins.home().join(
            sandbox_path
                .strip_prefix("/home/")
                .expect("a path under /home"),
        )
    }
}
