//! The "raw" reference client: tungstenite over a blocking socket with the same latency
//! options as the SDK (TCP_NODELAY, TCP_QUICKACK before each read, v1 binary framing), and no
//! parsing beyond what tells it when a request is done: it reads the small parent-header part
//! of each frame, never the content. It defines the raw socket read rate of the streaming test
//! and the websocket floor of the round trip.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use tungstenite::client::IntoClientRequest;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use crate::util::Res;

const V1: &str = "v1.kernel.websocket.jupyter.org";

pub struct Raw {
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    tcp: TcpStream,
    session: String,
    pub store_history: bool,
    /// Put an ISO-8601 `date` in request headers (jupyter_client and the SDK do).
    pub date: bool,
    /// Also decode every stream message's content and keep its text until the execution ends
    /// (the work the SDK must do for its `Execution`), on this one thread.
    pub parse: bool,
}

/// What one execution delivered.
#[derive(Default, Debug)]
pub struct Done {
    pub stream_bytes: usize,
    pub stream_messages: usize,
}

#[derive(Deserialize)]
struct Parent {
    #[serde(default)]
    msg_id: Option<String>,
}

#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    msg_type: String,
}

impl Raw {
    pub fn connect(url: &str, token: &str, kernel: &str) -> Res<Raw> {
        let session = uuid::Uuid::new_v4().simple().to_string();
        let url = format!(
            "{}/api/kernels/{kernel}/channels?session_id={session}",
            url.replacen("http", "ws", 1)
        );
        let mut req = url.into_client_request()?;
        req.headers_mut()
            .insert("Authorization", format!("token {token}").parse()?);
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", V1.parse()?);
        let host = req
            .uri()
            .authority()
            .map(|a| a.to_string())
            .ok_or("no host")?;
        let tcp = TcpStream::connect(host)?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(Duration::from_secs(120)))?;
        tcp.set_write_timeout(Some(Duration::from_secs(30)))?;
        let raw = tcp.try_clone()?;
        let (ws, _) = tungstenite::client_tls_with_config(req, tcp, None, None)?;
        Ok(Raw {
            ws,
            tcp: raw,
            session,
            store_history: true,
            date: false,
            parse: false,
        })
    }

    /// Installs the SDK's output-numbering hook (src/kernel/hook.py) the way the SDK does,
    /// so the raw client's kernel does the same kernel-side work as ours.
    pub fn install_hook(&mut self) -> Res<()> {
        let source = Value::String(include_str!("../../src/kernel/hook.py").to_string());
        let code = format!(
            "exec({source}, {{'get_ipython': get_ipython, '__name__': '__e2b_hook_install'}})"
        );
        self.execute_with(&code, true, |_| {})?;
        Ok(())
    }

    pub fn execute(&mut self, code: &str) -> Res<Done> {
        self.execute_with(code, false, |_| {})
    }

    pub fn execute_with(
        &mut self,
        code: &str,
        silent: bool,
        mut on_stream: impl FnMut(usize),
    ) -> Res<Done> {
        let msg_id = uuid::Uuid::new_v4().simple().to_string();
        let mut header = json!({"msg_id": msg_id, "msg_type": "execute_request",
            "session": self.session, "username": "raw", "version": "5.3"});
        if self.date {
            header["date"] = json!("2026-01-01T00:00:00.000000Z");
        }
        let content = json!({"code": code, "silent": silent,
            "store_history": self.store_history && !silent,
            "user_expressions": {}, "allow_stdin": false, "stop_on_error": true});
        self.ws.send(Message::Binary(
            encode_v1("shell", &header, &content).into(),
        ))?;
        let deadline = Instant::now() + Duration::from_secs(300);
        let (mut replied, mut idle) = (false, false);
        let mut done = Done::default();
        let mut kept: Vec<String> = Vec::new();
        while !(replied && idle) {
            if Instant::now() > deadline {
                return Err("raw execute timed out".into());
            }
            let _ = socket2::SockRef::from(&self.tcp).set_tcp_quickack(true);
            let Message::Binary(frame) = self.ws.read()? else {
                continue;
            };
            let parts = split_v1(&frame).ok_or("bad v1 frame")?;
            let parent: Parent = serde_json::from_slice(parts[2])?;
            if parent.msg_id.as_deref() != Some(msg_id.as_str()) {
                continue;
            }
            let hdr: Header = serde_json::from_slice(parts[1])?;
            match hdr.msg_type.as_str() {
                "stream" => {
                    if self.parse {
                        let mut c: Value = serde_json::from_slice(parts[4])?;
                        if let Value::String(s) = c["text"].take() {
                            kept.push(s);
                        }
                    }
                    done.stream_bytes += parts[4].len();
                    done.stream_messages += 1;
                    on_stream(parts[4].len());
                }
                "execute_reply" => replied = true,
                "status" => {
                    // A status content is a few bytes; only here is content looked at.
                    let c: Value = serde_json::from_slice(parts[4])?;
                    idle |= c["execution_state"] == "idle";
                }
                _ => {}
            }
        }
        Ok(done)
    }

    pub fn close(mut self) {
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
    }
}

fn encode_v1(channel: &str, header: &Value, content: &Value) -> Vec<u8> {
    let parts: [Vec<u8>; 5] = [
        channel.as_bytes().to_vec(),
        header.to_string().into_bytes(),
        b"{}".to_vec(),
        b"{}".to_vec(),
        content.to_string().into_bytes(),
    ];
    let count = parts.len() + 1;
    let mut at = 8 * (1 + count);
    let mut out = Vec::new();
    out.extend_from_slice(&(count as u64).to_le_bytes());
    for p in &parts {
        out.extend_from_slice(&(at as u64).to_le_bytes());
        at += p.len();
    }
    out.extend_from_slice(&(at as u64).to_le_bytes());
    for p in parts {
        out.extend_from_slice(&p);
    }
    out
}

/// channel, header, parent, metadata, content.
fn split_v1(f: &[u8]) -> Option<[&[u8]; 5]> {
    let u = |i: usize| -> Option<usize> {
        Some(u64::from_le_bytes(f.get(8 * i..8 * i + 8)?.try_into().ok()?) as usize)
    };
    let count = u(0)?;
    if count < 6 {
        return None;
    }
    let o: Vec<usize> = (1..=count).map(u).collect::<Option<_>>()?;
    if o.windows(2).any(|w| w[0] > w[1]) || *o.last()? > f.len() {
        return None;
    }
    let p = |i: usize| &f[o[i]..o[i + 1]];
    Some([p(0), p(1), p(2), p(3), p(4)])
}
