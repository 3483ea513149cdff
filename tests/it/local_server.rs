//! Guards the local sandbox puts around jupyter_server bugs, shown on its real server.

use std::time::{Duration, Instant};

use crate::support::scripted_ws::{V1_SUBPROTOCOL, encode_v1};
use crate::support::{deadline, descendants, local_tcp, server_addr, token_of};
use e2b_blocking::{Isolation, LocalOptions, Sandbox};
use serde_json::json;
use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;

/// What the local server logs when it drops such a frame.
const DROPPED: &str = "dropped a message that arrived on a replaced websocket";

type Ws = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

fn open_v1(url: &str, token: &str) -> Ws {
    let mut request = url.into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert(
        "Authorization",
        HeaderValue::from_str(&format!("token {token}")).unwrap(),
    );
    headers.insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(V1_SUBPROTOCOL),
    );
    tungstenite::client::connect(request).unwrap().0
}

/// A client that reconnects with the same session makes jupyter_server close the old handler,
/// which then decodes a v1 frame still arriving on the old socket as the legacy format and
/// spends seconds building a struct format of ~100 million fields, with the whole server
/// stalled. The local server drops such frames instead (and says so in its log).
#[test]
fn a_frame_on_a_replaced_websocket_is_dropped_without_stalling_the_server() {
    deadline(|| {
        let sbx = local_tcp();
        let token = token_of(&sbx);
        let http = sbx.jupyter_url().trim_end_matches('/').to_string();
        let body = ureq::post(&format!("{http}/api/kernels"))
            .header("Authorization", &format!("token {token}"))
            .header("Content-Type", "application/json")
            .send(json!({"name": "python3"}).to_string())
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let kernel: serde_json::Value = serde_json::from_str(&body).unwrap();
        let session = uuid::Uuid::new_v4().simple().to_string();
        let ws_url = format!(
            "{}/api/kernels/{}/channels?session_id={session}",
            http.replacen("http", "ws", 1),
            kernel["id"].as_str().unwrap()
        );

        let mut old = open_v1(&ws_url, &token);
        let _new = open_v1(&ws_url, &token);
        let request = json!({
            "channel": "shell",
            "header": {"msg_id": "on-the-old-socket", "msg_type": "kernel_info_request",
                       "session": session, "username": "", "date": "", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "content": {},
        });
        old.send(tungstenite::Message::Binary(encode_v1(&request).into()))
            .unwrap();

        let until = Instant::now() + Duration::from_secs(60);
        let log = loop {
            let text = sbx.as_local().unwrap().server_log();
            if text.contains(DROPPED) || text.contains("struct.error") || Instant::now() > until {
                break text;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(!log.contains("struct.error"), "decoded as legacy:\n{log}");
        assert!(log.contains(DROPPED), "no drop logged:\n{log}");
        assert_eq!(sbx.run_code("1 + 1").unwrap().text(), Some("2"));
    });
}

/// The status of `GET path` sent to `addr` without any credentials.
fn unauthenticated_status(addr: std::net::SocketAddr, path: &str) -> u16 {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

/// The server's token is readable by no other local user (`ps` shows command lines to all)
/// and by no user code (kernels and commands inherit the server's environment).
#[test]
fn the_token_is_in_no_command_line_and_no_kernel_environment() {
    deadline(|| {
        let sbx = local_tcp();
        let token = token_of(&sbx);
        let pid = sbx.as_local().unwrap().pid();
        assert_eq!(sbx.run_code("1 + 1").unwrap().text(), Some("2"));
        let mut procs = vec![pid];
        procs.extend(descendants(pid));
        assert!(procs.len() > 1, "no kernel process below the server");
        for p in procs {
            for what in ["cmdline", "environ"] {
                let bytes = std::fs::read(format!("/proc/{p}/{what}")).unwrap_or_default();
                assert!(
                    !String::from_utf8_lossy(&bytes).contains(&token),
                    "the token is in /proc/{p}/{what}"
                );
            }
        }
        // Nor in a file of the sandbox's directory (config, runtime, log), which user code
        // finds from its environment.
        let mut todo = vec![
            sbx.as_local()
                .unwrap()
                .runtime_dir()
                .parent()
                .unwrap()
                .to_path_buf(),
        ];
        while let Some(dir) = todo.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    todo.push(path);
                    continue;
                }
                let text = std::fs::read(&path).unwrap_or_default();
                assert!(
                    !String::from_utf8_lossy(&text).contains(&token),
                    "the token is in {}",
                    path.display()
                );
            }
        }
        let code = format!("import os\n'{token}' in repr(dict(os.environ))");
        assert_eq!(sbx.run_code(code).unwrap().text(), Some("False"));
        let env = sbx.commands().run("env").unwrap();
        assert!(
            !env.stdout.contains(&token),
            "the token is in a command's env"
        );
        assert_eq!(
            unauthenticated_status(server_addr(&sbx), "/api/kernels"),
            403
        );
    });
}

/// Servers of this test process whose environment holds `marker` (tests run side by side in
/// this process, so the marker tells the servers of one test from the others').
fn servers_marked(marker: &str) -> Vec<u32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let ppid = stat.rsplit(')').next()?.split_whitespace().nth(1)?;
            let environ = std::fs::read(e.path().join("environ")).ok()?;
            let marked = environ.split(|&b| b == 0).any(|v| v == marker.as_bytes());
            (ppid == me && marked).then_some(pid)
        })
        .collect()
}

/// Waits for a server marked with `marker` that is not in `known`: a spare.
fn new_server(marker: &str, known: &[u32]) -> u32 {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(pid) = servers_marked(marker)
            .into_iter()
            .find(|p| !known.contains(p))
        {
            return pid;
        }
        assert!(Instant::now() < until, "no spare sandbox was started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// With `warm_spare`, a start leaves a spare starting behind it; the next start with equal
/// settings is handed that spare (its server was running before the call), which works like
/// any sandbox, and leaves the next spare behind it. Other settings get a sandbox of their own.
#[test]
fn the_next_start_takes_the_warm_spare_started_behind_the_last() {
    deadline(|| {
        // Unisolated, so that the marker is in the server's environment.
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let marker = format!("E2B_SPARE_TEST={tag}");
        let builder = || Sandbox::builder().envs([("E2B_SPARE_TEST", tag.as_str())]);
        let options = LocalOptions::new()
            .isolation(Isolation::None)
            .warm_spare(true);
        let first = builder().local_with(options.clone()).unwrap();
        let mut known = vec![first.as_local().unwrap().pid()];
        let spare = new_server(&marker, &known);

        let second = builder().local_with(options.clone()).unwrap();
        assert_eq!(second.as_local().unwrap().pid(), spare);
        assert_eq!(second.run_code("6 * 7").unwrap().text(), Some("42"));
        known.push(spare);
        let next = new_server(&marker, &known);

        let other = builder()
            .local_with(options.clone().allow_internet_access(true))
            .unwrap();
        assert_ne!(other.as_local().unwrap().pid(), next);
        assert_eq!(first.run_code("1 + 1").unwrap().text(), Some("2"));
    });
}
