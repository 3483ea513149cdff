//! Running the local server inside bubblewrap: the command line, the check that bubblewrap
//! can create namespaces here, resource limits, and a long-lived thread to spawn from.
//!
//! The sandbox's view of the file system: `/usr`, `/etc`, `/opt` and `/sys` read-only (with the
//! usual top-level symlinks), a fresh `/proc` and `/dev`, sized tmpfs at `/tmp` and `/dev/shm`,
//! the sandbox root writable at `/home/user`, the Python it runs bound back read-only, and `/`
//! itself read-only. Nothing else of the host is there: no home directories, no `/root`, no
//! `/run` (and its sockets), no `/var`, no `/mnt`. The environment comes through a descriptor
//! (`--args`), the seccomp filter likewise (`--seccomp`), and nothing else the SDK's process
//! holds is inherited (see `child.rs`).
//!
//! When the SDK runs as root, bubblewrap itself runs as the unprivileged host user `nobody`
//! ([`SandboxUser`]): inside its user namespace root maps to host root, which, even without
//! capabilities, owns `/etc/shadow` and every root-owned file, so the sandbox must not be root.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

use crate::backend::local::cgroup::MemoryCgroup;
use crate::backend::local::{ResourceLimits, child, seccomp};
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
    pub(crate) limits: &'a ResourceLimits,
    /// The memory cgroup the sandbox joins before bubblewrap starts, where the host has one.
    pub(crate) cgroup: Option<&'a MemoryCgroup>,
}

/// A bubblewrap command ready for its payload, with the descriptors it reads its environment
/// and seccomp filter from, which must stay open until it is spawned.
pub(crate) struct Prepared {
    pub(crate) cmd: Command,
    _fds: Vec<OwnedFd>,
}

impl Plan<'_> {
    /// `bwrap [options] --` followed by nothing: the caller appends the command to run inside.
    pub(crate) fn command(&self) -> Result<Prepared, Error> {
        let features = features(self.bwrap);
        let mut cmd = Command::new(self.bwrap);
        cmd.args([
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
        ]);
        if features.disable_userns {
            // Code inside may not make user namespaces of its own, whose full capabilities
            // open most of the kernel's attack surface (mounts, netfilter, ...).
            cmd.arg("--disable-userns");
        }
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
        cmd.args(["--proc", "/proc", "--dev", "/dev"]);
        // tmpfs is memory outside every process's RLIMIT_AS: each one gets a size.
        for (path, size) in [
            ("/tmp", self.limits.tmp_size),
            ("/dev/shm", self.limits.shm_size),
        ] {
            if let (Some(size), true) = (size, features.tmpfs_size) {
                cmd.arg("--size").arg(size.to_string());
            }
            cmd.args(["--tmpfs", path]);
        }
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
        cmd.arg("--bind").arg(self.dir.join("root")).arg(HOME);
        // bubblewrap's own root is a tmpfs of half the host's RAM: writable only where the
        // README says (the root, /tmp, /dev/shm and the server's directories, all mounted
        // above, which keep their own flags).
        cmd.args(["--remount-ro", "/", "--chdir", HOME, "--clearenv"]);

        let mut fds = Vec::new();
        // The environment's values may be secrets: read from a descriptor, not the command
        // line, which every local user sees with `ps`.
        let mut args = Vec::new();
        for (k, v) in self.env {
            for part in ["--setenv", k, v] {
                args.extend_from_slice(part.as_bytes());
                args.push(0);
            }
        }
        let env_fd = child::memory_file(c"e2b-sandbox-env", &args)
            .map_err(|e| Error::setup("cannot pass the sandbox's environment", e))?;
        cmd.arg("--args").arg(env_fd.as_raw_fd().to_string());
        fds.push(env_fd);
        if let Some(filter) = seccomp::filter()? {
            let fd = child::memory_file(c"e2b-sandbox-seccomp", &filter)
                .map_err(|e| Error::setup("cannot pass the sandbox's seccomp filter", e))?;
            cmd.arg("--seccomp").arg(fd.as_raw_fd().to_string());
            fds.push(fd);
        }
        cmd.arg("--");
        cmd.env_clear();
        child::only_stdio_and(&mut cmd, &child::raw(&fds));
        if let Some(cgroup) = self.cgroup {
            cgroup.join_before_exec(&mut cmd);
        }
        if let Some(user) = self.user {
            // After the cgroup is joined, which the new user may not be allowed to do.
            user.become_before_exec(&mut cmd);
        }
        Ok(Prepared { cmd, _fds: fds })
    }
}

/// What this bubblewrap can do beyond the basics every supported version has.
#[derive(Debug, Clone, Copy)]
struct Features {
    /// `--disable-userns` (0.8.0).
    disable_userns: bool,
    /// `--size` before `--tmpfs` (0.8.0).
    tmpfs_size: bool,
}

/// Reads [`Features`] from `bwrap --help` once per process; an older bubblewrap runs the
/// sandbox without them, with a warning that names what is missing.
fn features(bwrap: &Path) -> Features {
    static FEATURES: OnceLock<Features> = OnceLock::new();
    *FEATURES.get_or_init(|| {
        let help = Command::new(bwrap)
            .arg("--help")
            .stdin(std::process::Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let found = Features {
            disable_userns: help.contains("--disable-userns"),
            tmpfs_size: help.contains("--size"),
        };
        if !(found.disable_userns && found.tmpfs_size) {
            log::warn!(
                "{} is older than 0.8.0: the sandbox may create user namespaces and its /tmp \
                 and /dev/shm are not size-limited ({found:?})",
                bwrap.display()
            );
        }
        found
    })
}

/// Python code, run first in the server's process, that applies `limits` to the server and
/// everything it starts. RLIMIT_NPROC counts the tasks of one user in one user namespace, here
/// the sandbox's own; it is set inside so that the host user's other processes do not count.
pub(crate) fn rlimit_code(limits: &ResourceLimits) -> String {
    let mut out = String::from("import resource as _resource\n");
    if let Some(n) = limits.max_processes {
        out.push_str(&format!(
            "_resource.setrlimit(_resource.RLIMIT_NPROC, ({n}, {n}))\n"
        ));
    }
    if let Some(n) = limits.max_open_files {
        out.push_str(&format!(
            "_resource.setrlimit(_resource.RLIMIT_NOFILE, ({n}, {n}))\n"
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

    /// Makes `cmd`'s process this user (no supplementary groups) just before it execs, after
    /// the other preparations that need the caller's privileges.
    pub(crate) fn become_before_exec(self, cmd: &mut Command) {
        child::become_user(cmd, self.uid, self.gid);
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

/// Spawns the command from a thread that lives as long as the process. `--die-with-parent` ends
/// the sandbox when the thread that spawned bubblewrap exits (PR_SET_PDEATHSIG is per thread),
/// and a sandbox must outlive the thread that created it. The command's descriptors stay open
/// here until it has started.
pub(crate) fn spawn(prepared: Prepared) -> io::Result<Child> {
    let Prepared { cmd, _fds: fds } = prepared;
    let child = spawn_from_keeper(cmd);
    drop(fds);
    child
}

fn spawn_from_keeper(cmd: Command) -> io::Result<Child> {
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
