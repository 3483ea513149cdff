//! Opening files of the sandbox root from the host without following what the sandbox planted.
//!
//! Everything in the root is the sandbox's to change: code in it can replace any entry with a
//! symbolic link (to `/etc/shadow`, to a file of the user running the SDK) or a FIFO between
//! two calls of the host. Resolving `root/name` by name on the host would follow such a link
//! with the host's rights. Here each component is opened with `O_NOFOLLOW` relative to the
//! directory opened before it, so nothing is looked up by name twice and a link anywhere on
//! the path fails with `ELOOP`; what is opened last must be a regular file.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, FcntlArg, OFlag, fcntl, open, openat};
use nix::sys::stat::{Mode, SFlag, fstatat};

use crate::error::Error;

/// How to open the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    /// Write, creating the file or truncating it.
    Create,
}

/// Opens `path`, relative to `root`, refusing a symbolic link on the way and anything but a
/// regular file at the end. `path` may not be absolute or hold `..`.
pub(crate) fn open_beneath(root: &Path, path: &str, access: Access) -> Result<File, Error> {
    let parts = components(path)?;
    let Some((last, dirs)) = parts.split_last() else {
        return Err(Error::IsADirectory { path: ".".into() });
    };
    let fail = |errno: Errno| error(path, errno);
    let search = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut dir: OwnedFd = open(root, search, Mode::empty()).map_err(fail)?;
    for part in dirs {
        dir = openat(&dir, *part, search, Mode::empty()).map_err(|errno| {
            // O_DIRECTORY makes a link fail as "not a directory": say what it is.
            let link = errno == Errno::ENOTDIR
                && fstatat(&dir, *part, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok_and(|st| {
                    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK
                });
            fail(if link { Errno::ELOOP } else { errno })
        })?;
    }
    // O_NONBLOCK: opening a FIFO the sandbox planted must fail, not wait for its other end.
    let flags = OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
    let flags = match access {
        Access::Read => flags | OFlag::O_RDONLY,
        Access::Create => flags | OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC,
    };
    let mode = Mode::from_bits_truncate(0o644);
    let fd = openat(&dir, *last, flags, mode).map_err(fail)?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(|source| Error::Io {
        path: path.to_string(),
        source,
    })?;
    if meta.is_dir() {
        return Err(Error::IsADirectory {
            path: path.to_string(),
        });
    }
    if !meta.is_file() {
        return Err(not_a_file(path));
    }
    fcntl(&file, FcntlArg::F_SETFL(OFlag::empty())).map_err(fail)?;
    if access == Access::Create && nix::unistd::geteuid().is_root() {
        // The root of a sandbox started by root belongs to the sandbox's user: so does what
        // the host writes there, which code in the sandbox may then change.
        use std::os::unix::fs::MetadataExt;
        let owner = std::fs::metadata(root).map_err(|source| Error::Io {
            path: root.display().to_string(),
            source,
        })?;
        std::os::unix::fs::fchown(&file, Some(owner.uid()), Some(owner.gid())).map_err(
            |source| Error::Io {
                path: path.to_string(),
                source,
            },
        )?;
    }
    Ok(file)
}

/// The components of a path relative to the root: `.` and empty ones dropped; an absolute
/// path or `..` refused, since only what is below the root can be opened.
fn components(path: &str) -> Result<Vec<&str>, Error> {
    if path.starts_with('/') || path.contains('\0') {
        return Err(Error::InvalidArgument(format!(
            "{path:?}: give a path relative to the sandbox root, without NUL bytes"
        )));
    }
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(Error::InvalidArgument(format!(
            "{path:?}: `..` may not be used to open a file of the sandbox root"
        )));
    }
    Ok(parts)
}

fn not_a_file(path: &str) -> Error {
    Error::InvalidArgument(format!(
        "{path} is not a regular file (a FIFO, socket or device)"
    ))
}

/// The typed error of a failed open: a symbolic link on the way is a refusal.
fn error(path: &str, errno: Errno) -> Error {
    let path = path.to_string();
    match errno {
        Errno::ELOOP | Errno::EACCES | Errno::EPERM => Error::PermissionDenied { path },
        Errno::ENOENT => Error::FileNotFound { path },
        Errno::ENOTDIR => Error::NotADirectory { path },
        Errno::EISDIR => Error::IsADirectory { path },
        // A FIFO without a reader (opened to write) or a socket.
        Errno::ENXIO | Errno::EOPNOTSUPP => not_a_file(&path),
        errno => Error::Io {
            path,
            source: errno.into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::fs::symlink;

    use super::*;

    /// A directory removed on drop, also when the test fails.
    struct Scratch(std::path::PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A scratch root with `dir/file.txt`, a link to a file outside, a link to a directory
    /// outside, a link inside and a FIFO.
    fn scratch() -> (Scratch, std::path::PathBuf) {
        let base = std::env::temp_dir().join(format!("e2b-beneath-{}", uuid::Uuid::new_v4()));
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir_all(root.join("dir")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("dir/file.txt"), "inside").unwrap();
        std::fs::write(outside.join("secret"), "secret").unwrap();
        symlink(outside.join("secret"), root.join("to-file")).unwrap();
        symlink(&outside, root.join("to-dir")).unwrap();
        symlink("dir/file.txt", root.join("in-root")).unwrap();
        nix::unistd::mkfifo(&root.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        (Scratch(base), root)
    }

    #[test]
    fn opens_files_below_the_root_and_refuses_links_and_fifos() {
        let (base, root) = scratch();
        let mut text = String::new();
        open_beneath(&root, "./dir//file.txt", Access::Read)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "inside");
        open_beneath(&root, "dir/new.txt", Access::Create)
            .unwrap()
            .write_all(b"new")
            .unwrap();
        assert_eq!(std::fs::read(root.join("dir/new.txt")).unwrap(), b"new");

        for (path, access) in [
            ("to-file", Access::Read),
            ("to-file", Access::Create),
            ("to-dir/secret", Access::Read),
            ("to-dir/planted", Access::Create),
            ("in-root", Access::Read),
        ] {
            let err = open_beneath(&root, path, access).unwrap_err();
            assert!(
                matches!(err, Error::PermissionDenied { .. }),
                "{path}: {err:?}"
            );
        }
        assert_eq!(
            std::fs::read_to_string(base.0.join("outside/secret")).unwrap(),
            "secret"
        );
        assert!(!base.0.join("outside/planted").exists());
        for access in [Access::Read, Access::Create] {
            let err = open_beneath(&root, "fifo", access).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        }
        let err = open_beneath(&root, "missing/x", Access::Read).unwrap_err();
        assert!(matches!(err, Error::FileNotFound { .. }), "{err:?}");
        for access in [Access::Read, Access::Create] {
            let err = open_beneath(&root, "dir", access).unwrap_err();
            assert!(matches!(err, Error::IsADirectory { .. }), "{err:?}");
        }
        for bad in [
            "/etc/passwd",
            "../outside/secret",
            "dir/../../outside/secret",
        ] {
            let err = open_beneath(&root, bad, Access::Read).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{bad}: {err:?}");
        }
    }
}
