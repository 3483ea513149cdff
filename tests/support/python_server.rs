//! Jupyter-like servers from PyPI started by tests (a tokenless jupyter_server as E2B's
//! template runs it, a Kernel Gateway), on a free port of 127.0.0.1.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2b_blocking::{LocalOptions, Sandbox};

/// A server child process; `Drop` kills it and removes its directory.
pub struct PythonServer {
    child: Child,
    /// Base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    dir: PathBuf,
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The interpreter of the local sandbox's managed venv, with `packages` installed into it.
pub fn venv_python(packages: &[&str]) -> String {
    let sbx = Sandbox::builder()
        .local_with(LocalOptions::new().packages(packages.iter().copied()))
        .unwrap();
    let exec = sbx.run_code("import sys\nsys.executable").unwrap();
    exec.text().unwrap().trim_matches('\'').to_string()
}

impl PythonServer {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs `python` with `args(port, dir)` in a fresh directory `dir` that also holds its
    /// Jupyter runtime, data and config dirs, until `/api` gives any HTTP answer. A server
    /// that exits early lost the race for its port: it is retried on another one.
    pub fn start(python: &str, args: impl Fn(u16, &Path) -> Vec<String>) -> PythonServer {
        let dir =
            std::env::temp_dir().join(format!("e2b-server-{}", uuid::Uuid::new_v4().simple()));
        // Its kernels' IPython profile goes to a home that exists (else IPython makes one in
        // the host's /tmp and leaves it), its temporary files to its own directory.
        std::fs::create_dir_all(dir.join("home")).unwrap();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new(python)
                .args(args(port, &dir))
                .env("JUPYTER_RUNTIME_DIR", dir.join("runtime"))
                .env("JUPYTER_DATA_DIR", dir.join("data"))
                .env("JUPYTER_CONFIG_DIR", dir.join("config"))
                .env("HOME", dir.join("home"))
                .env("TMPDIR", dir.join("tmp"))
                .env("XDG_DATA_HOME", dir.join("home/.local/share"))
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let url = format!("http://127.0.0.1:{port}");
            let ready_by = Instant::now() + Duration::from_secs(60);
            while Instant::now() < ready_by {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                // Any HTTP answer means it is up (with a token and without it, /api is 401).
                let answer = ureq::get(&format!("{url}/api")).call();
                if matches!(answer, Ok(_) | Err(ureq::Error::StatusCode(_))) {
                    return PythonServer { child, url, dir };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("{python} {:?} did not start", args(0, &dir));
    }
    /// A tokenless jupyter_server from the local sandbox's venv, as E2B's template runs it.
    pub fn tokenless_jupyter() -> PythonServer {
        PythonServer::start(&venv_python(&[]), |port, dir| {
            let root = dir.join("root");
            let _ = std::fs::create_dir_all(&root);
            vec![
                "-m".into(),
                "jupyter_server".into(),
                "--ServerApp.ip=127.0.0.1".into(),
                "--allow-root".into(),
                format!("--ServerApp.port={port}"),
                "--ServerApp.port_retries=0".into(),
                "--IdentityProvider.token=".into(),
                "--ServerApp.disable_check_xsrf=True".into(),
                format!("--ServerApp.root_dir={}", root.display()),
            ]
        })
    }

    /// A stock jupyter_server started the way E2B's code-interpreter template starts it
    /// (reference/e2b-sdk.md §9): no token, XSRF off, any origin, `root_dir` set while the
    /// process runs elsewhere (E2B: `/` vs `/home/user`), default contents settings (deletes go
    /// to the trash, hidden files refused), default IOPub message-rate limit, only the data-rate
    /// limit raised. HOME and XDG_DATA_HOME point into its directory so the trash stays there.
    pub fn template_jupyter() -> PythonServer {
        PythonServer::start(&venv_python(&[]), |port, dir| {
            let root = dir.join("root");
            let _ = std::fs::create_dir_all(&root);
            let _ = std::fs::create_dir_all(dir.join("home"));
            let config = dir.join("jupyter_server_config.py");
            let _ = std::fs::write(
                &config,
                format!(
                    "c.ServerApp.root_dir = {root:?}\n\
                     c.ServerApp.disable_check_xsrf = True\n\
                     c.ServerApp.allow_remote_access = True\n\
                     c.ServerApp.allow_origin = '*'\n\
                     c.ServerApp.allow_root = True\n\
                     c.ServerApp.iopub_data_rate_limit = 1000000000\n",
                    root = root.display().to_string()
                ),
            );
            vec![
                "-m".into(),
                "jupyter_server".into(),
                format!("--config={}", config.display()),
                "--ServerApp.ip=127.0.0.1".into(),
                format!("--ServerApp.port={port}"),
                "--ServerApp.port_retries=0".into(),
                "--IdentityProvider.token=".into(),
            ]
        })
    }

    /// A stock jupyter_server from the local sandbox's venv that takes `token`, until
    /// [`PythonServer::rotate_token`] gives it another (as a restarted server would have).
    pub fn jupyter_with_rotating_token(token: &str) -> PythonServer {
        let token = token.to_string();
        PythonServer::start(&venv_python(&[]), move |port, dir| {
            let root = dir.join("root");
            let _ = std::fs::create_dir_all(&root);
            let config = dir.join("rotate_token.py");
            let _ = std::fs::write(
                &config,
                format!(
                    "import os, threading, time\n\
                     def _rotate():\n    \
                         from jupyter_server.serverapp import ServerApp\n    \
                         path = {next:?}\n    \
                         while True:\n        \
                             time.sleep(0.02)\n        \
                             if os.path.exists(path):\n            \
                                 with open(path) as f:\n                \
                                     ServerApp.instance().identity_provider.token = f.read()\n            \
                                 os.remove(path)\n\
                     threading.Thread(target=_rotate, daemon=True).start()\n",
                    next = dir.join("next-token").display().to_string()
                ),
            );
            vec![
                "-m".into(),
                "jupyter_server".into(),
                format!("--config={}", config.display()),
                "--ServerApp.ip=127.0.0.1".into(),
                "--allow-root".into(),
                format!("--ServerApp.port={port}"),
                "--ServerApp.port_retries=0".into(),
                format!("--IdentityProvider.token={token}"),
                format!("--ServerApp.root_dir={}", root.display()),
            ]
        })
    }

    /// Makes a server from [`PythonServer::jupyter_with_rotating_token`] take only `token`
    /// from now on; returns once it does.
    pub fn rotate_token(&self, token: &str) {
        let next = self.dir.join("next-token");
        // Renamed into place, so the server never reads half a token.
        let partial = self.dir.join("next-token.partial");
        std::fs::write(&partial, token).unwrap();
        std::fs::rename(&partial, &next).unwrap();
        let until = Instant::now() + Duration::from_secs(30);
        while next.exists() {
            assert!(
                Instant::now() < until,
                "the server did not take the new token"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Jupyter Enterprise Gateway from PyPI with local (process) kernels, in a venv of its own
    /// under the target directory (it pins jupyter_server < 2 and jupyter_client < 7, which
    /// must not leak into the local sandbox's venv). Built on first use.
    pub fn enterprise_gateway(token: &str) -> PythonServer {
        const PACKAGES: [&str; 2] = ["jupyter_enterprise_gateway", "ipykernel"];
        let python = super::installs::python_venv(
            &Path::new(env!("CARGO_TARGET_TMPDIR")).join("eg-venv"),
            &PACKAGES.join(" "),
            &PACKAGES,
            &[],
        );
        let token = token.to_string();
        PythonServer::start(python.to_str().unwrap(), move |port, dir| {
            let root = dir.join("root");
            let _ = std::fs::create_dir_all(&root);
            vec![
                "-c".into(),
                "from enterprise_gateway.enterprisegatewayapp import launch_instance; launch_instance()"
                    .into(),
                "--EnterpriseGatewayApp.ip=127.0.0.1".into(),
                format!("--EnterpriseGatewayApp.port={port}"),
                "--EnterpriseGatewayApp.port_retries=0".into(),
                format!("--EnterpriseGatewayApp.auth_token={token}"),
                "--EnterpriseGatewayApp.list_kernels=True".into(),
                // EG refuses kernels for root by default; these tests may run as root.
                "--EnterpriseGatewayApp.unauthorized_users=nobody".into(),
                format!("--EnterpriseGatewayApp.root_dir={}", root.display()),
            ]
        })
    }

    /// The server's root_dir for servers started with a `root` directory.
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// The server's own directory (its process cwd, its HOME for the template server).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Adds a kernelspec `name` with `argv` (jupyter_server reads its specs on every request).
    pub fn add_kernelspec(&self, name: &str, language: &str, argv: &[&str]) {
        let spec = self.dir.join("data/kernels").join(name);
        std::fs::create_dir_all(&spec).unwrap();
        let json = serde_json::json!({"argv": argv, "display_name": name, "language": language});
        std::fs::write(spec.join("kernel.json"), json.to_string()).unwrap();
    }
}
