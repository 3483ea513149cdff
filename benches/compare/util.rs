//! Small helpers shared by the orchestrator and the child measurements: percentiles, /proc
//! readings, child processes with deadlines, and a few Jupyter REST calls.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub type Res<T> = Result<T, Box<dyn std::error::Error>>;

pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e3 * 1e4).round() / 1e4
}

/// Nearest-rank percentile (the definition bench/peers/peers.py uses).
pub fn pct(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let k = ((p / 100.0 * s.len() as f64).ceil() as usize).max(1);
    s[k - 1]
}

/// The p50/p90/p99/min/max/mean keys peers.py emits, for one sample list.
pub fn summary(samples: &[f64], prefix: &str) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    if samples.is_empty() {
        return m;
    }
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
    let max = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    for (k, v) in [
        ("p50_ms", pct(samples, 50.0)),
        ("p90_ms", pct(samples, 90.0)),
        ("p99_ms", pct(samples, 99.0)),
        ("min_ms", min),
        ("max_ms", max),
        ("mean_ms", mean),
    ] {
        m.insert(format!("{prefix}{k}"), Value::from(v));
    }
    m
}

/// A numeric field of /proc/self/status (`VmRSS`, `VmHWM` in KiB; `Threads`).
pub fn proc_status(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Runs a command to completion within `limit`, killing it on expiry. Stdout is returned;
/// stderr goes to `log` (appended).
pub fn run_with_deadline(cmd: &mut Command, limit: Duration, log: &Path) -> Res<(bool, String)> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file))
        .spawn()?;
    let mut stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = reader.join().unwrap_or_default();
    match status {
        None => Err(format!("{cmd:?} did not finish within {limit:?}").into()),
        Some(st) => Ok((st.success(), out)),
    }
}

/// The last line of `out` that parses as a JSON object.
pub fn last_json(out: &str) -> Option<Value> {
    out.lines().rev().find_map(|l| {
        serde_json::from_str::<Value>(l.trim())
            .ok()
            .filter(Value::is_object)
    })
}

/// Minimal Jupyter REST for the orchestrator: start and delete kernels.
#[derive(Clone)]
pub struct Rest {
    agent: ureq::Agent,
    base: String,
    auth: String,
}

impl Rest {
    pub fn new(base: &str, token: &str) -> Rest {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build()
            .into();
        Rest {
            agent,
            base: base.trim_end_matches('/').to_string(),
            auth: format!("token {token}"),
        }
    }

    pub fn start_kernel(&self) -> Res<String> {
        let mut resp = self
            .agent
            .post(format!("{}/api/kernels", self.base))
            .header("Authorization", &self.auth)
            .content_type("application/json")
            .send(r#"{"name":"python3"}"#)?;
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string()?;
        if status != 201 {
            return Err(format!("POST /api/kernels: {status} {body}").into());
        }
        let v: Value = serde_json::from_str(&body)?;
        Ok(v["id"].as_str().ok_or("no kernel id")?.to_string())
    }

    pub fn delete_kernel(&self, id: &str) {
        let _ = self
            .agent
            .delete(format!("{}/api/kernels/{id}", self.base))
            .header("Authorization", &self.auth)
            .call();
    }
}

/// CPU time (ns) used so far by every thread of `pid` (`/proc/PID/task/*/schedstat`).
pub fn cpu_ns(pid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    dir.flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// The jupyter_server's pid, which the orchestrator passes in E2B_BENCH_SERVER_PID.
pub fn server_pid() -> Option<u32> {
    std::env::var("E2B_BENCH_SERVER_PID").ok()?.parse().ok()
}

/// The process running kernel `id` (its argv names `kernel-<id>.json`) and its parent, the
/// jupyter_server.
pub fn kernel_and_server_pid(id: &str) -> Option<(u32, u32)> {
    let needle = format!("kernel-{id}.json");
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmd).contains(&needle) {
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            return Some((pid, ppid));
        }
    }
    None
}
