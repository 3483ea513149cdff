//! `e2b_sandbox_get_host()` and `e2b_host_release()`: the address of a port inside a sandbox,
//! and the forward that keeps it working for an isolated local sandbox.

use std::collections::BTreeMap;
use std::ffi::c_char;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use e2b_blocking::Host;

use crate::args::{clear_out, into_c_string};
use crate::error::{guard, guard_infallible};
use crate::registry::lookup;
use crate::{E2bErrorCode, E2bSandbox};

/// A host handle from `e2b_sandbox_get_host()`: an opaque, non-zero id that keeps the address
/// working (for an isolated local sandbox, a forward into the sandbox) until
/// `e2b_host_release()`. 0 is never a valid handle.
pub type E2bHost = u64;

static HOSTS: Mutex<BTreeMap<u64, Host>> = Mutex::new(BTreeMap::new());
static NEXT_HOST: AtomicU64 = AtomicU64::new(1);

fn hosts() -> MutexGuard<'static, BTreeMap<u64, Host>> {
    // Nothing panics while holding the lock, but a poisoned map is still consistent.
    HOSTS.lock().unwrap_or_else(|p| p.into_inner())
}

/// The address of `port` inside the sandbox, as seen from this machine (E2B's `getHost`), in
/// `*out_addr`: `{port}-{sandbox_id}.{domain}` for E2B, the server's host with `port` for an
/// existing Jupyter server (the port must be reachable there), `127.0.0.1:{port}` for a local
/// sandbox without isolation or with internet access, and for an isolated local sandbox a new
/// `127.0.0.1` port the library forwards into the sandbox (through `socat`, which must be
/// installed). The caller frees `*out_addr` with `e2b_string_free()`.
///
/// `*out_host` receives a handle that keeps the address working until `e2b_host_release()`
/// (or until the sandbox is destroyed); after the release, connections to a forwarded address
/// are refused. Release it for every backend. On failure `*out_addr` is NULL and `*out_host`
/// is 0.
///
/// # Safety
/// `out_addr` and `out_host` are valid for one write each.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_sandbox_get_host(
    sandbox: E2bSandbox,
    port: u16,
    out_addr: *mut *mut c_char,
    out_host: *mut E2bHost,
) -> E2bErrorCode {
    guard(|| {
        // SAFETY: forwarded from the caller.
        unsafe { clear_out(out_host, 0, "out_host")? };
        // SAFETY: forwarded from the caller.
        unsafe { clear_out(out_addr, std::ptr::null_mut(), "out_addr")? };
        let host = lookup(sandbox)?.get_host(port)?;
        let addr = into_c_string(host.to_string())?;
        let handle = NEXT_HOST.fetch_add(1, Ordering::Relaxed);
        hosts().insert(handle, host);
        // SAFETY: both checked non-NULL above.
        unsafe {
            out_addr.write(addr);
            out_host.write(handle);
        }
        Ok(())
    })
}

/// Releases a host handle from `e2b_sandbox_get_host()`, stopping its forward if it has one.
/// 0 and handles already released are ignored.
#[unsafe(no_mangle)]
pub extern "C" fn e2b_host_release(host: E2bHost) {
    if host == 0 {
        return;
    }
    guard_infallible((), move || {
        // Removed under the lock, dropped (which joins the forward's threads) outside it.
        let released = hosts().remove(&host);
        drop(released);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_arguments_are_codes_not_crashes() {
        let mut addr: *mut c_char = std::ptr::null_mut();
        let mut host: E2bHost = 7;
        // SAFETY: valid out-pointers; the sandbox handle is checked by the library.
        let code = unsafe { e2b_sandbox_get_host(0, 80, &mut addr, &mut host) };
        assert_eq!(code, E2bErrorCode::E2B_ERR_NULL_ARG);
        assert!(addr.is_null());
        assert_eq!(host, 0);
        // SAFETY: a NULL out-pointer is reported, never written.
        let code = unsafe { e2b_sandbox_get_host(12345, 80, std::ptr::null_mut(), &mut host) };
        assert_eq!(code, E2bErrorCode::E2B_ERR_NULL_ARG);
        e2b_host_release(0);
        e2b_host_release(987_654);
    }
}
