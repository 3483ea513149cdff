//! Reading C arguments: strings, optional strings, out-parameters, and what goes back to C.

use std::ffi::{CStr, CString, c_char};

use serde::Serialize;

use crate::error::E2bErrorCode::*;
use crate::error::{E2bErrorCode, FfiError, guard};

/// # Safety
/// `p` is NULL or points to a NUL-terminated string that stays valid for `'a`.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, FfiError> {
    if p.is_null() {
        return Err(FfiError::null(what));
    }
    // SAFETY: non-NULL and NUL-terminated, as the caller promises.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map_err(|e| {
        FfiError::new(
            E2B_ERR_INVALID_UTF8,
            format!("{what} is not valid UTF-8: {e}"),
        )
    })
}

/// Like [`str_arg`], but NULL is allowed and gives `None`.
///
/// # Safety
/// As for [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(
    p: *const c_char,
    what: &str,
) -> Result<Option<&'a str>, FfiError> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded from the caller.
        unsafe { str_arg(p, what) }.map(Some)
    }
}

/// Clears an out-parameter up front, so it holds a defined value whatever happens next.
///
/// # Safety
/// `out` is NULL or valid for writes of `T` and aligned.
pub(crate) unsafe fn clear_out<T>(out: *mut T, empty: T, what: &str) -> Result<(), FfiError> {
    if out.is_null() {
        return Err(FfiError::null(what));
    }
    // SAFETY: non-NULL, writable and aligned, as the caller promises.
    unsafe { out.write(empty) };
    Ok(())
}

/// A string handed to the caller, who frees it with `e2b_string_free`.
pub(crate) fn into_c_string(s: String) -> Result<*mut c_char, FfiError> {
    CString::new(s).map(CString::into_raw).map_err(|_| {
        FfiError::new(
            E2B_ERR_OTHER,
            "a returned string contained a NUL byte and cannot be passed to C",
        )
    })
}

pub(crate) fn to_json_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec())
}

/// [`string_out`] for a result the caller may decline: with `out` NULL, `f` still runs and its
/// string is dropped.
///
/// # Safety
/// `out` is NULL or valid for one write; `f` may read the caller's C strings.
pub(crate) unsafe fn optional_string_out(
    out: *mut *mut c_char,
    what: &str,
    f: impl FnOnce() -> Result<String, FfiError>,
) -> E2bErrorCode {
    if out.is_null() {
        return guard(|| f().map(drop));
    }
    // SAFETY: forwarded from the caller.
    unsafe { string_out(out, what, f) }
}

/// The body of a function whose result is one string for the caller: `*out` is NULL until `f`
/// succeeds, then the string (freed with `e2b_string_free`).
///
/// # Safety
/// `out` is NULL or valid for one write; `f` may read the caller's C strings.
pub(crate) unsafe fn string_out(
    out: *mut *mut c_char,
    what: &str,
    f: impl FnOnce() -> Result<String, FfiError>,
) -> E2bErrorCode {
    // SAFETY: forwarded from the caller.
    unsafe { maybe_string_out(out, what, || f().map(Some)) }
}

/// [`string_out`] for a result that may be nothing (no event in time): `*out` stays NULL then.
///
/// # Safety
/// As for [`string_out`].
pub(crate) unsafe fn maybe_string_out(
    out: *mut *mut c_char,
    what: &str,
    f: impl FnOnce() -> Result<Option<String>, FfiError>,
) -> E2bErrorCode {
    guard(|| {
        // SAFETY: forwarded from the caller.
        unsafe { clear_out(out, std::ptr::null_mut(), what)? };
        if let Some(s) = f()? {
            let s = into_c_string(s)?;
            // SAFETY: checked non-NULL by clear_out.
            unsafe { out.write(s) };
        }
        Ok(())
    })
}
