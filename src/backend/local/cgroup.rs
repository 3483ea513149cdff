//! A memory cgroup for one isolated sandbox: a cap on everything it holds in memory at once,
//! processes and the tmpfs it writes alike (RLIMIT_AS holds per process and misses tmpfs).
//!
//! The SDK makes a child of its own cgroup (cgroup v2 `memory.max`, or v1's
//! `memory.limit_in_bytes` where the memory controller is still on v1), and bubblewrap's process
//! joins it between fork and exec, so nothing the sandbox starts is ever outside it. Where
//! the SDK may not make one (cgroup v2 without delegation: an ordinary user outside a systemd
//! scope, a container without a writable cgroup tree) the sandbox runs without the cap, and
//! the first sandbox says so in a warning.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::sandbox_dir::PREFIX;

/// A cgroup that caps a sandbox's memory; removed on drop once its processes are gone.
#[derive(Debug)]
pub(crate) struct MemoryCgroup {
    dir: PathBuf,
    procs: OwnedFd,
}

impl MemoryCgroup {
    /// Makes a cgroup named as the sandbox's directory, `name` (which starts with `e2b-local-`),
    /// capped at `limit` bytes, or `None` where the host does not allow it.
    pub(crate) fn create(name: &str, limit: u64) -> Option<MemoryCgroup> {
        let mut why = Vec::new();
        for (version, parent) in [("v2", parent_v2()), ("v1", parent_v1())] {
            let made = parent.and_then(|parent| {
                sweep(&parent);
                Self::make(&parent.join(name), version, limit)
            });
            match made {
                Ok(cgroup) => {
                    log::debug!(
                        "sandbox memory capped at {limit} bytes by cgroup {version} {}",
                        cgroup.dir.display()
                    );
                    return Some(cgroup);
                }
                Err(e) => why.push(format!("{version}: {e}")),
            }
        }
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            log::warn!(
                "no memory cgroup for local sandboxes ({}): their total memory is not capped, \
                 only each process's address space",
                why.join("; ")
            )
        });
        None
    }

    fn make(dir: &Path, version: &str, limit: u64) -> io::Result<MemoryCgroup> {
        fs::create_dir(dir)?;
        let limited = if version == "v2" {
            fs::write(dir.join("memory.max"), limit.to_string()).map(|()| {
                // Swap would let the sandbox hold more than the cap; not every host has it.
                let _ = fs::write(dir.join("memory.swap.max"), "0");
            })
        } else {
            fs::write(dir.join("memory.limit_in_bytes"), limit.to_string()).map(|()| {
                let _ = fs::write(dir.join("memory.memsw.limit_in_bytes"), limit.to_string());
            })
        };
        let procs = limited.and_then(|()| {
            fs::OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.procs"))
        });
        match procs {
            Ok(file) => Ok(MemoryCgroup {
                dir: dir.to_path_buf(),
                procs: file.into(),
            }),
            Err(e) => {
                let _ = fs::remove_dir(dir);
                Err(e)
            }
        }
    }

    /// Makes `cmd`'s process join this cgroup just before it execs.
    pub(crate) fn join_before_exec(&self, cmd: &mut Command) {
        super::child::join_cgroup(cmd, self.procs.as_raw_fd());
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        // The sandbox was killed before this; its last processes may take a moment to exit.
        let until = Instant::now() + Duration::from_secs(2);
        loop {
            match fs::remove_dir(&self.dir) {
                Ok(()) => return,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return,
                Err(e) if Instant::now() >= until => {
                    log::warn!("could not remove cgroup {}: {e}", self.dir.display());
                    return;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

/// Removes the cgroups earlier processes left (killed before they could): those whose
/// sandbox directory (of the same name, made before its cgroup and removed before it) is gone.
/// A cgroup still in use refuses to go.
fn sweep(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    let sandboxes = std::env::temp_dir();
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(PREFIX) && !sandboxes.join(&name).exists() {
            let _ = fs::remove_dir(entry.path());
        }
    }
}

/// This process's cgroup v2 directory, if the memory controller is enabled for its children
/// (or can be: only where this process's cgroup holds no process, the root included).
fn parent_v2() -> io::Result<PathBuf> {
    let (mount, root) = mount_of(|fstype, _| fstype == "cgroup2")?;
    let own = own_cgroup(|controllers| controllers.is_empty())?;
    let dir = join_cgroup(&mount, &root, &own);
    let has = |file: &str| {
        fs::read_to_string(dir.join(file))
            .map(|s| s.split_whitespace().any(|c| c == "memory"))
            .unwrap_or(false)
    };
    if !has("cgroup.controllers") {
        return Err(io::Error::other("no memory controller on cgroup v2"));
    }
    if !has("cgroup.subtree_control") {
        fs::write(dir.join("cgroup.subtree_control"), "+memory")?;
    }
    Ok(dir)
}

/// This process's cgroup v1 memory-controller directory.
fn parent_v1() -> io::Result<PathBuf> {
    let (mount, root) = mount_of(|fstype, options| {
        fstype == "cgroup" && options.split(',').any(|o| o == "memory")
    })?;
    let own = own_cgroup(|controllers| controllers.split(',').any(|c| c == "memory"))?;
    Ok(join_cgroup(&mount, &root, &own))
}

/// Where the cgroup at `own` (as /proc/self/cgroup names it) is, under a mount of the cgroup
/// file system at `mount` that shows the cgroup `root`.
fn join_cgroup(mount: &Path, root: &str, own: &str) -> PathBuf {
    let relative = own
        .strip_prefix(root)
        .unwrap_or(own)
        .trim_start_matches('/');
    mount.join(relative)
}

/// The mount point and mounted root of the first mount whose file-system type and super
/// options `wanted` accepts (/proc/self/mountinfo).
fn mount_of(wanted: impl Fn(&str, &str) -> bool) -> io::Result<(PathBuf, String)> {
    let info = fs::read_to_string("/proc/self/mountinfo")?;
    for line in info.lines() {
        // `id parent major:minor root mountpoint options [optional...] - fstype source super`
        let Some((head, tail)) = line.split_once(" - ") else {
            continue;
        };
        let head: Vec<&str> = head.split(' ').collect();
        let tail: Vec<&str> = tail.split(' ').collect();
        if let ([_, _, _, root, mountpoint, ..], [fstype, _, options, ..]) =
            (head.as_slice(), tail.as_slice())
            && wanted(fstype, options)
        {
            return Ok((PathBuf::from(mountpoint), (*root).to_string()));
        }
    }
    Err(io::Error::other("not mounted"))
}

/// This process's cgroup path from the /proc/self/cgroup line whose controllers field
/// `wanted` accepts.
fn own_cgroup(wanted: impl Fn(&str) -> bool) -> io::Result<String> {
    let text = fs::read_to_string("/proc/self/cgroup")?;
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            Some((parts.next()?, parts.next()?, parts.next()?))
        })
        .find(|(_, controllers, _)| wanted(controllers))
        .map(|(_, _, path)| path.to_string())
        .ok_or_else(|| io::Error::other("this process is in no such cgroup"))
}
