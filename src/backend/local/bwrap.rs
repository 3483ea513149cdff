//! Running the local server inside bubblewrap: the command line, the check that bubblewrap
//! can create namespaces here, resource limits, and a long-lived thread to spawn from.
//!
//! The sandbox's view of the file system: `/usr`, `/etc`, `/opt` and `/sys` read-only (with the
//! usual top-level symlinks), a fresh `/proc`, `/dev` and `/tmp`, the sandbox root writable at
//! `/home/user`, and the Python it runs bound back read-only. Nothing else of the host is
//! there: no home directories, no `/root`, no `/run` (and its sockets), no `/var`, no `/mnt`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

use crate::backend::local::ResourceLimits;
use crate::error::Error;

/// Where the sandbox root appears inside, as on E2B.
pub(crate) const HOME: &str = "/home/user";
/// Where the server's own directories (config, runtime, socket) appear inside.
pub(crate) const STATE: &str = "/run/e2b-blocking";

/// Host directories shown read-only. Everything else of the host is absent.
const SHOWN: &[&str] = &[
    "usr", "etc", "opt", "sys", "bin", "sbin", "lib", "lib32", "lib64", "libx32",
];

/// Finds bubblewrap and checks, once per process, that it can create the namespaces the sandbox
/// uses (containers and hardened kernels may forbid user namespaces).
pub(crate) fn check() -> Result<PathBuf, Error> {
    static CHECKED: OnceLock<Result<PathBuf, (String, Option<String>)>> = OnceLock::new();
    CHECKED
        .get_or_init(probe)
        .clone()
        .map_err(|(reason, detail)| Error::IsolationUnavailable {
            reason,
            source: detail.map(Into::into),
        })
}

fn probe() -> Result<PathBuf, (String, Option<String>)> {
    if !cfg!(target_os = "linux") {
        return Err(("bubblewrap runs on Linux only".into(), None));
    }
    let exe = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("bwrap"))
        .find(|p| p.is_file())
        .ok_or_else(|| ("no `bwrap` on PATH".to_string(), None))?;
    let out = Command::new(&exe)
        .args([
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-net",
            "--die-with-parent",
            "--ro-bind",
            "/",
            "/",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "true",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            (
                format!("{} cannot be run", exe.display()),
                Some(e.to_string()),
            )
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err((
            format!("{} cannot create namespaces here", exe.display()),
            Some(stderr.trim().to_string()),
        ));
    }
    Ok(exe)
}

/// What the sandbox is built from.
pub(crate) struct Plan<'a> {
    pub(crate) bwrap: &'a Path,
    /// The server's host directory: `root` is shown at [`HOME`], the rest under [`STATE`].
    pub(crate) dir: &'a Path,
    /// Host paths the Python needs (venv, base prefix), shown read-only where they are.
    pub(crate) python_paths: &'a [PathBuf],
    pub(crate) internet: bool,
    /// Variables of the sandbox's environment, the only ones it gets.
    pub(crate) env: &'a [(String, String)],
    /// A cgroup's `cgroup.procs`: bubblewrap joins the cgroup before it starts anything.
    pub(crate) cgroup_procs: Option<&'a Path>,
}

impl Plan<'_> {
    /// `bwrap [options] --` followed by nothing: the caller appends the command to run inside.
    pub(crate) fn command(&self) -> Command {
        let mut cmd = match self.cgroup_procs {
            // The shell moves itself into the cgroup, then becomes bubblewrap: nothing of the
            // sandbox runs outside the cgroup, even for a moment.
            Some(procs) => {
                let mut sh = Command::new("/bin/sh");
                sh.args(["-c", "echo 0 > \"$0\" && exec \"$@\""])
                    .arg(procs)
                    .arg(self.bwrap);
                sh
            }
            None => Command::new(self.bwrap),
        };
        cmd.args([
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
        ]);
        if !self.internet {
            cmd.arg("--unshare-net");
        }
        cmd.args(["--die-with-parent", "--new-session", "--cap-drop", "ALL"])
            .args(["--hostname", "sandbox"]);
        for name in SHOWN {
            let host = Path::new("/").join(name);
            match fs::symlink_metadata(&host) {
                Ok(m) if m.file_type().is_symlink() => {
                    if let Ok(target) = fs::read_link(&host) {
                        cmd.arg("--symlink").arg(target).arg(&host);
                    }
                }
                Ok(m) if m.is_dir() => {
                    cmd.arg("--ro-bind").arg(&host).arg(&host);
                }
                _ => {}
            }
        }
        cmd.args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);
        if self.internet {
            // /etc/resolv.conf often points into /run, which is otherwise hidden.
            cmd.args([
                "--ro-bind-try",
                "/run/systemd/resolve",
                "/run/systemd/resolve",
            ]);
        }
        // A home under a shown directory (/opt/…, /etc/…) is hidden all the same.
        if let Some(home) = dirs::home_dir()
            && home != Path::new("/")
            && SHOWN
                .iter()
                .any(|d| home.starts_with(Path::new("/").join(d)))
        {
            cmd.arg("--tmpfs").arg(&home);
        }
        for path in self.python_paths {
            cmd.arg("--ro-bind").arg(path).arg(path);
        }
        for name in ["config", "data", "ipython", "runtime", "sock"] {
            cmd.arg("--bind")
                .arg(self.dir.join(name))
                .arg(Path::new(STATE).join(name));
        }
        cmd.arg("--bind")
            .arg(self.dir.join("root"))
            .arg(HOME)
            .args(["--chdir", HOME, "--clearenv"]);
        for (k, v) in self.env {
            cmd.arg("--setenv").arg(k).arg(v);
        }
        cmd.arg("--");
        cmd.env_clear();
        cmd
    }
}

/// Python code for the server config that applies `limits` to the server and everything it
/// starts. RLIMIT_NPROC counts the tasks of one user in one user namespace, here the
/// sandbox's own; it is set inside so that the host user's other processes do not count.
pub(crate) fn rlimit_config(limits: &ResourceLimits) -> String {
    let mut out = String::from("import resource as _resource\n");
    if let Some(n) = limits.max_processes {
        out.push_str(&format!(
            "_resource.setrlimit(_resource.RLIMIT_NPROC, ({n}, {n}))\n"
        ));
    }
    if let Some(m) = limits.max_memory {
        out.push_str(&format!(
            "_resource.setrlimit(_resource.RLIMIT_AS, ({m}, {m}))\n"
        ));
    }
    out
}

/// A pids cgroup holding one sandbox: for when the SDK runs as root, whose processes the kernel
/// never holds to RLIMIT_NPROC (the sandbox's user maps to host root).
#[derive(Debug)]
pub(crate) struct PidsCgroup {
    dir: PathBuf,
}

impl PidsCgroup {
    /// A new cgroup allowing `max` tasks, under cgroup v2's root when its `pids` controller is
    /// enabled for children, else under cgroup v1's `pids` hierarchy; `None` when neither can be
    /// written.
    pub(crate) fn create(max: u32) -> Option<PidsCgroup> {
        let v2 = Path::new("/sys/fs/cgroup");
        let parent = if fs::read_to_string(v2.join("cgroup.subtree_control"))
            .is_ok_and(|s| s.split_whitespace().any(|c| c == "pids"))
        {
            v2.to_path_buf()
        } else {
            v2.join("pids")
        };
        let dir = parent.join(format!("e2b-blocking-{}", uuid::Uuid::new_v4().simple()));
        let made =
            fs::create_dir(&dir).and_then(|()| fs::write(dir.join("pids.max"), max.to_string()));
        match made {
            Ok(()) => Some(PidsCgroup { dir }),
            Err(e) => {
                log::debug!("no pids cgroup under {}: {e}", parent.display());
                let _ = fs::remove_dir(&dir);
                None
            }
        }
    }

    /// The `cgroup.procs` file a process writes `0` to to join the cgroup.
    pub(crate) fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        // The sandbox's processes die with its PID namespace, a moment after the server is
        // reaped; the cgroup can go only once they have.
        for _ in 0..100 {
            match fs::remove_dir(&self.dir) {
                Ok(()) => return,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
        log::warn!("could not remove the cgroup {}", self.dir.display());
    }
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` from a thread that lives as long as the process. `--die-with-parent` ends the
/// sandbox when the thread that spawned bubblewrap exits (PR_SET_PDEATHSIG is per thread), and
/// a sandbox must outlive the thread that created it.
pub(crate) fn spawn(cmd: Command) -> io::Result<Child> {
    static KEEPER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        let started = std::thread::Builder::new()
            .name("e2b-sandbox-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            });
        if let Err(e) = started {
            log::warn!("no spawner thread ({e}); sandboxes die with the thread creating them");
        }
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    let sent = match keeper.lock() {
        Ok(tx) => tx.send((cmd, reply_tx)),
        Err(p) => p.into_inner().send((cmd, reply_tx)),
    };
    match sent {
        Ok(()) => reply_rx
            .recv()
            .map_err(|_| io::Error::other("the spawner thread is gone"))?,
        // No spawner thread: spawn from here rather than not at all.
        Err(mpsc::SendError((mut cmd, _))) => cmd.spawn(),
    }
}
