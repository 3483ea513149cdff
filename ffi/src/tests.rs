//! Unit tests of the C functions called from Rust: argument checks, error codes, ownership.

use std::ffi::{CStr, CString, c_char, c_int};

use crate::E2bErrorCode::*;
use crate::*;

fn last_message() -> String {
    // SAFETY: the library's own message pointer, read at once.
    unsafe { CStr::from_ptr(e2b_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn null_and_zero_arguments_are_error_codes() {
    // SAFETY: every pointer is NULL or valid.
    unsafe {
        assert_eq!(
            e2b_sandbox_local(std::ptr::null(), std::ptr::null_mut()),
            E2B_ERR_NULL_ARG
        );
        assert!(last_message().contains("out is NULL"));
        let mut out: *mut c_char = std::ptr::null_mut();
        assert_eq!(e2b_run_code(0, c"1".as_ptr(), &mut out), E2B_ERR_NULL_ARG);
        assert_eq!(
            e2b_run_code(12345678, c"1".as_ptr(), &mut out),
            E2B_ERR_CLOSED
        );
        assert!(out.is_null());
        assert_eq!(e2b_sandbox_destroy(0), E2B_OK);
        assert_eq!(e2b_sandbox_destroy(12345678), E2B_ERR_CLOSED);
        e2b_string_free(std::ptr::null_mut());
    }
}

#[test]
fn invalid_utf8_is_an_error_code() {
    let bad = [0x7bu8, 0xff, 0xfe, 0];
    let mut out = 7;
    // SAFETY: `bad` is NUL-terminated; `out` is writable.
    let code = unsafe { e2b_sandbox_local(bad.as_ptr().cast(), &mut out) };
    assert_eq!(code, E2B_ERR_INVALID_UTF8);
    assert_eq!(out, 0);
    assert_eq!(e2b_last_error_code(), E2B_ERR_INVALID_UTF8);
}

#[test]
fn message_copy_behaves_like_snprintf() {
    error::set_last(E2B_ERR_OTHER, "hello");
    let mut buf = [0x55 as c_char; 4];
    // SAFETY: `buf` has 4 writable bytes; NULL with length 0 is allowed.
    unsafe {
        assert_eq!(e2b_last_error_message_copy(buf.as_mut_ptr(), buf.len()), 5);
        assert_eq!(CStr::from_ptr(buf.as_ptr()).to_bytes(), b"hel");
        assert_eq!(e2b_last_error_message_copy(std::ptr::null_mut(), 0), 5);
    }
}

#[test]
fn e2b_create_fails_fast_on_an_unreachable_control_plane() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let opts = CString::new(format!(
            r#"{{"api_key": "e2b_k", "api_url": "http://127.0.0.1:{port}", "request_timeout_ms": 2000}}"#
        ))
        .unwrap();
    let mut out = 7;
    // SAFETY: valid pointers.
    let code = unsafe { e2b_sandbox_create(opts.as_ptr(), &mut out) };
    let message = error::with_last_message(|m| String::from_utf8_lossy(m).into_owned());
    assert_eq!(code, E2B_ERR_TRANSPORT, "{message:?}");
    assert_eq!(out, 0);
    let bad = CString::new(r#"{"template": 5}"#).unwrap();
    // SAFETY: valid pointers.
    let code = unsafe { e2b_sandbox_create(bad.as_ptr(), &mut out) };
    assert_eq!(code, E2B_ERR_INVALID_ARGUMENT);
}

#[test]
fn connect_jupyter_checks_its_arguments_before_connecting() {
    let mut out = 7;
    let null = std::ptr::null();
    // SAFETY: NULL or NUL-terminated strings; `out` is writable.
    unsafe {
        let connect =
            |url, token, opts, out: &mut u64| e2b_sandbox_connect_jupyter(url, token, opts, out);
        assert_eq!(connect(null, null, null, &mut out), E2B_ERR_NULL_ARG);
        assert_eq!(out, 0);
        assert!(last_message().contains("url is NULL"));
        let url = c"http://127.0.0.1:9".as_ptr();
        assert_eq!(
            e2b_sandbox_connect_jupyter(url, null, null, std::ptr::null_mut()),
            E2B_ERR_NULL_ARG
        );
        let bad = [0x68u8, 0xff, 0];
        assert_eq!(
            connect(url, bad.as_ptr().cast(), null, &mut out),
            E2B_ERR_INVALID_UTF8
        );
        assert!(last_message().contains("token"));
        out = 7;
        assert_eq!(
            connect(c"ftp://x".as_ptr(), null, null, &mut out),
            E2B_ERR_INVALID_ARGUMENT
        );
        assert_eq!(out, 0);
        assert!(last_message().contains("http://"), "{}", last_message());
        for opts in [c"{\"python\": \"x\"}", c"{\"timeouts\": {\"x\": 1}}", c"{"] {
            assert_eq!(
                connect(url, null, opts.as_ptr(), &mut out),
                E2B_ERR_INVALID_ARGUMENT,
                "{opts:?}"
            );
        }
    }
}

#[test]
fn byte_buffers_round_trip_with_a_nul_after_them() {
    for content in [&b""[..], b"a\0b", &[7u8; 1000]] {
        let mut buf = vec![0u8; BYTES_HEADER];
        buf.extend_from_slice(content);
        let (data, len) = into_c_bytes(buf);
        assert!(!data.is_null());
        assert_eq!(len, content.len());
        // SAFETY: `data` holds `len` bytes and a NUL; freed once with its length.
        unsafe {
            assert_eq!(std::slice::from_raw_parts(data, len), content);
            assert_eq!(*data.add(len), 0);
            e2b_bytes_free(data, len);
        }
    }
    // SAFETY: NULL is ignored.
    unsafe { e2b_bytes_free(std::ptr::null_mut(), 0) };
}

#[test]
fn file_and_command_calls_check_arguments_and_handles() {
    let null: *const c_char = std::ptr::null();
    let no_cb: *const E2bRunCallbacks = std::ptr::null();
    let no_out: *mut *mut c_char = std::ptr::null_mut();
    let bad_utf8 = [0x61u8, 0xc3, 0x28, 0];
    let bad = bad_utf8.as_ptr().cast::<c_char>();
    let mut data: *mut u8 = 7 as *mut u8;
    let mut len = 7usize;
    let mut json: *mut c_char = 7 as *mut c_char;
    let mut flag: c_int = 7;
    // SAFETY: every pointer is NULL, NUL-terminated or writable.
    unsafe {
        assert_eq!(
            e2b_files_read(12345678, c"a".as_ptr(), &mut data, &mut len),
            E2B_ERR_CLOSED
        );
        assert!(data.is_null());
        assert_eq!(len, 0);
        assert_eq!(
            e2b_files_read(12345678, null, &mut data, &mut len),
            E2B_ERR_NULL_ARG
        );
        assert_eq!(
            e2b_files_read(12345678, c"a".as_ptr(), std::ptr::null_mut(), &mut len),
            E2B_ERR_NULL_ARG
        );
        assert_eq!(
            e2b_files_read(12345678, bad, &mut data, &mut len),
            E2B_ERR_INVALID_UTF8
        );
        assert_eq!(
            e2b_files_write(12345678, c"a".as_ptr(), std::ptr::null(), 3),
            E2B_ERR_NULL_ARG
        );
        assert!(last_message().contains("data is NULL"));
        assert_eq!(
            e2b_files_write(12345678, c"a".as_ptr(), std::ptr::null(), 0),
            E2B_ERR_CLOSED
        );
        assert_eq!(
            e2b_files_list(0, c".".as_ptr(), &mut json),
            E2B_ERR_NULL_ARG
        );
        assert!(json.is_null());
        assert_eq!(
            e2b_files_exists(12345678, bad, &mut flag),
            E2B_ERR_INVALID_UTF8
        );
        assert_eq!(flag, 0);
        assert_eq!(e2b_files_remove(12345678, null), E2B_ERR_NULL_ARG);
        assert_eq!(
            e2b_files_rename(12345678, c"a".as_ptr(), bad),
            E2B_ERR_INVALID_UTF8
        );
        assert_eq!(
            e2b_files_make_dir(12345678, c"d".as_ptr(), std::ptr::null_mut()),
            E2B_ERR_CLOSED
        );
        json = 7 as *mut c_char;
        assert_eq!(
            e2b_commands_run(12345678, c"true".as_ptr(), null, no_cb, &mut json),
            E2B_ERR_CLOSED
        );
        assert!(json.is_null());
        assert_eq!(
            e2b_commands_run(12345678, null, null, no_cb, no_out),
            E2B_ERR_NULL_ARG
        );
        assert_eq!(
            e2b_commands_run(
                12345678,
                c"true".as_ptr(),
                c"{\"cwdd\": 1}".as_ptr(),
                no_cb,
                no_out
            ),
            E2B_ERR_INVALID_ARGUMENT
        );
        assert!(last_message().contains("cwdd"));
    }
}

#[test]
fn code_names_cover_unknown_numbers() {
    // SAFETY: static strings.
    let name = |c| {
        unsafe { CStr::from_ptr(e2b_error_code_name(c)) }
            .to_str()
            .unwrap()
    };
    assert_eq!(name(4), "E2B_ERR_TIMEOUT");
    assert_eq!(name(-5), "E2B_ERR_OTHER");
    // SAFETY: a static string.
    let version = unsafe { CStr::from_ptr(e2b_version()) };
    assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}
