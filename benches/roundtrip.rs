//! Round trip of `run_code("1")` through the SDK, beside a plain blocking websocket client
//! (TCP_NODELAY, no TCP_QUICKACK) doing the same exchange with the same kernel, in one run.
//!
//! `cargo bench --bench roundtrip` prints p50/p99 of each and their ratio.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use e2b_blocking::Sandbox;
use serde_json::{Value, json};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

const WARMUP: usize = 20;
const ITERATIONS: usize = 200;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sbx = Sandbox::local()?;
    let kernel = sbx.list_contexts()?.remove(0).id;

    let ours = measure(|| sbx.run_code("1").map(drop).map_err(|e| e.to_string()))?;

    let mut plain = PlainClient::connect(&sbx, &kernel)?;
    let theirs = measure(|| plain.execute("1"))?;

    println!(
        "run_code(\"1\") round trip, {ITERATIONS} iterations after {WARMUP} warm-up, same kernel:"
    );
    println!("{:<34} {:>9} {:>9}", "client", "p50 ms", "p99 ms");
    report("e2b-blocking (quickack, v1 framing)", &ours);
    report("plain websocket (nodelay only)", &theirs);
    println!(
        "ratio ours/plain: p50 {:.2}, p99 {:.2}",
        pct(&ours, 0.50) / pct(&theirs, 0.50),
        pct(&ours, 0.99) / pct(&theirs, 0.99)
    );
    Ok(())
}

fn measure(mut f: impl FnMut() -> Result<(), String>) -> Result<Vec<f64>, String> {
    for _ in 0..WARMUP {
        f()?;
    }
    let mut samples = Vec::with_capacity(ITERATIONS);
    for _ in 0..ITERATIONS {
        let t = Instant::now();
        f()?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    samples.sort_by(f64::total_cmp);
    Ok(samples)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(name: &str, s: &[f64]) {
    println!("{name:<34} {:>9.2} {:>9.2}", pct(s, 0.50), pct(s, 0.99));
}

/// What a straightforward synchronous client does: legacy JSON frames over a blocking socket.
struct PlainClient {
    ws: WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    session: String,
}

impl PlainClient {
    fn connect(sbx: &Sandbox, kernel: &str) -> Result<PlainClient, Box<dyn std::error::Error>> {
        let session = uuid::Uuid::new_v4().simple().to_string();
        let url = format!(
            "{}/api/kernels/{kernel}/channels?session_id={session}",
            sbx.jupyter_url().replacen("http", "ws", 1)
        );
        let mut req = url.into_client_request()?;
        for (name, value) in sbx.jupyter_headers() {
            req.headers_mut().insert(
                tungstenite::http::HeaderName::from_bytes(name.as_bytes())?,
                value.expose_secret().parse()?,
            );
        }
        let host = req
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let tcp = TcpStream::connect(host)?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
        let (ws, _) = tungstenite::client_tls(req, tcp)?;
        Ok(PlainClient { ws, session })
    }

    fn execute(&mut self, code: &str) -> Result<(), String> {
        let msg_id = uuid::Uuid::new_v4().simple().to_string();
        let msg = json!({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "session": self.session,
                       "username": "bench", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": false, "store_history": false,
                        "user_expressions": {}, "allow_stdin": false},
        });
        self.ws
            .send(Message::Text(msg.to_string().into()))
            .map_err(|e| e.to_string())?;
        let (mut replied, mut idle) = (false, false);
        while !(replied && idle) {
            let frame = self.ws.read().map_err(|e| e.to_string())?;
            let Message::Text(t) = frame else { continue };
            let v: Value = serde_json::from_str(t.as_str()).map_err(|e| e.to_string())?;
            if v["parent_header"]["msg_id"] != msg_id.as_str() {
                continue;
            }
            replied |= v["msg_type"] == "execute_reply";
            idle |= v["msg_type"] == "status" && v["content"]["execution_state"] == "idle";
        }
        Ok(())
    }
}
