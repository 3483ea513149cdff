//! Sandboxes, watches and terminals as integer handles in tables, so a destroyed or made-up
//! handle is an error code instead of a use-after-free.

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

/// Live objects of one kind by handle. Handles start at 1 and are never reused; a call holds
/// its own `Arc`, so destroying a handle while another thread uses it is safe.
pub(crate) struct Handles<T> {
    kind: &'static str,
    live: Mutex<BTreeMap<u64, Arc<T>>>,
    next: AtomicU64,
}

impl<T> Handles<T> {
    pub(crate) const fn new(kind: &'static str) -> Handles<T> {
        Handles {
            kind,
            live: Mutex::new(BTreeMap::new()),
            next: AtomicU64::new(1),
        }
    }

    fn live(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<T>>> {
        // Nothing panics while holding the lock, but a poisoned map is still consistent.
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Puts `value` in the table and returns its new handle.
    pub(crate) fn insert(&self, value: T) -> u64 {
        let handle = self.next.fetch_add(1, Ordering::Relaxed);
        self.live().insert(handle, Arc::new(value));
        handle
    }

    /// The body of a constructor: `*out` is 0 until `make`'s object is in the table, then its
    /// handle.
    ///
    /// # Safety
    /// `out` is NULL or valid for one write; `make` may read the caller's C strings.
    pub(crate) unsafe fn insert_into(
        &self,
        out: *mut u64,
        what: &str,
        make: impl FnOnce() -> Result<T, FfiError>,
    ) -> E2bErrorCode {
        guard(|| {
            // SAFETY: forwarded from the caller.
            unsafe { clear_out(out, 0, what)? };
            let handle = self.insert(make()?);
            // SAFETY: checked non-NULL by clear_out.
            unsafe { out.write(handle) };
            Ok(())
        })
    }

    /// The object of `handle`; `E2B_ERR_NULL_ARG` for 0, `E2B_ERR_CLOSED` for one that is
    /// not live.
    pub(crate) fn get(&self, handle: u64) -> Result<Arc<T>, FfiError> {
        if handle == 0 {
            return Err(FfiError::null(&format!("{} handle", self.kind)));
        }
        self.live()
            .get(&handle)
            .cloned()
            .ok_or_else(|| self.not_live(handle))
    }

    /// Frees `handle`; the object goes when the last call using it returns.
    pub(crate) fn remove(&self, handle: u64) -> Result<Arc<T>, FfiError> {
        self.live()
            .remove(&handle)
            .ok_or_else(|| self.not_live(handle))
    }

    fn not_live(&self, handle: u64) -> FfiError {
        FfiError::new(
            E2B_ERR_CLOSED,
            format!(
                "{} handle {handle} is not live (destroyed, or never created)",
                self.kind
            ),
        )
    }
}

pub(crate) static SANDBOXES: Handles<Sandbox> = Handles::new("sandbox");

pub(crate) fn lookup(handle: E2bSandbox) -> Result<Arc<Sandbox>, FfiError> {
    SANDBOXES.get(handle)
}
