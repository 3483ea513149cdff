//! A size cap on the isolated sandbox's root: where the SDK runs as root, `/home/user` is an
//! ext4 file system in a sparse image file beside it, mounted over the root directory on the
//! host, so a sandbox that writes without end gets "No space left on device" instead of filling
//! the host's disk. The image takes host disk only as the sandbox writes; making and mounting it
//! costs about 15 milliseconds. An ordinary user may not mount, and where `mkfs.ext4` is
//! missing there is no image either: the root is then a plain directory, and the first sandbox
//! says so in a warning.

use std::fs;
use std::io;
use std::path::Path;
use std::process::{Command, Stdio};

/// The image's file name in the sandbox's host directory.
const IMAGE: &str = "root.img";

/// Mounts a new file system of `size` bytes over `dir/root`. Returns whether it did: where this
/// process may not, the first sandbox says so in a warning. [`unmount`] undoes it, before the
/// directory is removed.
pub(crate) fn mount_root(dir: &Path, size: u64) -> bool {
    match try_mount(dir, size) {
        Ok(()) => true,
        Err(e) => {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                log::warn!(
                    "the local sandbox's root has no size cap ({e}): a sandbox can fill the disk \
                     its directory is on"
                )
            });
            unmount(&dir.join("root"));
            let _ = fs::remove_file(dir.join(IMAGE));
            false
        }
    }
}

fn try_mount(dir: &Path, size: u64) -> io::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        return Err(io::Error::other("only root may mount it"));
    }
    let image = dir.join(IMAGE);
    fs::File::create(&image)?.set_len(size)?;
    // Made on every start, so made cheap (6 ms rather than 19 here): no reserved blocks (the
    // sandbox is the only user); lazy initialisation, so the image stays sparse until written;
    // no journal, as the image never outlives its sandbox (a crash leaves it to the sweep); no
    // room kept for growing the file system, which never grows (zeroing that room was most of
    // the cost).
    run(Command::new(system_tool("mkfs.ext4"))
        .args([
            "-q",
            "-F",
            "-m",
            "0",
            "-O",
            "^has_journal,^resize_inode",
            "-E",
            "lazy_itable_init=1,nodiscard",
        ])
        .arg(&image))?;
    let root = dir.join("root");
    run(Command::new(system_tool("mount"))
        .args(["-o", "loop,nosuid,nodev"])
        .arg(&image)
        .arg(&root))?;
    // E2B's home has no lost+found; a listing of the root should not either.
    fs::remove_dir(root.join("lost+found"))
}

/// Unmounts what is mounted at `root`, if anything (a killed SDK's sandbox, found by the
/// sweep), detaching its loop device.
pub(crate) fn unmount(root: &Path) {
    if !is_mount_point(root) {
        return;
    }
    // Lazy: a process of a dying sandbox may still hold a file open for a moment.
    if let Err(e) = run(Command::new(system_tool("umount")).arg("-l").arg(root)) {
        log::warn!("could not unmount {}: {e}", root.display());
    }
}

fn is_mount_point(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::symlink_metadata(path), path.parent().map(fs::metadata)) {
        (Ok(own), Some(Ok(parent))) => own.is_dir() && own.dev() != parent.dev(),
        _ => false,
    }
}

/// `name` from PATH, else from the system directories a user's PATH may lack.
fn system_tool(name: &str) -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(Into::into))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| name.into())
}

/// Runs `cmd`; its error output becomes the error.
fn run(cmd: &mut Command) -> io::Result<()> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
