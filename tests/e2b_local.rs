//! E2B end to end without the cloud: a scripted control plane on 127.0.0.1 and a real
//! jupyter_server configured like E2B's template (no token, XSRF checks off) as the sandbox.
//! `Sandbox` creates the sandbox, runs code in it, and `Drop` sends the kill.

mod support;

use e2b_blocking::{E2bConfig, E2bOptions, Sandbox};
use support::deadline;
use support::e2b_plane::{assert_created_then_killed, control_plane};
use support::python_server::PythonServer;

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
