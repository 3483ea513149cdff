//! Sandboxes as integer handles in a registry, so a destroyed or made-up handle is an error
//! code instead of a use-after-free.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use e2b_blocking::Sandbox;

use crate::args::*;
use crate::error::E2bErrorCode::{self, *};
use crate::error::{FfiError, guard};

/// A sandbox handle: an opaque, non-zero id. 0 is never a valid handle.
///
/// Thread safety: a handle may be used from any number of threads at once. Executions on the
/// same sandbox run one after another in its kernel. Handles are never reused: after
/// `e2b_sandbox_destroy()`, every call with the old value returns `E2B_ERR_CLOSED`.
pub type E2bSandbox = u64;

pub(crate) static SANDBOXES: Mutex<BTreeMap<u64, Arc<Sandbox>>> = Mutex::new(BTreeMap::new());
pub(crate) static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

pub(crate) fn sandboxes() -> MutexGuard<'static, BTreeMap<u64, Arc<Sandbox>>> {
    // Nothing panics while holding the lock, but a poisoned map is still consistent.
    SANDBOXES.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn register(sandbox: Sandbox) -> E2bSandbox {
    let handle = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed);
    sandboxes().insert(handle, Arc::new(sandbox));
    handle
}

/// What every constructor does around making its sandbox: `*out` is 0 until the sandbox is
/// registered, then its handle.
///
/// # Safety
/// `out` is NULL or valid for writes; `make` may read the caller's C strings.
pub(crate) unsafe fn create_into(
    out: *mut E2bSandbox,
    make: impl FnOnce() -> Result<Sandbox, FfiError>,
) -> E2bErrorCode {
    guard(|| {
        // SAFETY: forwarded from the caller.
        unsafe { clear_out(out, 0, "out")? };
        let handle = register(make()?);
        // SAFETY: checked non-NULL above.
        unsafe { out.write(handle) };
        Ok(())
    })
}

pub(crate) fn lookup(handle: E2bSandbox) -> Result<Arc<Sandbox>, FfiError> {
    if handle == 0 {
        return Err(FfiError::null("sandbox handle"));
    }
    sandboxes()
        .get(&handle)
        .cloned()
        .ok_or_else(|| not_live(handle))
}

pub(crate) fn not_live(handle: E2bSandbox) -> FfiError {
    FfiError::new(
        E2B_ERR_CLOSED,
        format!("sandbox handle {handle} is not live (destroyed, or never created)"),
    )
}
