//! Status mapping, retries, paging and the backend's life cycle against a scripted HTTP server
//! on 127.0.0.1. The contract with the real spec is checked by `tests/e2b_contract.rs` (Prism).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::*;

/// One request as the fake server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the fake answers: status, extra headers, JSON body. `None` never answers.
type Reply = Option<(u16, Vec<(&'static str, String)>, String)>;
type Handler = dyn Fn(&Seen, usize) -> Reply + Send + Sync;

/// A scripted HTTP/1.1 server: one response per connection, then close.
struct Fake {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Fake {
    /// `handler` gets the request and its index among all requests so far.
    fn start(handler: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (seen, handler) = (seen.clone(), handler.clone());
                    std::thread::spawn(move || serve(stream, &seen, &*handler));
                }
            })
        };
        Fake {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: TcpStream, seen: &Mutex<Vec<Seen>>, handler: &Handler) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    let len = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    let _ = reader.read_exact(&mut body);
    let req = Seen {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let index = {
        let mut s = seen.lock().unwrap();
        s.push(req.clone());
        s.len() - 1
    };
    let Some((status, extra, body)) = handler(&req, index) else {
        std::thread::sleep(Duration::from_secs(30));
        return;
    };
    let mut out = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if !extra
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        out.push_str("Content-Type: application/json\r\n");
    }
    for (n, v) in extra {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&body);
    let mut stream = reader.into_inner();
    let _ = stream.write_all(out.as_bytes());
}

fn reply(status: u16, body: &str) -> Reply {
    Some((status, Vec::new(), body.to_string()))
}

fn config(fake: &Fake) -> E2bConfig {
    E2bConfig::default()
        .api_key("e2b_0123")
        .api_url(fake.url())
        .request_timeout(Duration::from_secs(5))
}

const INFO: &str = r#"{"sandboxID":"sbx1","templateID":"t","clientID":"c","startedAt":"2026-01-01T00:00:00Z","endAt":"2026-01-01T00:05:00Z","cpuCount":2,"memoryMB":512,"diskSizeMB":1024,"state":"running","envdVersion":"0.2"}"#;
const CREATED: &str = r#"{"sandboxID":"sbx1","templateID":"t","clientID":"c","envdVersion":"0.2","envdAccessToken":"envd-tok","trafficAccessToken":"traffic-tok","domain":null}"#;

#[test]
fn statuses_map_to_typed_errors() {
    // Matched on the sandbox id, whatever follows it.
    let fake = Fake::start(
        |req, _| match req.path.split('/').nth(2).unwrap_or_default() {
            "gone" => reply(404, r#"{"code":404,"message":"not found"}"#),
            "denied" => reply(401, r#"{"code":401,"message":"bad key"}"#),
            "busy" => Some((429, vec![("Retry-After", "7".into())], "{}".into())),
            "html" => Some((
                200,
                vec![("Content-Type", "text/html".into())],
                "<html>".into(),
            )),
            "bad" => reply(400, r#"{"code":400,"message":"bad template"}"#),
            _ => reply(200, INFO),
        },
    );
    let client = E2bClient::new(&config(&fake)).unwrap();
    assert!(matches!(
        client.get_info("gone"),
        Err(Error::SandboxNotFound { sandbox_id }) if sandbox_id == "gone"
    ));
    assert!(matches!(
        client.set_lifetime("gone", Duration::from_secs(1)),
        Err(Error::SandboxNotFound { .. })
    ));
    assert!(matches!(client.kill("gone"), Ok(false)));
    assert!(matches!(
        client.get_info("denied"),
        Err(Error::Authentication { status: 401, .. })
    ));
    assert!(matches!(
        client.get_info("busy"),
        Err(Error::RateLimited { retry_after: Some(d), .. }) if d == Duration::from_secs(7)
    ));
    assert!(matches!(
        client.get_info("html"),
        Err(Error::Protocol { .. })
    ));
    match client.get_info("bad") {
        Err(Error::Http {
            status: 400,
            message,
            endpoint,
        }) => {
            assert_eq!(message, "bad template");
            assert_eq!(endpoint, "GET /sandboxes/bad");
        }
        other => panic!("{other:?}"),
    }
    let info = client.get_info("ok").unwrap();
    assert_eq!((info.cpu_count, info.state), (2, SandboxState::Running));
    let seen = fake.seen();
    assert!(
        seen.iter()
            .all(|r| r.header("x-api-key") == Some("e2b_0123")),
        "{seen:?}"
    );
}

#[test]
fn answers_are_retried_only_where_sending_again_is_safe() {
    let fake = Fake::start(|req, _| match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/sandboxes/flaky")
        | ("POST", "/v2/sandboxes")
        | ("DELETE", _)
        | ("POST", "/sandboxes/x/fork")
        | ("POST", "/sandboxes/x/snapshots") => reply(503, r#"{"code":503,"message":"busy"}"#),
        ("GET", "/sandboxes/internal") => reply(500, r#"{"code":500,"message":"oops"}"#),
        _ => reply(200, INFO),
    });
    let client = E2bClient::new(&config(&fake).max_attempts(3)).unwrap();
    let count = |method: &str, path: &str| {
        fake.seen()
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .count()
    };
    assert!(matches!(
        client.get_info("flaky"),
        Err(Error::ServiceBusy { message, .. }) if message == "busy"
    ));
    assert_eq!(
        count("GET", "/sandboxes/flaky"),
        3,
        "tried max_attempts times"
    );
    assert!(matches!(
        client.get_info("internal"),
        Err(Error::Http { status: 500, .. })
    ));
    assert_eq!(count("GET", "/sandboxes/internal"), 1, "500 is not retried");

    assert!(matches!(
        client.create(&E2bOptions::new()),
        Err(Error::ServiceBusy { .. })
    ));
    let creates: Vec<Seen> = fake
        .seen()
        .into_iter()
        .filter(|r| r.path == "/v2/sandboxes")
        .collect();
    assert_eq!(creates.len(), 3, "create carries a key, so it is retried");
    let key = creates[0]
        .header("idempotency-key")
        .expect("a key")
        .to_string();
    assert_eq!(key.len(), 36, "a UUID: {key}");
    assert!(
        creates
            .iter()
            .all(|r| r.header("idempotency-key") == Some(key.as_str()))
    );
    client.create(&E2bOptions::new()).unwrap_err();
    let second = fake
        .seen()
        .into_iter()
        .rfind(|r| r.path == "/v2/sandboxes")
        .unwrap();
    assert_ne!(
        second.header("idempotency-key"),
        Some(key.as_str()),
        "a new key per create"
    );

    assert!(client.fork("x", &ForkOptions::new()).is_err());
    assert_eq!(
        count("POST", "/sandboxes/x/fork"),
        1,
        "a fork is never sent twice"
    );
    assert!(
        client
            .create_snapshot("x", &SnapshotOptions::new())
            .is_err()
    );
    assert_eq!(count("POST", "/sandboxes/x/snapshots"), 1);
    assert!(client.kill("x").is_err());
    assert_eq!(count("DELETE", "/sandboxes/x"), 3);
}

#[test]
fn should_retry_decides_and_retry_after_is_honoured_within_the_budget() {
    let fake = Fake::start(|req, i| match req.path.as_str() {
        // Marked retryable whatever the status; answered on the second attempt.
        "/sandboxes/marked" if i == 0 => Some((
            500,
            vec![("Should-Retry", "true".into()), ("Retry-After", "1".into())],
            r#"{"code":500,"message":"try again"}"#.into(),
        )),
        "/sandboxes/refused" => Some((
            503,
            vec![("Should-Retry", "false".into())],
            r#"{"code":503,"message":"no"}"#.into(),
        )),
        "/sandboxes/later" => Some((
            429,
            vec![("Retry-After", "30".into())],
            r#"{"code":429,"message":"slow down"}"#.into(),
        )),
        _ => reply(200, INFO),
    });
    let client = E2bClient::new(&config(&fake)).unwrap();
    let start = Instant::now();
    assert_eq!(client.get_info("marked").unwrap().sandbox_id, "sbx1");
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "Retry-After waited"
    );
    assert!(matches!(
        client.get_info("refused"),
        Err(Error::ServiceBusy { .. })
    ));
    let start = Instant::now();
    assert!(matches!(
        client.get_info("later"),
        Err(Error::RateLimited { retry_after: Some(d), .. }) if d == Duration::from_secs(30)
    ));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "a wait past the 5 s budget is not started"
    );
    let tries = |p: &str| fake.seen().iter().filter(|r| r.path == p).count();
    assert_eq!(
        (
            tries("/sandboxes/marked"),
            tries("/sandboxes/refused"),
            tries("/sandboxes/later")
        ),
        (2, 1, 1)
    );
}

#[test]
fn an_unanswered_call_ends_within_its_budget_retries_included() {
    let fake = Fake::start(|_, _| reply(503, r#"{"code":503,"message":"busy"}"#));
    let client = E2bClient::new(
        &config(&fake)
            .request_timeout(Duration::from_millis(700))
            .max_attempts(100),
    )
    .unwrap();
    let start = Instant::now();
    assert!(client.get_info("x").is_err());
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(fake.seen().len() >= 3, "backoff starts at 50-100 ms");
}

#[test]
fn a_retry_that_succeeds_is_invisible() {
    let fake = Fake::start(|_, i| {
        if i == 0 {
            reply(502, "bad gateway")
        } else {
            reply(200, INFO)
        }
    });
    let client = E2bClient::new(&config(&fake)).unwrap();
    assert_eq!(client.get_info("sbx1").unwrap().sandbox_id, "sbx1");
    assert_eq!(fake.seen().len(), 2);
}

#[test]
fn network_errors_are_retried_then_reported() {
    // A port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = E2bClient::new(
        &E2bConfig::default()
            .api_key("k")
            .api_url(format!("http://127.0.0.1:{port}"))
            .max_attempts(2),
    )
    .unwrap();
    let start = Instant::now();
    assert!(matches!(client.get_info("x"), Err(Error::Transport { .. })));
    assert!(start.elapsed() >= Duration::from_millis(100), "no backoff");
}

#[test]
fn bounded_client_keeps_its_budget() {
    let fake = Fake::start(|_, _| None);
    let client = E2bClient::new(&config(&fake)).unwrap();
    let quick = client.bounded(Duration::from_millis(300));
    let start = Instant::now();
    assert!(matches!(
        quick.get_info("x"),
        Err(Error::Timeout {
            phase: TimeoutPhase::Request,
            ..
        })
    ));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn list_all_follows_tokens_and_stops_on_a_loop() {
    let fake = Fake::start(|req, _| {
        let page = |next: Option<&str>| {
            let mut headers = vec![("X-Total-Running", "3".to_string())];
            if let Some(n) = next {
                headers.push(("X-Next-Token", n.to_string()));
            }
            Some((200, headers, format!("[{INFO}]")))
        };
        if req.path.contains("loop") {
            return page(Some("same"));
        }
        match req.path.split("nextToken=").nth(1) {
            None => page(Some("p2")),
            Some("p2") => page(Some("p3")),
            Some(_) => page(None),
        }
    });
    let client = E2bClient::new(&config(&fake)).unwrap();
    let page = client.list(&ListQuery::new().limit(1)).unwrap();
    assert_eq!(page.next_token.as_deref(), Some("p2"));
    assert_eq!(page.total_running, Some(3));
    let all = client
        .list_all(&ListQuery::new().states([SandboxState::Running]))
        .unwrap();
    assert_eq!(all.len(), 3);
    let paths: Vec<String> = fake.seen().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths[1..],
        [
            "/v2/sandboxes?state=running",
            "/v2/sandboxes?state=running&nextToken=p2",
            "/v2/sandboxes?state=running&nextToken=p3"
        ]
    );
    assert!(matches!(
        client.list_all(&ListQuery::new().template("loop")),
        Err(Error::Protocol { .. })
    ));
}

#[test]
fn refresh_longer_than_an_hour_is_refused_locally() {
    let fake = Fake::start(|_, _| reply(204, ""));
    let client = E2bClient::new(&config(&fake)).unwrap();
    assert!(matches!(
        client.refresh("x", Duration::from_secs(3601)),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        client.get_info(""),
        Err(Error::InvalidArgument(_))
    ));
    client.refresh("x", Duration::from_secs(60)).unwrap();
    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/sandboxes/x/refreshes");
    assert_eq!(seen[0].body, r#"{"duration":60}"#);
}

/// A control plane plus a Jupyter stand-in that answers 502 for its first `not_ready` probes.
fn cloud(not_ready: usize) -> (Fake, Fake) {
    let api = Fake::start(|req, _| match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/v2/sandboxes") | ("POST", "/v2/sandboxes/sbx1/connect") => reply(201, CREATED),
        ("GET", "/sandboxes/sbx1") => reply(404, r#"{"code":404,"message":"gone"}"#),
        ("DELETE", _) => reply(204, ""),
        _ => reply(500, "unexpected"),
    });
    let jupyter = Fake::start(move |_, i| {
        if i < not_ready {
            reply(502, "port not open")
        } else {
            reply(200, r#"{"default":"python3","kernelspecs":{}}"#)
        }
    });
    (api, jupyter)
}

fn timeouts() -> Timeouts {
    Timeouts::default()
        .sandbox_start(Duration::from_secs(10))
        .close(Duration::from_secs(2))
}

#[test]
fn created_sandbox_waits_for_jupyter_and_is_killed_on_close() {
    let (api, jupyter) = cloud(2);
    let config = config(&api).sandbox_url(jupyter.url());
    let backend = E2bBackend::create(&config, &E2bOptions::new(), &timeouts()).unwrap();
    assert_eq!(backend.sandbox_id(), "sbx1");
    assert_eq!(jupyter.seen().len(), 3, "polled until ready");
    let probe = &jupyter.seen()[2];
    assert_eq!(probe.path, "/api/kernelspecs");
    assert_eq!(
        probe.header("e2b-traffic-access-token"),
        Some("traffic-tok")
    );
    assert_eq!(probe.header("x-access-token"), None);
    assert_eq!(
        probe.header("x-api-key"),
        None,
        "the API key stays on the API"
    );
    assert!(backend.owns_server());
    assert_eq!(backend.probe(), Liveness::Gone);
    let dbg = format!("{backend:?}");
    assert!(
        !dbg.contains("traffic-tok") && !dbg.contains("envd-tok") && !dbg.contains("e2b_0123"),
        "{dbg}"
    );

    backend.shutdown().unwrap();
    backend.shutdown().unwrap();
    let kills: Vec<Seen> = api
        .seen()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .collect();
    assert_eq!(kills.len(), 1, "killed once");
    assert_eq!(kills[0].path, "/sandboxes/sbx1");
}

#[test]
fn connected_sandbox_is_left_running_unless_taken_over() {
    let (api, jupyter) = cloud(0);
    let config = config(&api).sandbox_url(jupyter.url());
    let options = ConnectOptions::new().lifetime(Duration::from_secs(60));
    let backend = E2bBackend::connect(&config, "sbx1", &options, &timeouts()).unwrap();
    let connect = &api.seen()[0];
    assert_eq!(
        (connect.path.as_str(), connect.body.as_str()),
        ("/v2/sandboxes/sbx1/connect", r#"{"timeout":60}"#)
    );
    assert!(!backend.owns_server());
    backend.shutdown().unwrap();
    assert!(api.seen().iter().all(|r| r.method != "DELETE"));

    let backend =
        E2bBackend::connect(&config, "sbx1", &ConnectOptions::new(), &timeouts()).unwrap();
    backend.set_kill_on_close(true);
    assert!(backend.owns_server());
    backend.shutdown().unwrap();
    assert_eq!(
        api.seen().iter().filter(|r| r.method == "DELETE").count(),
        1
    );
}

#[test]
fn a_sandbox_whose_jupyter_never_answers_is_killed() {
    let (api, jupyter) = cloud(usize::MAX);
    let config = config(&api).sandbox_url(jupyter.url());
    let t = timeouts().sandbox_start(Duration::from_millis(800));
    let start = Instant::now();
    let err = E2bBackend::create(&config, &E2bOptions::new(), &t).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                phase: TimeoutPhase::SandboxStart,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(api.seen().iter().any(|r| r.method == "DELETE"));
}

#[test]
fn a_rejected_traffic_token_fails_fast() {
    let api = Fake::start(|_, _| reply(201, CREATED));
    let jupyter = Fake::start(|_, _| reply(403, r#"{"message":"forbidden"}"#));
    let config = config(&api).sandbox_url(jupyter.url());
    let err = E2bBackend::create(&config, &E2bOptions::new(), &timeouts()).unwrap_err();
    assert!(
        matches!(err, Error::Authentication { status: 403, .. }),
        "{err:?}"
    );
    assert_eq!(jupyter.seen().len(), 1);
}

#[test]
fn probe_is_unknown_when_the_api_is_silent() {
    let (api, jupyter) = cloud(0);
    let config = config(&api).sandbox_url(jupyter.url());
    let backend =
        E2bBackend::connect(&config, "sbx1", &ConnectOptions::new(), &timeouts()).unwrap();
    drop(api);
    let silent = Fake::start(|_, _| None);
    let mut backend = backend;
    backend.quick = E2bClient::new(&E2bConfig::default().api_key("k").api_url(silent.url()))
        .unwrap()
        .bounded(Duration::from_millis(300));
    let start = Instant::now();
    assert_eq!(backend.probe(), Liveness::Unknown);
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn jupyter_endpoint_uses_the_sandbox_domain() {
    let access: SandboxAccess = serde_json::from_str(
        r#"{"sandboxID":"abc","templateID":"t","clientID":"c","envdVersion":"1","domain":"eu.e2b.app"}"#,
    )
    .unwrap();
    let e = jupyter_endpoint(&E2bConfig::default(), &access).unwrap();
    assert_eq!(e.base(), "https://8888-abc.eu.e2b.app");
    // Only the proxy's routing headers; Jupyter in the template has no token.
    let headers: Vec<(String, String)> = e
        .headers()
        .map(|(n, v)| (n.to_string(), v.expose().to_string()))
        .collect();
    assert_eq!(
        headers,
        [
            ("E2b-Sandbox-Id".to_string(), "abc".to_string()),
            ("E2b-Sandbox-Port".to_string(), "8888".to_string())
        ]
    );
    assert_eq!(e.ws_url("/api"), "wss://8888-abc.eu.e2b.app/api");
    let bad: SandboxAccess = serde_json::from_str(
        r#"{"sandboxID":"abc","templateID":"t","clientID":"c","envdVersion":"1"}"#,
    )
    .unwrap();
    let e = jupyter_endpoint(&E2bConfig::default().sandbox_url("ftp://x"), &bad);
    assert!(matches!(e, Err(Error::InvalidArgument(_))));
}

/// Reads one request head (and no body) from `stream`; the bytes read.
fn read_head(stream: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    head
}

/// The control plane's bodies reach ureq hidden (see crate::net::redact): a chunked answer written in
/// small pieces, then a `Content-Length` one on the same kept-alive connection, both arrive
/// whole and in order.
#[test]
fn hidden_bodies_arrive_whole_over_chunked_and_kept_alive_answers() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let create = String::from_utf8(read_head(&mut stream)).unwrap();
        // The create's JSON body, whose length the head gives.
        let len: usize = create
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        stream.read_exact(&mut body).unwrap();
        let (a, b) = CREATED.split_at(40);
        let chunked = format!(
            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x};x=y\r\n{b}\r\n0\r\n\r\n",
            a.len(),
            b.len()
        );
        for piece in chunked.as_bytes().chunks(7) {
            stream.write_all(piece).unwrap();
            stream.flush().unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        let get = String::from_utf8(read_head(&mut stream)).unwrap();
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{INFO}",
            INFO.len()
        );
        stream.write_all(answer.as_bytes()).unwrap();
        (create, get)
    });
    let client = E2bClient::new(
        &E2bConfig::default()
            .api_key("e2b_0123")
            .api_url(format!("http://{addr}"))
            .request_timeout(Duration::from_secs(10)),
    )
    .unwrap();
    let access = client.create(&E2bOptions::default()).unwrap();
    assert_eq!(access.sandbox_id, "sbx1");
    assert_eq!(
        access.envd_access_token.as_ref().map(Secret::expose),
        Some("envd-tok")
    );
    assert_eq!(
        access.traffic_access_token.as_ref().map(Secret::expose),
        Some("traffic-tok")
    );
    let info = client.get_info("sbx1").unwrap();
    assert_eq!(info.sandbox_id, "sbx1");
    let (create, get) = server.join().unwrap();
    assert!(create.starts_with("POST /v2/sandboxes "), "{create}");
    assert!(create.contains("accept-encoding: identity\r\n"), "{create}");
    assert!(get.starts_with("GET /sandboxes/sbx1 "), "{get}");
}

#[test]
fn running_is_only_the_running_state() {
    for (state, want) in [
        ("running", Liveness::Alive),
        ("paused", Liveness::Paused),
        ("pausing", Liveness::Gone),
    ] {
        let info = INFO.replace(r#""state":"running""#, &format!(r#""state":"{state}""#));
        let api = Fake::start(
            move |req, _| match (req.method.as_str(), req.path.as_str()) {
                ("POST", "/v2/sandboxes/sbx1/connect") => reply(201, CREATED),
                ("GET", "/sandboxes/sbx1") => reply(200, &info),
                _ => reply(500, "unexpected"),
            },
        );
        let jupyter = Fake::start(|_, _| reply(200, r#"{"default":"python3","kernelspecs":{}}"#));
        let config = config(&api).sandbox_url(jupyter.url());
        let backend =
            E2bBackend::connect(&config, "sbx1", &ConnectOptions::new(), &timeouts()).unwrap();
        assert_eq!(backend.running(), want, "{state}");
        let exists = if state == "paused" {
            Liveness::Paused
        } else {
            Liveness::Alive
        };
        assert_eq!(backend.probe(), exists, "{state}: it exists");
    }
}

/// A handle across a pause: it fails fast with `SandboxPaused`, or, auto-resuming, resumes
/// through connect first (its own pause, or one it finds when a connection is lost).
#[test]
fn a_paused_sandbox_fails_fast_or_is_resumed_first() {
    let paused = Arc::new(AtomicBool::new(false));
    let api = {
        let paused = paused.clone();
        Fake::start(
            move |req, _| match (req.method.as_str(), req.path.as_str()) {
                ("POST", "/sandboxes/sbx1/pause") => {
                    let was = paused.swap(true, Ordering::SeqCst);
                    if was {
                        reply(409, r#"{"code":409,"message":"already paused"}"#)
                    } else {
                        reply(204, "")
                    }
                }
                ("POST", "/v2/sandboxes/sbx1/connect") => {
                    paused.store(false, Ordering::SeqCst);
                    reply(201, CREATED)
                }
                ("GET", "/sandboxes/sbx1") => {
                    let state = if paused.load(Ordering::SeqCst) {
                        "paused"
                    } else {
                        "running"
                    };
                    reply(200, &INFO.replace("running", state))
                }
                _ => reply(500, "unexpected"),
            },
        )
    };
    let jupyter = Fake::start(|_, _| reply(200, r#"{"default":"python3","kernelspecs":{}}"#));
    let config = config(&api).sandbox_url(jupyter.url());
    let backend =
        E2bBackend::connect(&config, "sbx1", &ConnectOptions::new(), &timeouts()).unwrap();
    let connects = || {
        api.seen()
            .iter()
            .filter(|r| r.path.ends_with("/connect"))
            .count()
    };

    assert!(
        backend
            .pause(&PauseOptions::new().mode(PauseMode::Full))
            .unwrap()
    );
    assert!(
        !backend.pause(&PauseOptions::new()).unwrap(),
        "already paused is success"
    );
    assert_eq!(api.seen()[1].body, r#"{"memory":true}"#);
    assert!(matches!(
        backend.ensure_running(),
        Err(Error::SandboxPaused { sandbox_id }) if sandbox_id == "sbx1"
    ));
    assert_eq!(backend.probe(), Liveness::Paused, "paused, not gone");
    assert_eq!(connects(), 1, "nothing resumed it");

    backend.set_auto_resume(true);
    backend.ensure_running().unwrap();
    assert_eq!(connects(), 2, "resumed through connect");
    assert_eq!(backend.probe(), Liveness::Alive);

    // Paused by someone else: found by the probe after a lost connection, and resumed.
    paused.store(true, Ordering::SeqCst);
    assert_eq!(backend.probe(), Liveness::Alive);
    assert_eq!(connects(), 3);
    assert!(!paused.load(Ordering::SeqCst));
}

/// `get_host` as E2B's SDKs: `{port}-{id}.{domain}`, the domain being the configured one when
/// the control plane names none; `localhost:{port}` in debug mode.
#[test]
fn get_host_names_the_port_under_the_sandbox_domain() {
    let (api, jupyter) = cloud(0);
    let config = config(&api)
        .sandbox_url(jupyter.url())
        .domain("example.org");
    let backend =
        E2bBackend::connect(&config, "sbx1", &ConnectOptions::new(), &timeouts()).unwrap();
    assert_eq!(backend.host(3000), "3000-sbx1.example.org");
    backend.shutdown().unwrap();
    let debug = E2bConfig::default().debug(true).sandbox_url(jupyter.url());
    let backend =
        E2bBackend::connect(&debug, "ignored", &ConnectOptions::new(), &timeouts()).unwrap();
    assert_eq!(backend.host(3000), "localhost:3000");
}

/// One result per fork, each error mapped as an answer of its code would be; a paused sandbox
/// that can only be rebooted is `GuestUnresponsive`.
#[test]
fn fork_results_and_resume_refusals_are_typed() {
    let fake = Fake::start(|req, _| match req.path.as_str() {
        "/sandboxes/sbx1/fork" => reply(
            201,
            &format!(
                r#"[{{"sandbox":{CREATED}}},{{"error":{{"code":429,"message":"too many"}}}},
                   {{"error":{{"code":503,"message":"no capacity"}}}},{{"error":{{"code":-1,"message":"odd"}}}},{{}}]"#
            ),
        ),
        "/v2/sandboxes/wedged/connect" => reply(
            409,
            r#"{"code":409,"message":"guest agent unresponsive at pause","error_code":"sandbox_snapshot_guest_agent_unresponsive"}"#,
        ),
        "/v2/sandboxes/moving/connect" => {
            reply(409, r#"{"code":409,"message":"still transitioning"}"#)
        }
        _ => reply(500, "unexpected"),
    });
    let client = E2bClient::new(&config(&fake)).unwrap();
    let forks = client.fork("sbx1", &ForkOptions::new().count(5)).unwrap();
    assert_eq!(fake.seen()[0].body, r#"{"count":5}"#);
    assert_eq!(forks.len(), 5);
    assert!(matches!(&forks[0], Ok(a) if a.sandbox_id == "sbx1"));
    assert!(matches!(&forks[1], Err(Error::RateLimited { .. })));
    assert!(
        matches!(&forks[2], Err(Error::ServiceBusy { message, .. }) if message == "no capacity")
    );
    assert!(matches!(&forks[3], Err(Error::Protocol { .. })));
    assert!(matches!(&forks[4], Err(Error::Protocol { .. })));
    assert!(matches!(
        client.fork("sbx1", &ForkOptions::new().count(21)),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        client.connect("wedged", &ConnectOptions::new()),
        Err(Error::GuestUnresponsive { sandbox_id }) if sandbox_id == "wedged"
    ));
    assert!(matches!(
        client.connect("moving", &ConnectOptions::new()),
        Err(Error::Http { status: 409, .. })
    ));
}

/// The same paginator serves sandboxes and snapshots: pages follow `X-Next-Token` lazily.
#[test]
fn paginators_follow_tokens_lazily() {
    let fake = Fake::start(|req, _| {
        let token = req.path.split("nextToken=").nth(1).unwrap_or("");
        let next = match token {
            "" => Some("p2"),
            _ => None,
        };
        let headers = next
            .map(|t| vec![("X-Next-Token", t.to_string())])
            .unwrap_or_default();
        let body = if req.path.starts_with("/snapshots") {
            format!(
                r#"[{{"snapshotID":"snap-{token}:default","names":["team/snap-{token}:default"]}}]"#
            )
        } else {
            format!("[{INFO}]")
        };
        Some((200, headers, body))
    });
    let client = E2bClient::new(&config(&fake)).unwrap();
    let mut snapshots = client.list_snapshots(&SnapshotQuery::new().name("snap"));
    assert!(
        fake.seen().is_empty(),
        "nothing fetched before it is iterated"
    );
    let ids: Vec<String> = snapshots.by_ref().map(|s| s.unwrap().snapshot_id).collect();
    assert_eq!(ids, ["snap-:default", "snap-p2:default"]);
    assert!(!snapshots.has_next());
    let paths: Vec<String> = fake.seen().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        ["/snapshots?name=snap", "/snapshots?name=snap&nextToken=p2"]
    );
    let sandboxes: Vec<SandboxInfo> = client
        .list_paged(&ListQuery::new().order(Order::Descending))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(sandboxes.len(), 2);
}
