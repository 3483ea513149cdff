//! The whole SDK, through `Sandbox::jupyter`, against a scripted server that answers the REST
//! calls like jupyter_server and then sends what a real one never does on the websocket.

use std::time::Duration;

use crate::support::scripted_ws::{HttpAnswer, Options, ScriptedWs, execute_ok, jupyter_reply};
use crate::support::{deadline, init_logs};
use e2b_blocking::{Error, Sandbox};
use serde_json::json;

fn fake_jupyter() -> ScriptedWs {
    let options = Options::new()
        .route(
            "GET",
            "/api/kernelspecs",
            HttpAnswer::json(
                200,
                &json!({"default": "python3",
                        "kernelspecs": {"python3": {"spec": {"language": "python"}}}}),
            ),
        )
        .route(
            "POST",
            "/api/kernels",
            HttpAnswer::json(201, &json!({"id": "k1", "name": "python3"})),
        )
        .route("POST", "/api/kernels/*", HttpAnswer::json(204, &json!({})))
        .route(
            "DELETE",
            "/api/kernels/*",
            HttpAnswer::json(204, &json!({})),
        )
        .route(
            "GET",
            "/api*",
            HttpAnswer::json(200, &json!({"version": "2.21.1"})),
        );
    ScriptedWs::start_with(options, |mut peer| {
        while let Some(req) = peer.recv_json(Duration::from_secs(30)) {
            let code = req["content"]["code"].as_str().unwrap_or("").to_string();
            match code.as_str() {
                "garbage" => {
                    peer.send_msg(&jupyter_reply(
                        &req,
                        "status",
                        "iopub",
                        json!({"execution_state": "busy"}),
                    ));
                    peer.send_binary(&[0xde, 0xad, 0xbe, 0xef, 0, 1, 2]);
                }
                "badjson" => {
                    peer.send_text("{\"header\": {\"msg_id\": 1, ");
                }
                "unknown" => {
                    peer.send_msg(&jupyter_reply(
                        &req,
                        "comm_from_the_future",
                        "iopub",
                        json!({"x": 1}),
                    ));
                    peer.send_msg(&jupyter_reply(&req, "status", "iopub", json!({})));
                    for m in execute_ok(&req, 2, &["still fine\n"], Some("7")) {
                        peer.send_msg(&m);
                    }
                }
                _ => {
                    for m in execute_ok(&req, 1, &[], Some("1")) {
                        peer.send_msg(&m);
                    }
                }
            }
        }
    })
    .unwrap()
}

#[test]
fn malformed_frames_are_typed_errors_and_the_sandbox_stays_usable() {
    deadline(|| {
        init_logs();
        let server = fake_jupyter();
        let sbx = Sandbox::jupyter(&server.http_url(), "t").unwrap();
        assert_eq!(sbx.run_code("1").unwrap().text(), Some("1"));

        for bad in ["garbage", "badjson"] {
            let err = sbx
                .code(bad)
                .timeout(Duration::from_secs(20))
                .run()
                .unwrap_err();
            assert!(matches!(err, Error::Protocol { .. }), "{bad}: {err:?}");
            // Nothing was lost on the way: the next call is answered normally.
            assert_eq!(sbx.run_code("1").unwrap().text(), Some("1"), "after {bad}");
        }

        let exec = sbx.run_code("unknown").unwrap();
        assert_eq!(exec.logs.stdout.concat(), "still fine\n");
        assert_eq!(exec.text(), Some("7"));
        drop(sbx);
        assert!(
            server.script_panics().is_empty(),
            "{:?}",
            server.script_panics()
        );
    });
}

#[test]
fn an_html_page_instead_of_json_is_a_protocol_error() {
    deadline(|| {
        init_logs();
        let options = Options::new().route(
            "GET",
            "/api/kernelspecs",
            HttpAnswer::html(200, "<html>login</html>"),
        );
        let server = ScriptedWs::start_with(options, |_| {}).unwrap();
        let err = Sandbox::jupyter(&server.http_url(), "t").unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    });
}
