//! E2B end to end without the cloud: a scripted control plane on 127.0.0.1 and a real
//! jupyter_server configured like E2B's template (no token, XSRF checks off) as the sandbox.
//! `Sandbox` creates the sandbox, runs code in it, and `Drop` sends the kill.

mod support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2b_blocking::{E2bConfig, E2bOptions, Sandbox};
use serde_json::json;
use support::scripted_ws::{HttpAnswer, Options, ScriptedWs};
use support::{deadline, local};

/// A tokenless jupyter_server from the local sandbox's venv, as E2B's template runs it.
struct TemplateServer {
    child: Child,
    url: String,
    dir: std::path::PathBuf,
}

impl Drop for TemplateServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn template_server() -> TemplateServer {
    let python = {
        let sbx = local();
        let exec = sbx.run_code("import sys\nsys.executable").unwrap();
        exec.text().unwrap().trim_matches('\'').to_string()
    };
    let dir = std::env::temp_dir().join(format!("e2b-template-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(dir.join("root")).unwrap();
    for _ in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(&python)
            .args([
                "-m",
                "jupyter_server",
                "--ServerApp.ip=127.0.0.1",
                "--allow-root",
            ])
            .arg(format!("--ServerApp.port={port}"))
            .arg("--ServerApp.port_retries=0")
            .arg("--IdentityProvider.token=")
            .arg("--ServerApp.disable_check_xsrf=True")
            .arg(format!(
                "--ServerApp.root_dir={}",
                dir.join("root").display()
            ))
            .env("JUPYTER_RUNTIME_DIR", dir.join("runtime"))
            .env("JUPYTER_CONFIG_DIR", dir.join("config"))
            .env("JUPYTER_DATA_DIR", dir.join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let ready_by = Instant::now() + Duration::from_secs(60);
        while Instant::now() < ready_by {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if ureq::get(&format!("{url}/api/status")).call().is_ok() {
                return TemplateServer { child, url, dir };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("template server did not start");
}

#[test]
fn create_run_and_drop_kills_the_sandbox() {
    deadline(|| {
        let jupyter = template_server();
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
        let exec = sbx.run("print('in the sandbox')\n6 * 7").send().unwrap();
        assert_eq!(exec.text(), Some("42"));
        assert_eq!(exec.logs.stdout.concat(), "in the sandbox\n");
        drop(sbx);
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
    });
}
