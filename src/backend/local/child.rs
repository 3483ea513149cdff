//! What a process the local sandbox starts is given between fork and exec: the descriptors it
//! inherits, the cgroup it joins, the user it becomes. The one module of the crate with
//! `unsafe` code: `CommandExt::pre_exec` is unsafe, and its closures make raw syscalls.
//!
//! It inherits standard input, output and error, the descriptors it is handed on purpose, and
//! nothing else. A descriptor the embedder holds without `O_CLOEXEC` (a shell's `exec 7</`,
//! a C program calling the C ABI, a parent's `pass_fds`) would otherwise pass through
//! bubblewrap to the server, where code in the sandbox opens `/proc/<server pid>/fd/7` and holds the host's `/`,
//! or copies a host socket out with `pidfd_getfd`. The embedder's descriptors are not ours to
//! change, so the child marks them close-on-exec between fork and exec.

#![allow(unsafe_code)]

use std::fs::File;
use std::io::{self, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes `cmd`'s process inherit only descriptors 0-2 and `keep` (which the parent opened with
/// `O_CLOEXEC`, so that no other child started meanwhile inherits them).
pub(crate) fn only_stdio_and(cmd: &mut Command, keep: &[RawFd]) {
    let keep = keep.to_vec();
    // SAFETY: the closure runs between fork and exec, where only async-signal-safe calls are
    // allowed: it makes raw syscalls only and allocates nothing (`keep` was built before).
    unsafe {
        cmd.pre_exec(move || {
            cloexec_from(3)?;
            for &fd in &keep {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Marks every descriptor from `first` on close-on-exec. Marking rather than closing keeps the
/// pipe std uses to report a failed exec working.
fn cloexec_from(first: u32) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: a raw syscall with integer arguments.
        let done = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                first,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            )
        };
        if done == 0 {
            return Ok(());
        }
        // Older than Linux 5.11: mark them one by one below.
    }
    // SAFETY: getrlimit writes into the struct it is given.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let last = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_max.min(1 << 20)
    } else {
        1 << 16
    };
    for fd in u64::from(first)..last {
        let Ok(fd) = RawFd::try_from(fd) else { break };
        // SAFETY: fcntl on a number that may not be open fails with EBADF, which is fine.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
    Ok(())
}

/// An anonymous in-memory file holding `data`, positioned at its start, close-on-exec: the way
/// to hand bubblewrap what must not be on its command line (`--args FD`) or is binary
/// (`--seccomp FD`). Nothing on disk, nothing another user can list.
#[cfg(target_os = "linux")]
pub(crate) fn memory_file(name: &std::ffi::CStr, data: &[u8]) -> io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated; a non-negative result is a new descriptor we own.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nothing else.
    let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    file.write_all(data)?;
    file.rewind()?;
    Ok(file.into())
}

/// Bubblewrap runs on Linux only, and so does what it reads.
#[cfg(not(target_os = "linux"))]
pub(crate) fn memory_file(_name: &std::ffi::CStr, _data: &[u8]) -> io::Result<OwnedFd> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// The raw numbers of `fds`, for [`only_stdio_and`] and the command line that names them.
pub(crate) fn raw(fds: &[OwnedFd]) -> Vec<RawFd> {
    fds.iter().map(AsRawFd::as_raw_fd).collect()
}

/// Makes `cmd`'s process join the cgroup whose `cgroup.procs` is open as `procs` just before it
/// execs (writing `0` moves the writer), before anything it starts could escape the cgroup.
pub(crate) fn join_cgroup(cmd: &mut Command, procs: RawFd) {
    // SAFETY: between fork and exec: one write(2) of a static buffer.
    unsafe {
        cmd.pre_exec(move || {
            if libc::write(procs, b"0".as_ptr().cast(), 1) != 1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Makes `cmd`'s process the user `uid`/`gid`, with no supplementary groups, just before it
/// execs: after the preparations registered before it that need the caller's privileges (a
/// cgroup only root may join).
pub(crate) fn become_user(cmd: &mut Command, uid: u32, gid: u32) {
    // SAFETY: between fork and exec: raw syscalls only, nothing allocated.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
