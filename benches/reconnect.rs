//! Reconnect latency: a fault proxy cuts the kernel websocket; how long until the connection is
//! usable again. Beside it, in the same run, E2B's Python SDK policy: a uniform 0–200 ms wait
//! before each retry, then the same handshake.
//!
//! `cargo bench --bench reconnect` (200 cuts each by default; `E2B_BENCH_CUTS` overrides).

#[path = "../tests/support/fault_proxy.rs"]
mod fault_proxy;

use std::time::{Duration, Instant};

use e2b_blocking::{ConnectionState, Sandbox};
use fault_proxy::FaultProxy;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cuts: usize = std::env::var("E2B_BENCH_CUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let owner = Sandbox::local()?;
    let token = owner
        .jupyter_headers()
        .into_iter()
        .find_map(|(n, v)| {
            (n == "Authorization")
                .then(|| v.expose_secret().trim_start_matches("token ").to_string())
        })
        .unwrap_or_default();
    let target = owner.jupyter_url().trim_start_matches("http://").parse()?;
    let proxy = FaultProxy::start(target)?;
    let sbx = Sandbox::jupyter(&format!("http://{}", proxy.addr()), token.as_str())?;
    let states = sbx.watch_connection()?;
    sbx.run_code("1")?;

    let mut usable = Vec::with_capacity(cuts);
    let mut first_result = Vec::with_capacity(cuts);
    for _ in 0..cuts {
        while states.try_recv().is_ok() {}
        let t0 = Instant::now();
        proxy.cut_all();
        // Wait for the worker to notice the cut and come back.
        let mut saw_break = false;
        loop {
            match states.recv_timeout(Duration::from_secs(10))? {
                ConnectionState::Reconnecting { .. } => saw_break = true,
                ConnectionState::Connected if saw_break => break,
                ConnectionState::Closed { reason } => {
                    return Err(format!("closed: {reason:?}").into());
                }
                _ => {}
            }
        }
        usable.push(ms(t0.elapsed()));
        sbx.run_code("1")?;
        first_result.push(ms(t0.elapsed()));
    }

    // E2B's policy: sleep U(0, 200 ms), then a fresh handshake of the same kind.
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let kernel = sbx.list_contexts()?.remove(0).id;
    let url = format!(
        "ws://{}/api/kernels/{kernel}/channels?session_id=e2b-policy",
        proxy.addr()
    );
    let mut e2b = Vec::with_capacity(cuts);
    for _ in 0..cuts {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let wait = Duration::from_micros(rng % 200_000);
        let t0 = Instant::now();
        std::thread::sleep(wait);
        let mut req = tungstenite::client::IntoClientRequest::into_client_request(url.as_str())?;
        req.headers_mut()
            .insert("Authorization", format!("token {token}").parse()?);
        let (mut ws, _) = tungstenite::connect(req)?;
        e2b.push(ms(t0.elapsed()));
        let _ = ws.close(None);
    }

    for v in [&mut usable, &mut first_result, &mut e2b] {
        v.sort_by(f64::total_cmp);
    }
    println!("reconnect latency over {cuts} cuts through a fault proxy (loopback):");
    println!("{:<46} {:>8} {:>8} {:>8}", "", "p50 ms", "p99 ms", "max ms");
    row("e2b-blocking: cut -> connected", &usable);
    row("e2b-blocking: cut -> next run_code done", &first_result);
    row("E2B policy U(0,200ms) + handshake", &e2b);
    println!(
        "ratio ours/E2B policy (cut -> connected): p50 {:.3}, p99 {:.3}",
        pct(&usable, 0.5) / pct(&e2b, 0.5),
        pct(&usable, 0.99) / pct(&e2b, 0.99)
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn row(name: &str, s: &[f64]) {
    println!(
        "{name:<46} {:>8.2} {:>8.2} {:>8.2}",
        pct(s, 0.5),
        pct(s, 0.99),
        s[s.len() - 1]
    );
}
