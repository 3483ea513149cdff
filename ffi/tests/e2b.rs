//! `e2b_sandbox_create` drives the E2B backend end to end without the cloud: the scripted
//! control plane and a tokenless jupyter_server of the shared test support.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::ffi::{CStr, CString};

use e2b_blocking_ffi::{e2b_run_code, e2b_sandbox_create, e2b_sandbox_destroy, e2b_string_free};
use serde_json::json;
use support::deadline;
use support::e2b_plane::{assert_created_then_killed, control_plane};
use support::python_server::PythonServer;

#[test]
fn the_c_abi_creates_runs_and_destroys_an_e2b_sandbox() {
    deadline(|| {
        let jupyter = PythonServer::tokenless_jupyter();
        let (plane, seen) = control_plane();
        let options = CString::new(
            json!({
                "api_key": "e2b_test",
                "api_url": plane.http_url(),
                "sandbox_url": jupyter.url,
                "template": "code-interpreter-v1",
                "lifetime_ms": 60_000,
            })
            .to_string(),
        )
        .unwrap();
        let code = CString::new("6 * 7").unwrap();
        // SAFETY: NUL-terminated strings and writable out-parameters; the returned string is
        // freed once with e2b_string_free.
        unsafe {
            let mut sbx = 0;
            assert_eq!(e2b_sandbox_create(options.as_ptr(), &mut sbx) as i32, 0);
            assert_ne!(sbx, 0);
            let mut out = std::ptr::null_mut();
            assert_eq!(e2b_run_code(sbx, code.as_ptr(), &mut out) as i32, 0);
            let exec: serde_json::Value =
                serde_json::from_slice(CStr::from_ptr(out).to_bytes()).unwrap();
            e2b_string_free(out);
            assert_eq!(exec["results"][0]["text"], "42", "{exec}");
            assert_eq!(e2b_sandbox_destroy(sbx) as i32, 0);
        }
        assert_created_then_killed(&seen);
    });
}
