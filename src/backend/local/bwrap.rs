//! Running the local server inside bubblewrap: the command line, the check that bubblewrap
//! can create namespaces here, resource limits, and a long-lived thread to spawn from.
//!
//! The sandbox's view of the file system: `/usr`, `/etc`, `/opt` and `/sys` read-only (with the
//! usual top-level symlinks), a fresh `/proc`, `/dev` and `/tmp`, the sandbox root writable at
//! `/home/user`, and the Python it runs bound back read-only. Nothing else of the host is
//! there: no home directories, no `/root`, no `/run` (and its sockets), no `/var`, no `/mnt`.
//!
//! When the SDK runs as root, bubblewrap itself runs as the unprivileged host user `nobody`
//! ([`SandboxUser`]): inside its user namespace root maps to host root, which, even without
//! capabilities, owns `/etc/shadow` and every root-owned file, so the sandbox must not be root.

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

/// The directory (under the server's host directory, and under [`STATE`] inside) where the
/// relays of `Sandbox::get_host` put their Unix sockets.
pub(crate) const FORWARDS: &str = "fwd";

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
    let user = SandboxUser::for_this_process();
    if !cfg!(target_os = "linux") {
        return Err(("bubblewrap runs on Linux only".into(), None));
    }
    let exe = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("bwrap"))
        .find(|p| p.is_file())
        .ok_or_else(|| ("no `bwrap` on PATH".to_string(), None))?;
    let mut cmd = Command::new(&exe);
    if let Some(user) = user {
        // Unprivileged user namespaces may be forbidden to ordinary users while root may
        // create them: ask as the user the sandbox will run as.
        std::os::unix::process::CommandExt::uid(&mut cmd, user.uid);
        std::os::unix::process::CommandExt::gid(&mut cmd, user.gid);
    }
    let out = cmd
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
        let whom = match user {
            Some(u) => format!(
                " as uid {} (the SDK runs as root; the sandbox does not)",
                u.uid
            ),
            None => String::new(),
        };
        return Err((
            format!("{} cannot create namespaces here{whom}", exe.display()),
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
    /// Who bubblewrap runs as, when not as the calling user (who is root).
    pub(crate) user: Option<SandboxUser>,
}

impl Plan<'_> {
    /// `bwrap [options] --` followed by nothing: the caller appends the command to run inside.
    pub(crate) fn command(&self) -> Command {
        let mut cmd = Command::new(self.bwrap);
        if let Some(user) = self.user {
            // std drops root's supplementary groups too before it changes user.
            std::os::unix::process::CommandExt::gid(&mut cmd, user.gid);
            std::os::unix::process::CommandExt::uid(&mut cmd, user.uid);
        }
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
        for name in ["config", "data", "ipython", "runtime", "sock", FORWARDS] {
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

/// The unprivileged host user an isolated sandbox runs as when the SDK runs as root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SandboxUser {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

impl SandboxUser {
    /// `nobody` (and its primary group) when this process is root, else `None`: an ordinary
    /// user's sandbox runs as that user, who is unprivileged already.
    pub(crate) fn for_this_process() -> Option<SandboxUser> {
        if !nix::unistd::geteuid().is_root() {
            return None;
        }
        let nobody = nix::unistd::User::from_name("nobody").ok().flatten();
        Some(match nobody {
            Some(u) => SandboxUser {
                uid: u.uid.as_raw(),
                gid: u.gid.as_raw(),
            },
            // The kernel's overflow ids, which name no real user.
            None => SandboxUser {
                uid: 65534,
                gid: 65534,
            },
        })
    }

    /// Whether this user can reach `path`, by the mode bits: every directory on the way and
    /// `path` itself searchable (a file: readable). Bubblewrap, running as this user, must open
    /// what it binds.
    pub(crate) fn can_reach(self, path: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        path.ancestors().all(|p| match fs::metadata(p) {
            Ok(m) => {
                let shift = if m.uid() == self.uid {
                    6
                } else if m.gid() == self.gid {
                    3
                } else {
                    0
                };
                let want = if m.is_dir() { 0o1 } else { 0o4 };
                (m.mode() >> shift) & want != 0
            }
            Err(_) => false,
        })
    }

    /// Hands the sandbox's host directory (`dir` and everything in it) to this user, so the
    /// server it runs can write its root, sockets and runtime files and read its config.
    pub(crate) fn own(self, dir: &Path) -> io::Result<()> {
        std::os::unix::fs::chown(dir, Some(self.uid), Some(self.gid))?;
        if fs::symlink_metadata(dir)?.is_dir() {
            for entry in fs::read_dir(dir)? {
                self.own(&entry?.path())?;
            }
        }
        Ok(())
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
