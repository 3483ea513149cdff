//! Files of the sandbox: read, write, list, exists, remove, rename, make_dir.

use std::ffi::{c_char, c_int};

use serde::Serialize;

use crate::args::*;
use crate::error::E2bErrorCode::{self};
use crate::error::{FfiError, guard, guard_infallible};
use crate::registry::*;

/// Bytes of the hidden header in front of every buffer `e2b_files_read` hands out: the
/// buffer's length, so `e2b_bytes_free` frees exactly what was allocated.
pub(crate) const BYTES_HEADER: usize = std::mem::size_of::<usize>();

/// A buffer for the caller: its bytes and a NUL, behind a header holding its length. Returns
/// the pointer to the first byte and the length.
pub(crate) fn into_c_bytes(mut buf: Vec<u8>) -> (*mut u8, usize) {
    let len = buf.len() - BYTES_HEADER;
    buf[..BYTES_HEADER].copy_from_slice(&len.to_ne_bytes());
    buf.push(0);
    let block = Box::into_raw(buf.into_boxed_slice()).cast::<u8>();
    // SAFETY: the block holds BYTES_HEADER + len + 1 bytes.
    (unsafe { block.add(BYTES_HEADER) }, len)
}

/// Reads a whole file of the sandbox into memory.
///
/// `path` means what it means to code in the sandbox, as on E2B: relative to the sandbox root
/// (`"data/x.csv"`), or absolute (`"/home/user/data/x.csv"`, `"/tmp/x"`); `.` and `..` are
/// resolved lexically. In an isolated local sandbox no path reaches the host's files.
///
/// On `E2B_OK`, `*out_data` points to `*out_len` bytes followed by one NUL byte (not counted in
/// `*out_len`), so a text file can be used as a C string. The buffer is owned by the caller,
/// who frees it with `e2b_bytes_free(*out_data, *out_len)`; an empty file gives a valid
/// buffer of length 0 that still needs freeing. On failure `*out_data` is NULL and `*out_len`
/// is 0. A missing file is `E2B_ERR_FILE_NOT_FOUND`, a directory `E2B_ERR_IS_A_DIRECTORY`.
///
/// From any thread, concurrently with any other call on the same handle.
///
/// # Safety
/// `path` is a NUL-terminated string; `out_data` and `out_len` are each valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_files_read(
    sandbox: E2bSandbox,
    path: *const c_char,
    out_data: *mut *mut u8,
    out_len: *mut usize,
) -> E2bErrorCode {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let path = unsafe {
            clear_out(out_data, std::ptr::null_mut(), "out_data")?;
            clear_out(out_len, 0, "out_len")?;
            str_arg(path, "path")?
        };
        let sbx = lookup(sandbox)?;
        let mut buf = vec![0u8; BYTES_HEADER];
        sbx.files().read_to(path, &mut buf)?;
        let (data, len) = into_c_bytes(buf);
        // SAFETY: both checked non-NULL above.
        unsafe {
            out_data.write(data);
            out_len.write(len);
        }
        Ok(())
    })
}

/// Frees a buffer returned by `e2b_files_read()`. `len` is the length that came with it.
/// NULL is ignored. From any thread.
///
/// # Safety
/// `data` must be NULL or a buffer this library returned that has not been freed yet, and
/// `len` its length as the library gave it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_bytes_free(data: *mut u8, len: usize) {
    if data.is_null() {
        return;
    }
    guard_infallible((), move || {
        // SAFETY: `data` came from `into_c_bytes`, so a header holding the buffer's length
        // lies right before it, in the same allocation.
        let block = unsafe { data.sub(BYTES_HEADER) };
        let mut header = [0u8; BYTES_HEADER];
        // SAFETY: as above; the header is BYTES_HEADER readable bytes.
        unsafe { std::ptr::copy_nonoverlapping(block, header.as_mut_ptr(), BYTES_HEADER) };
        // The library's own record decides how much to free, so a wrong `len` (a caller's
        // bug) cannot free the wrong amount.
        let recorded = usize::from_ne_bytes(header);
        if recorded != len {
            log::warn!("e2b_bytes_free: given length {len}, but the buffer holds {recorded}");
        }
        let total = BYTES_HEADER + recorded + 1;
        // SAFETY: the block is the boxed slice `into_c_bytes` leaked, of exactly `total`
        // bytes, and is freed once, as the caller promises.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(block, total)) });
    })
}

/// Writes a file of the sandbox, replacing it if it exists and creating missing parent
/// directories. `data` holds `len` bytes (any bytes, NULs included); it may be NULL when `len`
/// is 0, which writes an empty file. Paths as for `e2b_files_read()`; a path whose parent is a
/// file is `E2B_ERR_NOT_A_DIRECTORY`.
///
/// From any thread, concurrently with any other call on the same handle; two writes to the
/// same path at once leave one of the two contents.
///
/// # Safety
/// `path` is a NUL-terminated string; `data` is valid for reads of `len` bytes (or `len` is
/// 0), and is only read during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_files_write(
    sandbox: E2bSandbox,
    path: *const c_char,
    data: *const u8,
    len: usize,
) -> E2bErrorCode {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let path = unsafe { str_arg(path, "path")? };
        let bytes: &[u8] = if len == 0 {
            &[]
        } else if data.is_null() {
            return Err(FfiError::null("data"));
        } else {
            // SAFETY: non-NULL and `len` readable bytes, as the caller promises.
            unsafe { std::slice::from_raw_parts(data, len) }
        };
        lookup(sandbox)?.files().write(path, bytes)?;
        Ok(())
    })
}

/// One entry of the `e2b_files_list` JSON.
#[derive(Serialize)]
pub(crate) struct EntryJson<'a> {
    name: &'a str,
    path: &'a str,
    #[serde(rename = "type")]
    kind: e2b_blocking::FileType,
    size: Option<u64>,
    modified: Option<u64>,
}

pub(crate) fn entries_json(entries: &[e2b_blocking::EntryInfo]) -> String {
    let entries: Vec<EntryJson<'_>> = entries
        .iter()
        .map(|e| EntryJson {
            name: &e.name,
            path: &e.path,
            kind: e.kind,
            size: e.size,
            modified: e.modified.and_then(|t| {
                let ms = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
                u64::try_from(ms).ok()
            }),
        })
        .collect();
    serde_json::to_string(&entries).unwrap_or_else(|_| "[]".into())
}

/// Lists a directory of the sandbox (`""` or `"."` for the root), sorted by name.
///
/// On `E2B_OK`, `*out_json` is a JSON array with one object per entry:
/// `{"name": "x.csv", "path": "data/x.csv", "type": "file" | "dir", "size": 123 | null,
/// "modified": 1717000000000 | null}`: `path` is relative to the sandbox root (absolute for
/// entries outside it), `size` is in
/// bytes (`null` for directories), `modified` is in milliseconds since the Unix epoch
/// (`null` when the server does not say). A new string the caller frees with
/// `e2b_string_free()`; NULL on failure. Listing a file is `E2B_ERR_NOT_A_DIRECTORY`, a
/// missing path `E2B_ERR_FILE_NOT_FOUND`.
///
/// From any thread, concurrently with any other call on the same handle.
///
/// # Safety
/// `path` is a NUL-terminated string; `out_json` is valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_files_list(
    sandbox: E2bSandbox,
    path: *const c_char,
    out_json: *mut *mut c_char,
) -> E2bErrorCode {
    // SAFETY: forwarded from the caller.
    unsafe {
        string_out(out_json, "out_json", || {
            // SAFETY: forwarded from the caller.
            let path = str_arg(path, "path")?;
            Ok(entries_json(&lookup(sandbox)?.files().list(path)?))
        })
    }
}

/// Sets `*out` to 1 when a file or directory exists at `path`, else 0 (a missing path is not
/// an error). `*out` is 0 on failure too; check the returned code.
///
/// From any thread, concurrently with any other call on the same handle.
///
/// # Safety
/// `path` is a NUL-terminated string; `out` is valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_files_exists(
    sandbox: E2bSandbox,
    path: *const c_char,
    out: *mut c_int,
) -> E2bErrorCode {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let path = unsafe {
            clear_out(out, 0, "out")?;
            str_arg(path, "path")?
        };
        let exists = lookup(sandbox)?.files().exists(path)?;
        // SAFETY: checked non-NULL above.
        unsafe { out.write(c_int::from(exists)) };
        Ok(())
    })
}

/// Removes a file, or a directory with everything in it. A missing path is not an error (as
/// on E2B); the sandbox root, or a directory that holds it, cannot be removed
/// (`E2B_ERR_INVALID_ARGUMENT`).
///
/// From any thread, concurrently with any other call on the same handle.
///
/// # Safety
/// `path` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_files_remove(
    sandbox: E2bSandbox,
    path: *const c_char,
) -> E2bErrorCode {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let path = unsafe { str_arg(path, "path")? };
        lookup(sandbox)?.files().remove(path)?;
        Ok(())
    })
}

/// Renames or moves a file or directory from `from` to `to`, creating missing parent
/// directories of `to`. A missing `from` is `E2B_ERR_FILE_NOT_FOUND`; an existing `to` is an
/// error (`E2B_ERR_HTTP`, status 409, from jupyter_server).
///
/// From any thread, concurrently with any other call on the same handle.
///
/// # Safety
/// `from` and `to` are NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_files_rename(
    sandbox: E2bSandbox,
    from: *const c_char,
    to: *const c_char,
) -> E2bErrorCode {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let (from, to) = unsafe { (str_arg(from, "from")?, str_arg(to, "to")?) };
        lookup(sandbox)?.files().rename(from, to)?;
        Ok(())
    })
}

/// Creates a directory and any missing parents (`mkdir -p`). `out_created` may be NULL;
/// otherwise it is set to 1 when the directory was created, 0 when it existed already (and
/// 0 on failure). A file in the way is `E2B_ERR_NOT_A_DIRECTORY`.
///
/// From any thread, concurrently with any other call on the same handle.
///
/// # Safety
/// `path` is a NUL-terminated string; `out_created` is NULL or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_files_make_dir(
    sandbox: E2bSandbox,
    path: *const c_char,
    out_created: *mut c_int,
) -> E2bErrorCode {
    guard(|| {
        if !out_created.is_null() {
            // SAFETY: forwarded from the caller.
            unsafe { clear_out(out_created, 0, "out_created")? };
        }
        // SAFETY: forwarded from the caller.
        let path = unsafe { str_arg(path, "path")? };
        let created = lookup(sandbox)?.files().make_dir(path)?;
        if !out_created.is_null() {
            // SAFETY: checked non-NULL above.
            unsafe { out_created.write(c_int::from(created)) };
        }
        Ok(())
    })
}
