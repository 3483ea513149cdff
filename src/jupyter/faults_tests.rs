//! The connection worker against a scripted websocket server that sends what a real Jupyter
//! server never does: malformed JSON, binary garbage, oversize and unknown messages, abrupt
//! closes. Every outcome must be a typed error or a normal reply, never a panic or a hang.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

use crate::config::{ConnectionConfig, ReconnectPolicy, Secret};
use crate::error::Error;
use crate::jupyter::connection::Connection;
use crate::jupyter::delivery::{Delivery, Failure};
use crate::jupyter::liveness::{Liveness, SandboxProbe};
use crate::jupyter::websocket::Target;
use crate::jupyter::wire::Outgoing;
use crate::net::Endpoint;

/// A sandbox that is always there.
#[derive(Debug)]
struct FakeBackend;

impl SandboxProbe for FakeBackend {
    fn sandbox_id(&self) -> &str {
        "fake"
    }

    fn probe(&self) -> Liveness {
        Liveness::Alive
    }
}

/// Serves one websocket connection with `script`. Like a server without the v1 subprotocol,
/// it does not echo the client's offer, so the client reconnects without it and speaks legacy
/// JSON; the script runs on that second connection.
fn serve(script: impl FnOnce(WebSocket<TcpStream>) + Send + 'static) -> (u16, JoinHandle<()>) {
    use tungstenite::handshake::server::{Request, Response};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        loop {
            let (tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut offered_v1 = false;
            #[allow(clippy::result_large_err)] // the error type is tungstenite's
            let callback = |req: &Request, resp: Response| {
                offered_v1 = req.headers().contains_key("Sec-WebSocket-Protocol");
                Ok(resp)
            };
            let Ok(ws) = tungstenite::accept_hdr(tcp, callback) else {
                continue;
            };
            if !offered_v1 {
                script(ws);
                return;
            }
        }
    });
    (port, handle)
}

fn open(port: u16, config: ConnectionConfig) -> Connection {
    let endpoint = Endpoint::new(&format!("http://127.0.0.1:{port}"))
        .unwrap()
        .with_jupyter_token(&Secret::new("t"));
    let target = Target {
        endpoint: endpoint.clone(),
        kernel_id: "k1".into(),
        session_id: "s1".into(),
    };
    Connection::open(target, config, Arc::new(FakeBackend)).unwrap()
}

fn no_reconnect() -> ConnectionConfig {
    ConnectionConfig::default().reconnect(ReconnectPolicy::disabled())
}

/// The request the client sent: its msg_id.
fn read_request(ws: &mut WebSocket<TcpStream>) -> String {
    loop {
        if let Message::Text(t) = ws.read().unwrap() {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            return v["header"]["msg_id"].as_str().unwrap().to_string();
        }
    }
}

fn reply(parent: &str, channel: &str, msg_type: &str, content: Value) -> Message {
    let msg = json!({
        "header": {"msg_id": uuid::Uuid::new_v4().to_string(), "msg_type": msg_type},
        "parent_header": {"msg_id": parent, "msg_type": "execute_request"},
        "metadata": {}, "content": content, "channel": channel, "buffers": [],
    });
    Message::Text(msg.to_string().into())
}

fn next(rx: &crossbeam_channel::Receiver<Delivery>) -> Delivery {
    rx.recv_timeout(Duration::from_secs(10))
        .expect("a delivery within the deadline")
}

fn expect_failure(rx: &crossbeam_channel::Receiver<Delivery>) -> Failure {
    loop {
        match next(rx) {
            Delivery::Failed(f) => return f,
            Delivery::Message(_) | Delivery::Reconnected { .. } => {}
        }
    }
}

#[test]
fn without_binary_framing_the_handshake_offers_no_subprotocol() {
    use tungstenite::handshake::server::{Request, Response};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let mut offered = None;
        #[allow(clippy::result_large_err)] // the error type is tungstenite's
        let callback = |req: &Request, resp: Response| {
            offered = Some(req.headers().get("Sec-WebSocket-Protocol").cloned());
            Ok(resp)
        };
        let ws = tungstenite::accept_hdr(tcp, callback).unwrap();
        (offered, ws)
    });
    let conn = open(port, no_reconnect().binary_framing(false));
    let (offered, _ws) = server.join().unwrap();
    assert_eq!(offered, Some(None), "the client offered a subprotocol");
    drop(conn);
}

#[test]
fn malformed_json_fails_the_pending_request_with_a_protocol_error() {
    let (port, server) = serve(|mut ws| {
        let id = read_request(&mut ws);
        ws.send(reply(
            &id,
            "iopub",
            "status",
            json!({"execution_state": "busy"}),
        ))
        .unwrap();
        ws.send(Message::Text("{\"header\": {\"msg_id\": ".into()))
            .unwrap();
        // Still serving: a later request gets a normal answer.
        let id = read_request(&mut ws);
        ws.send(reply(
            &id,
            "shell",
            "execute_reply",
            json!({"status": "ok"}),
        ))
        .unwrap();
        ws.send(reply(
            &id,
            "iopub",
            "status",
            json!({"execution_state": "idle"}),
        ))
        .unwrap();
        let _ = ws.read();
    });
    let conn = open(port, no_reconnect());
    let rx = conn.send(Outgoing::execute("s1", "1", false)).unwrap();
    assert!(matches!(next(&rx), Delivery::Message(_)));
    let f = expect_failure(&rx);
    assert!(matches!(f.to_error(), Error::Protocol { .. }), "{f:?}");

    let rx = conn.send(Outgoing::execute("s1", "2", false)).unwrap();
    let mut types = Vec::new();
    while types.len() < 2 {
        match next(&rx) {
            Delivery::Message(m) => types.push(m.msg_type),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(types, ["execute_reply", "status"]);
    drop(conn);
    server.join().unwrap();
}

#[test]
fn binary_garbage_and_unknown_types_do_not_hang_or_panic() {
    let (port, server) = serve(|mut ws| {
        let id = read_request(&mut ws);
        ws.send(reply(
            &id,
            "iopub",
            "comm_open_from_the_future",
            json!({"x": 1}),
        ))
        .unwrap();
        ws.send(Message::Binary(vec![0xff; 37].into())).unwrap();
        let _ = ws.read();
    });
    let conn = open(port, no_reconnect());
    let rx = conn.send(Outgoing::execute("s1", "1", false)).unwrap();
    match next(&rx) {
        Delivery::Message(m) => assert_eq!(m.msg_type, "comm_open_from_the_future"),
        other => panic!("unexpected {other:?}"),
    }
    let f = expect_failure(&rx);
    assert!(matches!(f.to_error(), Error::Protocol { .. }), "{f:?}");
    drop(conn);
    server.join().unwrap();
}

#[test]
fn an_oversize_message_is_a_protocol_error() {
    let (port, server) = serve(|mut ws| {
        let id = read_request(&mut ws);
        let big = "x".repeat(64 * 1024);
        let _ = ws.send(reply(
            &id,
            "iopub",
            "stream",
            json!({"name": "stdout", "text": big}),
        ));
        let _ = ws.read();
    });
    let conn = open(port, no_reconnect().max_message_size(16 * 1024));
    let rx = conn.send(Outgoing::execute("s1", "1", false)).unwrap();
    let f = expect_failure(&rx);
    match f.to_error() {
        Error::Protocol { message, .. } => assert!(message.contains("size limit"), "{message}"),
        other => panic!("unexpected {other:?}"),
    }
    drop(conn);
    server.join().unwrap();
}

#[test]
fn an_abrupt_close_mid_frame_ends_pending_requests_when_reconnecting_is_off() {
    let (port, server) = serve(|mut ws| {
        let _ = read_request(&mut ws);
        // Half a frame header claiming 1000 bytes, then a hard close.
        let tcp = ws.get_mut();
        use std::io::Write;
        let _ = tcp.write_all(&[0x81, 0x7e, 0x03, 0xe8, b'{', b'"']);
        let _ = tcp.shutdown(std::net::Shutdown::Both);
    });
    let conn = open(port, no_reconnect());
    let rx = conn.send(Outgoing::execute("s1", "1", false)).unwrap();
    let f = expect_failure(&rx);
    assert!(
        matches!(f.to_error(), Error::ConnectionLost { .. }),
        "{f:?}"
    );
    // Later calls fail at once with the same error.
    let err = conn.send(Outgoing::execute("s1", "2", false)).unwrap_err();
    assert!(matches!(err, Error::ConnectionLost { .. }), "{err:?}");
    server.join().unwrap();
}

#[test]
fn a_close_frame_is_noticed_at_once() {
    let (port, server) = serve(|mut ws| {
        let _ = read_request(&mut ws);
        let _ = ws.close(None);
        let _ = ws.flush();
        for _ in 0..10 {
            if ws.read().is_err() {
                break;
            }
        }
    });
    let conn = open(port, no_reconnect());
    let rx = conn.send(Outgoing::execute("s1", "1", false)).unwrap();
    let f = expect_failure(&rx);
    assert!(
        matches!(f.to_error(), Error::ConnectionLost { .. }),
        "{f:?}"
    );
    server.join().unwrap();
}

#[test]
fn server_pings_are_answered_while_the_caller_is_idle() {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let (port, server) = serve(move |mut ws| {
        ws.send(Message::Ping(b"are you there".to_vec().into()))
            .unwrap();
        let answer = loop {
            match ws.read() {
                Ok(Message::Pong(p)) => break Some(p.to_vec()),
                Ok(_) => {}
                Err(_) => break None,
            }
        };
        let _ = tx.send(answer);
    });
    let conn = open(port, no_reconnect());
    // No call is made: the worker alone must answer.
    let answer = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(answer.as_deref(), Some(&b"are you there"[..]));
    drop(conn);
    server.join().unwrap();
}
