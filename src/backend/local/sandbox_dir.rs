//! The local sandbox's host directory (`$TMPDIR/e2b-local-*`): made with a note of the process
//! that owns it, removed whatever the sandbox left in it, and removed at a later start when
//! its owner was killed before it could (SIGKILL runs no `Drop`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The directories' name prefix (also their memory cgroups').
pub(crate) const PREFIX: &str = "e2b-local-";

/// The file naming the owner: `pid start-time`.
const OWNER: &str = "owner";

/// Makes a new sandbox directory with `subdirs`, after removing those of dead owners. It is
/// the owner's alone (0700): it holds the kernels' connection files and sockets.
pub(crate) fn create(subdirs: &[&str]) -> io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    sweep(&std::env::temp_dir());
    let dir = std::env::temp_dir().join(format!("{PREFIX}{}", uuid::Uuid::new_v4().simple()));
    fs::DirBuilder::new().mode(0o700).create(&dir)?;
    let made = fs::write(
        dir.join(OWNER),
        owner_of(std::process::id()).unwrap_or_default(),
    )
    .and_then(|()| subdirs.iter().try_for_each(|d| fs::create_dir(dir.join(d))));
    match made {
        Ok(()) => Ok(dir),
        Err(e) => {
            let _ = remove(&dir);
            Err(e)
        }
    }
}

/// Removes `dir` and everything in it, after its processes are gone, its root's file system
/// unmounted first where it has one. Directories the sandbox
/// made unreadable (`chmod 000`, which stops even their owner from listing them) are opened up
/// first; links are never followed.
pub(crate) fn remove(dir: &Path) -> io::Result<()> {
    super::disk::unmount(&dir.join("root"));
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            open_up(dir);
            fs::remove_dir_all(dir)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        done => done,
    }
}

/// Gives the owner full rights to every directory below `dir` (not through links).
fn open_up(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(meta) = fs::symlink_metadata(&d) else {
            continue;
        };
        if !meta.is_dir() {
            continue;
        }
        let _ = fs::set_permissions(
            &d,
            fs::Permissions::from_mode(meta.permissions().mode() | 0o700),
        );
        if let Ok(entries) = fs::read_dir(&d) {
            todo.extend(entries.flatten().map(|e| e.path()));
        }
    }
}

/// Removes the sandbox directories under `parent` whose owner is gone.
fn sweep(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        let dir = entry.path();
        // No note (yet, or of an older version): not ours to judge.
        let Ok(note) = fs::read_to_string(dir.join(OWNER)) else {
            continue;
        };
        let pid = note.split_whitespace().next().and_then(|p| p.parse().ok());
        if pid.is_some_and(|pid| owner_of(pid).as_deref() != Some(note.as_str())) {
            match remove(&dir) {
                Ok(()) => log::debug!("removed {}, left by a killed process", dir.display()),
                Err(e) => log::debug!("could not remove {}: {e}", dir.display()),
            }
        }
    }
}

/// `pid start-time` of a running process (its start time tells it from a later process that
/// got the same id), or `None` when there is no such process.
fn owner_of(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22, counted after the command name, which may hold spaces and parentheses.
    let start = stat.rsplit_once(')')?.1.split_whitespace().nth(19)?;
    Some(format!("{pid} {start}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_directory_is_its_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = create(&["runtime"]).unwrap();
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        remove(&dir).unwrap();
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn a_dead_owners_directory_is_swept_and_a_live_ones_kept() {
        let parent = std::env::temp_dir().join(format!("e2b-sweep-test-{}", std::process::id()));
        let live = parent.join(format!("{PREFIX}live"));
        let dead = parent.join(format!("{PREFIX}dead"));
        let unnoted = parent.join(format!("{PREFIX}unnoted"));
        for d in [&live, &dead, &unnoted] {
            fs::create_dir_all(d.join("root")).unwrap();
        }
        fs::write(live.join(OWNER), owner_of(std::process::id()).unwrap()).unwrap();
        // This process's id with another start time: a process that is gone.
        fs::write(dead.join(OWNER), format!("{} 1", std::process::id())).unwrap();
        sweep(&parent);
        assert!(live.exists());
        assert!(!dead.exists());
        assert!(unnoted.exists());
        remove(&parent).unwrap();
    }

    #[test]
    fn an_unreadable_directory_is_removed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("e2b-remove-test-{}", std::process::id()));
        fs::create_dir_all(dir.join("locked/inner")).unwrap();
        fs::write(dir.join("locked/inner/file"), "x").unwrap();
        fs::set_permissions(dir.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
        remove(&dir).unwrap();
        assert!(!dir.exists());
    }
}
