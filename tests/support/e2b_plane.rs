//! A scripted E2B control plane on 127.0.0.1, for end-to-end tests without the cloud.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::scripted_ws::{HttpAnswer, Options, ScriptedWs};

/// A control plane that creates `sbx-local` for the key `e2b_test` and records each request
/// as "METHOD /target".
pub fn control_plane() -> (ScriptedWs, Arc<Mutex<Vec<String>>>) {
    control_plane_answering(json!({}))
}

/// [`control_plane`] whose answers to creating and connecting to `sbx-local` also carry the
/// fields of `extra` (access tokens, say).
pub fn control_plane_answering(extra: Value) -> (ScriptedWs, Arc<Mutex<Vec<String>>>) {
    let (plane, seen, _) = control_plane_recording(extra);
    (plane, seen)
}

/// Requests' bodies, in the order they came.
pub type Bodies = Arc<Mutex<Vec<Vec<u8>>>>;

/// [`control_plane_answering`] that also keeps every request's body.
pub fn control_plane_recording(extra: Value) -> (ScriptedWs, Arc<Mutex<Vec<String>>>, Bodies) {
    let mut access = json!({"sandboxID": "sbx-local", "templateID": "code-interpreter-v1",
                            "clientID": "c", "envdVersion": "0.2.0"});
    if let (Some(access), Some(extra)) = (access.as_object_mut(), extra.as_object()) {
        access.extend(extra.clone());
    }
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let bodies: Bodies = Arc::default();
    let (log, kept) = (seen.clone(), bodies.clone());
    let plane = ScriptedWs::start_with(
        Options::new().http_with(move |req| {
            log.lock()
                .unwrap()
                .push(format!("{} {}", req.method, req.target));
            kept.lock().unwrap().push(req.body.clone());
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
                ("POST", "/sandboxes" | "/v2/sandboxes") => Some(HttpAnswer::json(201, &access)),
                ("POST", "/sandboxes/sbx-local/connect" | "/v2/sandboxes/sbx-local/connect") => {
                    Some(HttpAnswer::json(200, &access))
                }
                ("DELETE", "/sandboxes/sbx-local") => Some(HttpAnswer::text(204, "")),
                _ => None,
            }
        }),
        |_| {},
    )
    .unwrap();
    (plane, seen, bodies)
}

pub fn assert_created_then_killed(seen: &Mutex<Vec<String>>) {
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.first().map(String::as_str),
        Some("POST /v2/sandboxes"),
        "{seen:?}"
    );
    assert_eq!(
        seen.last().map(String::as_str),
        Some("DELETE /sandboxes/sbx-local"),
        "{seen:?}"
    );
}

/// A control plane for `sbx-local`'s life cycle, keeping its state: create, connect (which
/// resumes), pause (409 once paused), get_info (running or paused), set_timeout, snapshots
/// (`snap-1:default`) and forks (of three asked for, the second answers E2B's per-fork 429).
/// Every request is recorded as "METHOD /target".
pub fn lifecycle_plane() -> (ScriptedWs, Arc<Mutex<Vec<String>>>) {
    let access = json!({"sandboxID": "sbx-local", "templateID": "code-interpreter-v1",
                        "clientID": "c", "envdVersion": "0.6.4", "envdAccessToken": "envd-tok"});
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let paused = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let log = seen.clone();
    let plane = ScriptedWs::start_with(
        Options::new().http_with(move |req| {
            use std::sync::atomic::Ordering::SeqCst;
            log.lock()
                .unwrap()
                .push(format!("{} {}", req.method, req.target));
            let path = req.path();
            let answer = match (req.method.as_str(), path) {
                ("POST", "/v2/sandboxes") => HttpAnswer::json(201, &access),
                ("POST", "/v2/sandboxes/sbx-local/connect") => {
                    let was = paused.swap(false, SeqCst);
                    HttpAnswer::json(if was { 201 } else { 200 }, &access)
                }
                ("POST", "/sandboxes/sbx-local/pause") => {
                    if paused.swap(true, SeqCst) {
                        HttpAnswer::json(409, &json!({"code": 409, "message": "already paused"}))
                    } else {
                        HttpAnswer::text(204, "")
                    }
                }
                ("GET", "/sandboxes/sbx-local") => {
                    let state = if paused.load(SeqCst) {
                        "paused"
                    } else {
                        "running"
                    };
                    HttpAnswer::json(
                        200,
                        &json!({"templateID": "code-interpreter-v1", "sandboxID": "sbx-local",
                                "clientID": "c", "startedAt": "2026-01-01T00:00:00Z",
                                "endAt": "2026-01-01T01:00:00Z", "cpuCount": 2,
                                "memoryMB": 512, "diskSizeMB": 1024, "envdVersion": "0.6.4",
                                "state": state,
                                "lifecycle": {"onTimeout": "pause", "autoResume": false},
                                "network": {"allowOut": ["example.com"], "dnsServers": []}}),
                    )
                }
                ("POST", "/sandboxes/sbx-local/timeout") => HttpAnswer::text(204, ""),
                ("POST", "/sandboxes/sbx-local/snapshots") => HttpAnswer::json(
                    201,
                    &json!({"snapshotID": "snap-1:default", "names": ["team/snap-1:default"]}),
                ),
                ("POST", "/sandboxes/sbx-local/fork") => HttpAnswer::json(
                    201,
                    &json!([{"sandbox": access},
                            {"error": {"code": 429, "message": "too many sandboxes"}},
                            {"sandbox": access}]),
                ),
                ("DELETE", "/sandboxes/sbx-local") => HttpAnswer::text(204, ""),
                _ => return None,
            };
            Some(answer)
        }),
        |_| {},
    )
    .unwrap();
    (plane, seen)
}
