//! The local sandbox's seccomp filter: system calls that code in a sandbox has no business
//! making and that widen what a kernel bug exposes, refused with `EPERM`, in the spirit of
//! Docker's default profile. bubblewrap installs it (`--seccomp FD`) on the server and
//! everything the server starts.
//!
//! Refused: the kernel keyring (`keyctl`, `add_key`, `request_key`), io_uring set-up, eBPF,
//! perf events, `userfaultfd`, mounting and the new mount API, `pivot_root`, `setns`, loading
//! kernels and modules, `reboot`, swap, process accounting, file handles
//! (`open_by_handle_at`), the clock, quotas, and the legacy x86 port and syscall interfaces.
//! Nested user namespaces are refused by bubblewrap's `--disable-userns`, not here.
//!
//! Limits: the filter is for the machine's own architecture (x86-64 or AArch64); another ABI's
//! calls (32-bit x86) kill the process. On other architectures the sandbox runs without one,
//! with a warning. x32 system calls are not filtered (most kernels refuse them anyway).

use crate::error::Error;

/// The filter as bubblewrap reads it (an array of `struct sock_filter`), or `None` where this
/// architecture has none.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
pub(crate) fn filter() -> Result<Option<Vec<u8>>, Error> {
    use seccompiler::{BpfProgram, SeccompAction, SeccompFilter};
    let rules = DENIED.iter().map(|&nr| (nr, Vec::new())).collect();
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| Error::setup("no seccomp filter for this architecture", e))?;
    let program: BpfProgram = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .and_then(BpfProgram::try_from)
    .map_err(|e| Error::setup("cannot compile the sandbox's seccomp filter", e))?;
    let mut bytes = Vec::with_capacity(program.len() * 8);
    for insn in &program {
        bytes.extend_from_slice(&insn.code.to_ne_bytes());
        bytes.push(insn.jt);
        bytes.push(insn.jf);
        bytes.extend_from_slice(&insn.k.to_ne_bytes());
    }
    Ok(Some(bytes))
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
pub(crate) fn filter() -> Result<Option<Vec<u8>>, Error> {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        log::warn!(
            "no seccomp filter for {}: the local sandbox runs without one",
            std::env::consts::ARCH
        )
    });
    Ok(None)
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
const DENIED: &[i64] = &[
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_mount_setattr,
    libc::SYS_setns,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_quotactl,
    libc::SYS_lookup_dcookie,
    libc::SYS_syslog,
    libc::SYS_vhangup,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_uselib,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ustat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_sysfs,
    #[cfg(target_arch = "x86_64")]
    libc::SYS__sysctl,
];
