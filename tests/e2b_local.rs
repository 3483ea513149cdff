//! E2B end to end without the cloud: a scripted control plane on 127.0.0.1 and a real
//! jupyter_server configured like E2B's template (no token, XSRF checks off) as the sandbox.
//! `Sandbox` creates the sandbox, runs code in it, and `Drop` sends the kill.

mod support;

use std::ffi::{CStr, CString, c_char};
use std::sync::{Arc, Mutex};

use e2b_blocking::{E2bConfig, E2bOptions, Sandbox};
use serde_json::json;
use support::deadline;
use support::python_server::PythonServer;
use support::scripted_ws::{HttpAnswer, Options, ScriptedWs};

/// A control plane that creates `sbx-local` for the key `e2b_test` and records each request
/// as "METHOD /target".
fn control_plane() -> (ScriptedWs, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    let plane = ScriptedWs::start_with(
        Options::new().http_with(move |req| {
            log.lock()
                .unwrap()
                .push(format!("{} {}", req.method, req.target));
            let key_ok = req
                .headers
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case("x-api-key") && v == "e2b_test");
            if !key_ok {
                return Some(HttpAnswer::json(
                    401,
                    &json!({"code": 401, "message": "bad key"}),
                ));
            }
            match (req.method.as_str(), req.target.as_str()) {
                ("POST", "/sandboxes") => Some(HttpAnswer::json(
                    201,
                    &json!({"sandboxID": "sbx-local", "templateID": "code-interpreter-v1",
                            "clientID": "c", "envdVersion": "0.2.0"}),
                )),
                ("DELETE", "/sandboxes/sbx-local") => Some(HttpAnswer::text(204, "")),
                _ => None,
            }
        }),
        |_| {},
    )
    .unwrap();
    (plane, seen)
}

fn assert_created_then_killed(seen: &Mutex<Vec<String>>) {
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.first().map(String::as_str),
        Some("POST /sandboxes"),
        "{seen:?}"
    );
    assert_eq!(
        seen.last().map(String::as_str),
        Some("DELETE /sandboxes/sbx-local"),
        "{seen:?}"
    );
}

#[test]
fn create_run_and_drop_kills_the_sandbox() {
    deadline(|| {
        let jupyter = PythonServer::tokenless_jupyter();
        let (plane, seen) = control_plane();
        let config = E2bConfig::default()
            .api_key("e2b_test")
            .api_url(plane.http_url())
            .sandbox_url(jupyter.url.clone());
        let sbx = Sandbox::builder()
            .e2b_with(&config, &E2bOptions::default())
            .unwrap();
        assert_eq!(sbx.sandbox_id(), "sbx-local");
        assert!(
            !format!("{sbx:?}").contains("e2b_test"),
            "API key in Debug output"
        );
        let exec = sbx.code("print('in the sandbox')\n6 * 7").run().unwrap();
        assert_eq!(exec.text(), Some("42"));
        assert_eq!(exec.logs.stdout.concat(), "in the sandbox\n");
        drop(sbx);
        assert_created_then_killed(&seen);
    });
}

// The C ABI, linked from this crate built with the `ffi` feature (a dev-dependency).
unsafe extern "C" {
    fn e2b_sandbox_create(options_json: *const c_char, out: *mut u64) -> i32;
    fn e2b_run_code(sandbox: u64, code: *const c_char, out_json: *mut *mut c_char) -> i32;
    fn e2b_string_free(s: *mut c_char);
    fn e2b_sandbox_destroy(sandbox: u64) -> i32;
}

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
            assert_eq!(e2b_sandbox_create(options.as_ptr(), &mut sbx), 0);
            assert_ne!(sbx, 0);
            let mut out = std::ptr::null_mut();
            assert_eq!(e2b_run_code(sbx, code.as_ptr(), &mut out), 0);
            let exec: serde_json::Value =
                serde_json::from_slice(CStr::from_ptr(out).to_bytes()).unwrap();
            e2b_string_free(out);
            assert_eq!(exec["results"][0]["text"], "42", "{exec}");
            assert_eq!(e2b_sandbox_destroy(sbx), 0);
        }
        assert_created_then_killed(&seen);
    });
}
