//! The version, error names and the per-thread last error.

use std::ffi::{CString, c_char};

use crate::error::E2bErrorCode::{self, *};
use crate::error::guard_infallible;

/// The library's version, e.g. `"0.1.0"`. A static string: do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn e2b_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The name of an error code, e.g. `"E2B_ERR_TIMEOUT"`, or `"E2B_ERR_OTHER"` for a number this
/// version does not know. A static string: do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn e2b_error_code_name(code: i32) -> *const c_char {
    let known = E2bErrorCode::ALL.into_iter().find(|c| *c as i32 == code);
    known.unwrap_or(E2B_ERR_OTHER).name().as_ptr().cast()
}

/// The code of the most recent fallible `e2b_*` call on this thread: `E2B_OK` after a success.
///
/// Every function that returns an `e2b_error_code_t` records its outcome for its thread; the
/// `e2b_last_error_*` functions, `e2b_version`, `e2b_error_code_name`, `e2b_string_free` and
/// `e2b_bytes_free` do not.
#[unsafe(no_mangle)]
pub extern "C" fn e2b_last_error_code() -> E2bErrorCode {
    guard_infallible(E2B_OK, crate::error::last_code)
}

/// The message of the most recent fallible `e2b_*` call on this thread (UTF-8, never NULL;
/// `""` after a success).
///
/// Owned by the library: do not free it. It stays valid until the next call on this thread
/// that returns an `e2b_error_code_t`; copy it (or use `e2b_last_error_message_copy`) to keep
/// it longer.
#[unsafe(no_mangle)]
pub extern "C" fn e2b_last_error_message() -> *const c_char {
    guard_infallible(c"".as_ptr(), crate::error::last_message_ptr)
}

/// Copies the last error message of this thread into `buf`, like `snprintf`: at most
/// `buf_len - 1` bytes and a terminating NUL (nothing when `buf_len` is 0; `buf` may then be
/// NULL). Returns the full message length without the NUL, so a return value `>= buf_len`
/// means the copy was truncated.
///
/// # Safety
/// `buf` must be valid for writes of `buf_len` bytes, or `buf_len` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_last_error_message_copy(buf: *mut c_char, buf_len: usize) -> usize {
    let copy = move |msg: &[u8]| {
        if !buf.is_null() && buf_len > 0 {
            let n = msg.len().min(buf_len - 1);
            // SAFETY: `buf` holds `buf_len > n` writable bytes, as the caller promises, and
            // cannot overlap the library's own message.
            unsafe {
                std::ptr::copy_nonoverlapping(msg.as_ptr(), buf.cast::<u8>(), n);
                buf.add(n).write(0);
            }
        }
        msg.len()
    };
    guard_infallible(0, move || {
        crate::error::with_last_message(copy).unwrap_or(0)
    })
}

/// Frees a string returned by this library (execution JSON, ids, URLs). NULL is ignored.
///
/// # Safety
/// `s` must be NULL or a string this library returned that has not been freed yet. From any
/// thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_string_free(s: *mut c_char) {
    if s.is_null() {
        return;
    }
    guard_infallible((), move || {
        // SAFETY: `s` came from `CString::into_raw` in `into_c_string` and is freed once, as
        // the caller promises.
        drop(unsafe { CString::from_raw(s) });
    })
}
