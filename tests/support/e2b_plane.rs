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
                ("POST", "/sandboxes") => Some(HttpAnswer::json(201, &access)),
                ("POST", "/sandboxes/sbx-local/connect") => Some(HttpAnswer::json(200, &access)),
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
        Some("POST /sandboxes"),
        "{seen:?}"
    );
    assert_eq!(
        seen.last().map(String::as_str),
        Some("DELETE /sandboxes/sbx-local"),
        "{seen:?}"
    );
}
