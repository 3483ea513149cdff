//! Turns the per-round JSON of every client into docs/PERFORMANCE.md tables and the chart spec.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::util::{Res, pct};
use crate::{
    BASELINE, E2B, LOCAL_ISOLATED, LOCAL_NONE, LOCAL_SPARE, OURS, OURS_ENV, OURS_JSON, OURS_LOCAL,
    RAW_BARE, RAW_HOOK, RAW_PARSE, Results, SCALE_SIZES, WSC, WSC_FAST, ZMQ,
};

pub struct Machine {
    pub nproc: usize,
    pub loadavg: String,
    cpu: String,
    mem: String,
    kernel: String,
    date: String,
    commit: String,
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn cmd_out(prog: &str, args: &[&str], dir: &Path) -> String {
    Command::new(prog)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into())
}

impl Machine {
    pub fn collect(repo: &Path) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
            .unwrap_or("?")
            .trim()
            .to_string();
        let mem = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                let kib: f64 = s.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
                Some(format!("{:.1} GiB", kib / 1024.0 / 1024.0))
            })
            .unwrap_or_else(|| "?".into());
        let dirty = !cmd_out(
            "git",
            &["status", "--porcelain", "--untracked-files=no"],
            repo,
        )
        .is_empty();
        Machine {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            loadavg: loadavg(),
            cpu,
            mem,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            date: cmd_out("date", &["-u", "+%Y-%m-%d %H:%M UTC"], repo),
            commit: format!(
                "{}{}",
                cmd_out("git", &["rev-parse", "--short", "HEAD"], repo),
                if dirty {
                    " (with uncommitted changes)"
                } else {
                    ""
                }
            ),
        }
    }
}

pub struct Report<'a> {
    pub machine: Machine,
    pub load_end: String,
    pub elapsed: Duration,
    pub quick: bool,
    pub results: &'a Results,
}

fn runs<'a>(r: &'a Results, m: &str, c: &str) -> &'a [Value] {
    r.get(m)
        .and_then(|x| x.get(c))
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn ok_runs<'a>(r: &'a Results, m: &str, c: &str) -> Vec<&'a Value> {
    runs(r, m, c)
        .iter()
        .filter(|v| v.get("error").is_none() && v.get("unsupported").is_none())
        .collect()
}

/// Samples under `key`, pooled over the rounds.
fn pooled(r: &Results, m: &str, c: &str, key: &str) -> Vec<f64> {
    ok_runs(r, m, c)
        .iter()
        .flat_map(|v| v[key].as_array().cloned().unwrap_or_default())
        .filter_map(|x| x.as_f64())
        .collect()
}

/// One number per round.
fn per_round(r: &Results, m: &str, c: &str, f: impl Fn(&Value) -> Option<f64>) -> Vec<f64> {
    ok_runs(r, m, c).iter().filter_map(|v| f(v)).collect()
}

fn stream_growth_mib(v: &Value) -> Option<f64> {
    Some((v["peak_rss_kib"].as_f64()? - v["rss_before_kib"].as_f64()?) / 1024.0)
}

/// A markdown table's header row and its separator.
fn table_head(s: &mut String, header: &str) {
    let columns = header.matches('|').count().saturating_sub(1);
    let _ = writeln!(s, "{header}\n{}|", "|---".repeat(columns));
}

/// Errors and unsupported notes of a client's runs, as a suffix for its table row ("" if none).
fn problems(r: &Results, m: &str, c: &str) -> String {
    let p: Vec<String> = runs(r, m, c)
        .iter()
        .filter_map(|v| {
            v.get("error")
                .or_else(|| v.get("unsupported"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    if p.is_empty() {
        String::new()
    } else {
        format!(" {}", p.join("; "))
    }
}

fn f(x: f64) -> String {
    if x.is_nan() {
        "n/a".into()
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() || b == 0.0 {
        f64::NAN
    } else {
        a / b
    }
}

/// The middle value, or the mean of the two middle ones: a nearest-rank p50 of an even count
/// is its lower middle, which took the worse of two rounds' throughput ratios and the better
/// of two latency ratios.
fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn range(v: &[f64]) -> String {
    if v.is_empty() {
        return "n/a".into();
    }
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{}–{}", f(lo), f(hi))
}

impl Report<'_> {
    fn p(&self, m: &str, c: &str, key: &str, q: f64) -> f64 {
        pct(&pooled(self.results, m, c, key), q)
    }

    fn scalar(&self, m: &str, c: &str, key: &str) -> f64 {
        median(&per_round(self.results, m, c, |v| v[key].as_f64()))
    }

    /// Median over rounds of f(ours in round r) / f(peer in round r). The clients of one round
    /// run back to back, so this cancels load that drifts from round to round.
    fn paired(&self, m: &str, peer: &str, f: impl Fn(&Value) -> Option<f64>) -> f64 {
        self.paired_of(m, OURS, peer, f)
    }

    /// [`Report::paired`] with another client than ours as the numerator.
    fn paired_of(&self, m: &str, of: &str, peer: &str, f: impl Fn(&Value) -> Option<f64>) -> f64 {
        let ok = |v: &&Value| v.get("error").is_none() && v.get("unsupported").is_none();
        let a = runs(self.results, m, of);
        let b = runs(self.results, m, peer);
        let v: Vec<f64> = a
            .iter()
            .zip(b)
            .filter(|(x, y)| ok(x) && ok(y))
            .filter_map(|(x, y)| Some(f(x)? / f(y)?))
            .collect();
        median(&v)
    }

    fn stream_rate(&self, c: &str) -> f64 {
        median(&pooled(self.results, "stream", c, "mib_per_s"))
    }

    fn stream_growth(&self, c: &str) -> f64 {
        let g = per_round(self.results, "stream", c, stream_growth_mib);
        g.iter().copied().fold(f64::NAN, f64::max)
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        let _ = writeln!(s, "## Latest run\n");
        let _ = writeln!(
            s,
            "- Command: `cargo bench --bench compare`{} (from the repository root).",
            if self.quick {
                " with `E2B_BENCH_QUICK=1`"
            } else {
                ""
            }
        );
        let _ = writeln!(
            s,
            "- {} · commit {} · {} s wall time.",
            m.date,
            m.commit,
            self.elapsed.as_secs()
        );
        let _ = writeln!(
            s,
            "- Machine: nproc {} ({}), {} RAM, Linux {}. Load average (1/5/15 min) at start **{}**, at end {}. Other jobs were running: read ratios, not absolute numbers.",
            m.nproc, m.cpu, m.mem, m.kernel, m.loadavg, self.load_end
        );
        let _ = writeln!(
            s,
            "- One local jupyter_server (`Sandbox::local()`, stock Tornado: Nagle on, IOPub rate limit off), 127.0.0.1 only. Every client runs in its own process on its own fresh kernel; the clients of a measurement take turns, round by round, first one rotating.\n"
        );
        self.ratios(&mut s);
        self.targets(&mut s);
        self.issue_targets(&mut s);
        self.local(&mut s);
        self.proxied(&mut s);
        self.details(&mut s);
        self.scale(&mut s);
        let _ = writeln!(
            s,
            "![latency distributions](perf-latency.png)\n\nRaw samples: `target/compare/results.json`; per-client logs: `target/compare/logs/`."
        );
        s
    }

    /// (6): the local sandbox on its own server, isolated (the default) against
    /// `Isolation::None`; only when that measurement ran.
    fn local(&self, s: &mut String) {
        let r = self.results;
        if runs(r, "local", LOCAL_ISOLATED).is_empty() && runs(r, "local", LOCAL_NONE).is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "### Local sandbox: isolated (default) vs `Isolation::None`\n\n**(6)** Each client process starts its own `Sandbox::local_with(…)` (after one unmeasured start), times start → first `run_code(\"1\")` result over a few starts, then the round trip `run_code(\"1\")` on the last one. Isolated: jupyter_server and kernels inside bubblewrap, reached over a Unix socket. `Isolation::None`: on the host, reached over 127.0.0.1 TCP. Kernels talk to their server over Unix sockets in both. With `warm_spare(true)` each start takes the spare the one before left, after 2 s of \"work\". They take turns, round by round.\n"
        );
        table_head(
            s,
            "| client | round trips | p50 / p99 ms | starts | start → first result p50 / max ms |",
        );
        for c in [LOCAL_ISOLATED, LOCAL_NONE, LOCAL_SPARE] {
            if runs(r, "local", c).is_empty() {
                continue;
            }
            let x = pooled(r, "local", c, "samples_ms");
            let y = pooled(r, "local", c, "first_result_samples_ms");
            let _ = writeln!(
                s,
                "| {c} | {} | {} / {} | {} | {} / {} |{}",
                x.len(),
                f(pct(&x, 50.0)),
                f(pct(&x, 99.0)),
                y.len(),
                f(pct(&y, 50.0)),
                f(pct(&y, 100.0)),
                problems(r, "local", c)
            );
        }
        let q = |c: &str, key: &str, p: f64| pct(&pooled(r, "local", c, key), p);
        let _ = writeln!(
            s,
            "\nRatios isolated / `Isolation::None` (below 1: isolated is faster): round trip p50 **{}**, p99 {}; start → first result p50 **{}**.\n",
            f(ratio(
                q(LOCAL_ISOLATED, "samples_ms", 50.0),
                q(LOCAL_NONE, "samples_ms", 50.0)
            )),
            f(ratio(
                q(LOCAL_ISOLATED, "samples_ms", 99.0),
                q(LOCAL_NONE, "samples_ms", 99.0)
            )),
            f(ratio(
                q(LOCAL_ISOLATED, "first_result_samples_ms", 50.0),
                q(LOCAL_NONE, "first_result_samples_ms", 50.0)
            )),
        );
        // Round by round the two run back to back, so their ratio cancels load that drifts
        // between rounds, which the pooled percentiles above do not.
        let p50_of = |key: &'static str| {
            move |v: &Value| {
                let x: Vec<f64> = v[key]
                    .as_array()?
                    .iter()
                    .filter_map(Value::as_f64)
                    .collect();
                Some(pct(&x, 50.0)).filter(|p| !p.is_nan())
            }
        };
        let rounds = runs(r, "local", LOCAL_ISOLATED).len();
        let _ = writeln!(
            s,
            "Paired by round (median over {rounds} rounds of isolated / `Isolation::None` in the same round): round trip p50 **{}**; start → first result p50 **{}**.\n",
            f(self.paired_of("local", LOCAL_ISOLATED, LOCAL_NONE, p50_of("samples_ms"))),
            f(self.paired_of(
                "local",
                LOCAL_ISOLATED,
                LOCAL_NONE,
                p50_of("first_result_samples_ms")
            )),
        );
    }

    /// (7): round trips through nginx, before and after the server-side fix; only when that
    /// measurement ran.
    fn proxied(&self, s: &mut String) {
        use crate::proxied::{CLIENTS, OURS, PATHS, WSC, key};
        let r = self.results;
        if r.get("nginx").is_none_or(|m| m.is_empty()) {
            return;
        }
        let _ = writeln!(
            s,
            "### Round trip through nginx (TLS)\n\n**(7)** `run_code(\"1\")` (websocket-client: execute `1`, wait for reply and idle) through Debian's nginx with TLS and the usual websocket configuration, in front of a stock jupyter_server and in front of one that loads `server/e2b_nodelay.py` (TCP_NODELAY on its websockets); the stock server direct for reference. Each server has its own nginx; clients take turns.\n"
        );
        table_head(
            s,
            "| path | e2b-blocking p50 / p99 ms | with `ack_nudge(true)` p50 / p99 ms | websocket-client p50 / p99 ms | ours / websocket-client p50 |",
        );
        for path in PATHS {
            let q = |c: &str, p: f64| pct(&pooled(r, "nginx", &key(path, c), "samples_ms"), p);
            let cells: Vec<String> = CLIENTS
                .iter()
                .map(|c| format!("{} / {}", f(q(c, 50.0)), f(q(c, 99.0))))
                .collect();
            let notes: String = CLIENTS
                .iter()
                .map(|c| problems(r, "nginx", &key(path, c)))
                .collect();
            let _ = writeln!(
                s,
                "| {path} | {} | {} | {} | **{}** |{notes}",
                cells[0],
                cells[1],
                cells[2],
                f(ratio(q(OURS, 50.0), q(WSC, 50.0)))
            );
        }
        let _ = writeln!(s);
    }

    fn ratios(&self, s: &mut String) {
        let peers = [ZMQ, WSC, E2B, RAW_HOOK];
        let _ = writeln!(s, "### Ratios: ours / peer\n");
        let _ = writeln!(
            s,
            "Below 1 is better for ours in latency, memory and threads; above 1 is better for ours in throughput.\n"
        );
        table_head(
            s,
            "| measurement | vs zmq (jupyter_client) | vs websocket-client | vs e2b-ws (E2B 0.0.10) | vs raw tungstenite |",
        );
        let row = |s: &mut String, name: &str, vals: [f64; 4]| {
            let cells: Vec<String> = vals
                .iter()
                .map(|&x| {
                    if x.is_nan() {
                        "n/a".into()
                    } else {
                        format!("{x:.2}")
                    }
                })
                .collect();
            let _ = writeln!(s, "| {name} | {} |", cells.join(" | "));
        };
        for (label, q) in [
            ("round trip `run_code(\"1\")` p50", 50.0),
            ("round trip p99", 99.0),
        ] {
            let ours = self.p("roundtrip", OURS, "samples_ms", q);
            row(
                s,
                label,
                peers.map(|c| ratio(ours, self.p("roundtrip", c, "samples_ms", q))),
            );
        }
        let p50 = |v: &Value| v["p50_ms"].as_f64();
        row(
            s,
            "round trip p50, paired by round (median of per-round ratios)",
            peers.map(|c| self.paired("roundtrip", c, p50)),
        );
        let ours = self.stream_rate(OURS);
        let mut v = peers.map(|c| ratio(ours, self.stream_rate(c)));
        let wsc_fast = ratio(ours, self.stream_rate(WSC_FAST));
        row(s, "stream 20 MiB throughput (MiB/s)", v);
        let rate = |v: &Value| v["mib_per_s_p50"].as_f64();
        row(
            s,
            "stream throughput, paired by round",
            peers.map(|c| self.paired("stream", c, rate)),
        );
        let ours = self.stream_growth(OURS);
        v = peers.map(|c| ratio(ours, self.stream_growth(c)));
        row(s, "stream peak client memory growth", v);
        for (label, q) in [
            ("reconnect → first result p50", 50.0),
            ("reconnect → first result p99", 99.0),
        ] {
            let ours = self.p("reconnect", OURS, "samples_ms", q);
            row(
                s,
                label,
                peers.map(|c| ratio(ours, self.p("reconnect", c, "samples_ms", q))),
            );
        }
        let ours = self.p("create", OURS, "samples_ms", 50.0);
        row(
            s,
            "kernel create → first result p50",
            peers.map(|c| ratio(ours, self.p("create", c, "samples_ms", 50.0))),
        );
        for (label, key) in [
            ("32 contexts: cells/s", "cells_per_s"),
            (
                "32 contexts: memory per connection",
                "rss_per_connection_kib",
            ),
            (
                "32 contexts: threads per connection",
                "threads_per_connection",
            ),
        ] {
            let ours = self.scalar("concurrent", OURS, key);
            row(
                s,
                label,
                peers.map(|c| ratio(ours, self.scalar("concurrent", c, key))),
            );
        }
        let _ = writeln!(
            s,
            "\nvs websocket-client with `--skip-utf8-validation`: stream throughput {}.\n",
            f(wsc_fast)
        );
    }

    fn targets(&self, s: &mut String) {
        let _ = writeln!(s, "### Targets\n");
        let _ = writeln!(
            s,
            "Verdicts use the paired ratio (median over rounds of ours / peer within a round), which cancels load drifting between rounds; pooled numbers are shown beside it.\n"
        );
        table_head(s, "| target | measured | verdict |");
        let verdict = |ok: bool, miss: String| {
            if ok {
                "**met**".to_string()
            } else {
                format!("**missed** {miss}")
            }
        };
        let p50 = |v: &Value| v["p50_ms"].as_f64();
        let ours = self.p("roundtrip", OURS, "samples_ms", 50.0);
        let zmq = self.p("roundtrip", ZMQ, "samples_ms", 50.0);
        let r = self.paired("roundtrip", ZMQ, p50);
        let _ = writeln!(
            s,
            "| round trip p50 no slower than ZMQ direct (ratio ≤ 1.0) | paired {r:.2}; pooled {} ms vs {} ms = {:.2} | {} |",
            f(ours),
            f(zmq),
            ratio(ours, zmq),
            verdict(r <= 1.0, format!("by {:.0} %", (r - 1.0) * 100.0))
        );
        let with_env = self.p("roundtrip", OURS_ENV, "samples_ms", 50.0);
        let r = 1.0 / self.paired("roundtrip", OURS_ENV, p50);
        let _ = writeln!(
            s,
            "| a run with one per-execution env var within 1.3× of a plain run (p50) | paired {r:.2}; pooled {} ms vs {} ms = {:.2} | {} |",
            f(with_env),
            f(ours),
            ratio(with_env, ours),
            verdict(r <= 1.3, format!("({r:.2}× instead of 1.3×)"))
        );
        let wsc = self.p("roundtrip", WSC, "samples_ms", 50.0);
        let speed = 1.0 / self.paired("roundtrip", WSC, p50);
        let _ = writeln!(
            s,
            "| round trip ≥ 5× faster than plain websocket-client (p50) | paired {speed:.1}×; pooled {} ms vs {} ms = {:.1}× | {} |",
            f(ours),
            f(wsc),
            ratio(wsc, ours),
            verdict(speed >= 5.0, format!("({speed:.1}× instead of 5×)"))
        );
        let rate = |v: &Value| v["mib_per_s_p50"].as_f64();
        let r = self.paired("stream", RAW_HOOK, rate);
        let _ = writeln!(
            s,
            "| stream throughput within 10 % of the raw socket read rate (raw tungstenite, same hooked kernel kind) | paired {r:.2}; pooled {} vs {} MiB/s | {} |",
            f(self.stream_rate(OURS)),
            f(self.stream_rate(RAW_HOOK)),
            verdict(r >= 0.9, format!("by {:.0} points", (0.9 - r) * 100.0))
        );
        let growth = self.stream_growth(OURS);
        let mib = 20.0;
        let _ = writeln!(
            s,
            "| bounded stream memory: peak growth ≤ the output `Execution` keeps ({mib} MiB) + 16 MiB | {} MiB (worst round) | {} |",
            f(growth),
            verdict(
                growth <= mib + 16.0,
                format!("by {} MiB", f(growth - mib - 16.0))
            )
        );
        let p99 = self.p("reconnect", OURS, "connected_samples_ms", 99.0);
        let _ = writeln!(
            s,
            "| reconnect p99 < 20 ms (cut → connected again) | p50 {} ms, p99 {} ms | {} |\n",
            f(self.p("reconnect", OURS, "connected_samples_ms", 50.0)),
            f(p99),
            verdict(p99 < 20.0, format!("by {} ms", f(p99 - 20.0)))
        );
    }

    fn details(&self, s: &mut String) {
        let r = self.results;
        let _ = writeln!(s, "### Measurements\n");
        // Round trip.
        let _ = writeln!(
            s,
            "**(1) Round trip of `\"1\"`** (send → `execute_reply` and iopub `idle`; e2b-ws: E2B's rule, idle only), samples pooled over rounds.\n"
        );
        table_head(
            s,
            "| client | samples | p50 ms | p90 ms | p99 ms | per-round p50 | CPU µs per cell: client · server · kernel |",
        );
        for c in [
            OURS, OURS_ENV, OURS_JSON, BASELINE, ZMQ, WSC, E2B, RAW_HOOK, RAW_BARE,
        ] {
            if runs(r, "roundtrip", c).is_empty() {
                continue;
            }
            let x = pooled(r, "roundtrip", c, "samples_ms");
            let rp = per_round(r, "roundtrip", c, |v| v["p50_ms"].as_f64());
            let cpu = ["client", "server", "kernel"]
                .map(|k| {
                    let v = self.scalar("roundtrip", c, &format!("{k}_cpu_us_per_iter"));
                    if v.is_nan() {
                        "–".to_string()
                    } else {
                        format!("{v:.0}")
                    }
                })
                .join(" · ");
            let _ = writeln!(
                s,
                "| {c} | {} | {} | {} | {} | {} | {cpu} |{}",
                x.len(),
                f(pct(&x, 50.0)),
                f(pct(&x, 90.0)),
                f(pct(&x, 99.0)),
                range(&rp),
                problems(r, "roundtrip", c)
            );
        }
        // Stream.
        let _ = writeln!(
            s,
            "\nCPU per cell: median over rounds of the CPU time (all threads, /proc/PID/task/*/schedstat) the client process, the jupyter_server and the client's kernel used during the measured loop, divided by its iterations. The ZMQ path has no server hop; the websocket clients pay for the server's Python per message.\n"
        );
        let _ = writeln!(
            s,
            "\n**(2) Streaming** a cell that prints 20 MiB as 64 KiB chunks (send → done). Memory: peak RSS (VmHWM) of the client process, and its growth from just before the first stream cell to the end. Every client runs in a process of its own, and VmHWM starts afresh at exec (ru_maxrss would carry the bench's own peak over).\n"
        );
        table_head(
            s,
            "| client | MiB/s (median) | per-iteration MiB/s | complete | peak RSS MiB | growth MiB |",
        );
        for c in [
            OURS, OURS_JSON, BASELINE, RAW_HOOK, RAW_PARSE, RAW_BARE, ZMQ, WSC, WSC_FAST, E2B,
        ] {
            if runs(r, "stream", c).is_empty() {
                continue;
            }
            let rates = pooled(r, "stream", c, "mib_per_s");
            let complete = ok_runs(r, "stream", c)
                .iter()
                .all(|v| v["complete"].as_bool() == Some(true));
            let peak = per_round(r, "stream", c, |v| v["peak_rss_kib"].as_f64())
                .iter()
                .copied()
                .fold(f64::NAN, f64::max)
                / 1024.0;
            let _ = writeln!(
                s,
                "| {c} | {} | {} | {} | {} | {} |{}",
                f(median(&rates)),
                rates.iter().map(|x| f(*x)).collect::<Vec<_>>().join(", "),
                if rates.is_empty() {
                    "n/a"
                } else if complete {
                    "yes"
                } else {
                    "**no**"
                },
                f(peak),
                f(self.stream_growth(c)),
                problems(r, "stream", c)
            );
        }
        // Reconnect.
        let _ = writeln!(
            s,
            "\n**(3) Reconnect.** Ours: the fault proxy (tests/support/fault_proxy.rs) cuts both TCP legs; the worker notices, reconnects with the same session; then `run_code(\"1\")`. websocket-client: `close()`, reconnect with the same session_id, execute. e2b-ws: `close()`, new client, `connect()` (new session), execute. Peers close cleanly; ours must first notice a cut.\n"
        );
        table_head(
            s,
            "| client | samples | to connected p50 / p99 ms | to first result p50 / p99 ms |",
        );
        for c in [OURS, BASELINE, WSC, E2B, ZMQ] {
            if runs(r, "reconnect", c).is_empty() {
                continue;
            }
            let conn_key = if c == OURS || c == BASELINE {
                "connected_samples_ms"
            } else {
                "handshake_samples_ms"
            };
            let a = pooled(r, "reconnect", c, conn_key);
            let b = pooled(r, "reconnect", c, "samples_ms");
            let _ = writeln!(
                s,
                "| {c} | {} | {} / {} | {} / {} |{}",
                b.len(),
                f(pct(&a, 50.0)),
                f(pct(&a, 99.0)),
                f(pct(&b, 50.0)),
                f(pct(&b, 99.0)),
                problems(r, "reconnect", c)
            );
        }
        let _ = writeln!(
            s,
            "\n(For peers the \"connected\" column is the handshake alone, after a client-initiated close.)\n"
        );
        // Create.
        let _ = writeln!(
            s,
            "**(4) Create → first result.** Ours: `Sandbox::jupyter(url, token)` (kernel specs, `POST /api/kernels`, websocket, hook install) + `run_code(\"1\")` on the same server. zmq / websocket-client: `POST /api/kernels`, connect, execute. e2b-ws: `POST /api/sessions` + `PATCH` (as E2B's `create_kernel` did), connect, execute. `Sandbox::local()` also starts a jupyter_server and has no peer equivalent (E2B's is a cloud VM).\n"
        );
        table_head(s, "| client | samples | p50 ms | max ms |");
        for c in [OURS, ZMQ, WSC, E2B, OURS_LOCAL] {
            let x = pooled(r, "create", c, "samples_ms");
            let _ = writeln!(
                s,
                "| {c} | {} | {} | {} |{}",
                x.len(),
                f(pct(&x, 50.0)),
                f(pct(&x, 100.0)),
                problems(r, "create", c)
            );
        }
        // Concurrent.
        let conns = ok_runs(r, "concurrent", OURS)
            .first()
            .and_then(|v| v["connections"].as_u64())
            .unwrap_or(32);
        let _ = writeln!(
            s,
            "\n**(5) {conns} concurrent contexts**, one thread per context running `\"1\"` back to back for the measured window. Memory and threads per connection: VmRSS and Threads of the client process before and after connecting all contexts, divided by {conns}.\n"
        );
        table_head(
            s,
            "| client | cells/s | latency p50 / p99 ms | MiB per connection | threads per connection | threads while running |",
        );
        for c in [OURS, OURS_JSON, ZMQ, WSC, E2B] {
            if runs(r, "concurrent", c).is_empty() {
                continue;
            }
            let x = pooled(r, "concurrent", c, "samples_ms");
            let _ = writeln!(
                s,
                "| {c} | {} | {} / {} | {} | {} | {} |{}",
                f(self.scalar("concurrent", c, "cells_per_s")),
                f(pct(&x, 50.0)),
                f(pct(&x, 99.0)),
                f(self.scalar("concurrent", c, "rss_per_connection_kib") / 1024.0),
                f(self.scalar("concurrent", c, "threads_per_connection")),
                f(self.scalar("concurrent", c, "threads_running")),
                problems(r, "concurrent", c)
            );
        }
        let _ = writeln!(s);
    }

    /// The goals of issue 25, each as a ratio within this run.
    fn issue_targets(&self, s: &mut String) {
        let r = self.results;
        let _ = writeln!(s, "### Targets of issue 25\n");
        table_head(s, "| target | measured | verdict |");
        let na = |x: f64| x.is_nan();
        // A ratio that could not be formed (a measurement not run) decides nothing.
        let verdict = |x: f64, ok: bool| match (na(x), ok) {
            (true, _) => "not measured",
            (false, true) => "**met**",
            (false, false) => "**missed**",
        };
        let conns = ok_runs(r, "concurrent", OURS)
            .first()
            .and_then(|v| v["connections"].as_u64())
            .unwrap_or(32);
        // (1) stream.
        let rate = |v: &Value| v["mib_per_s_p50"].as_f64();
        let q = self.paired("stream", RAW_PARSE, rate);
        let json = self.paired_of("stream", OURS_JSON, RAW_PARSE, rate);
        let growth = self.stream_growth(OURS);
        let _ = writeln!(
            s,
            "| (1) stream throughput ≥ 0.95× raw tungstenite + decode and keep text (paired), peak memory growth ≤ kept output (20 MiB) + 16 MiB | paired {q:.2} (JSON framing {json:.2}); growth {} MiB | {} |",
            f(growth),
            verdict(q, q >= 0.95 && growth <= 36.0)
        );
        // (2) server CPU per cell.
        let srv = |v: &Value| v["server_cpu_us_per_iter"].as_f64();
        let q = self.paired("roundtrip", RAW_HOOK, srv);
        let json = self.paired_of("roundtrip", OURS_JSON, RAW_HOOK, srv);
        let _ = writeln!(
            s,
            "| (2) jupyter_server CPU per cell ≤ 1.1× raw tungstenite on the same hooked kernel (paired) | {q:.2}; {} vs {} µs (JSON framing {json:.2}) | {} |",
            f(self.scalar("roundtrip", OURS, "server_cpu_us_per_iter")),
            f(self.scalar("roundtrip", RAW_HOOK, "server_cpu_us_per_iter")),
            verdict(q, q <= 1.1)
        );
        // (3) 32 contexts.
        let cps = |c: &str| self.scalar("concurrent", c, "cells_per_s");
        let q = self.paired("concurrent", ZMQ, |v| v["cells_per_s"].as_f64());
        let _ = writeln!(
            s,
            "| (3) {conns} contexts: cells/s ≥ 1.0× ZMQ (paired) | {q:.2}; {} vs {} cells/s (JSON framing {}) | {} |",
            f(cps(OURS)),
            f(cps(ZMQ)),
            f(cps(OURS_JSON)),
            verdict(q, q >= 1.0)
        );
        let p99 = |c: &str| pct(&pooled(r, "concurrent", c, "samples_ms"), 99.0);
        let best = [ZMQ, WSC, E2B]
            .into_iter()
            .map(|c| (p99(c), c))
            .filter(|(x, _)| !x.is_nan())
            .min_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((b, who)) = best {
            let q = ratio(p99(OURS), b);
            let _ = writeln!(
                s,
                "| (3) {conns} contexts: latency p99 ≤ 1.5× the best peer's p99 | {q:.2}; {} ms vs {} ms ({who}); JSON framing {} ms | {} |",
                f(p99(OURS)),
                f(b),
                f(p99(OURS_JSON)),
                verdict(q, q <= 1.5)
            );
        }
        // (5) local start.
        let first = pct(
            &pooled(r, "local", LOCAL_ISOLATED, "first_result_samples_ms"),
            50.0,
        );
        if !na(first) {
            let _ = writeln!(
                s,
                "| (5) local sandbox start → first result ≤ 250 ms p50 (isolated), cold | {} ms | {} |",
                f(first),
                verdict(first, first <= 250.0)
            );
        }
        let warm = pct(
            &pooled(r, "local", LOCAL_SPARE, "first_result_samples_ms"),
            50.0,
        );
        if !na(warm) {
            let _ = writeln!(
                s,
                "| (5) the same with the opt-in `warm_spare(true)`, 2 s of work between starts | {} ms | {} |",
                f(warm),
                verdict(warm, warm <= 250.0)
            );
        }
        // (6) round trip.
        let p50 = |v: &Value| v["p50_ms"].as_f64();
        let q = self.paired("roundtrip", ZMQ, p50);
        let json = self.paired_of("roundtrip", OURS_JSON, ZMQ, p50);
        let _ = writeln!(
            s,
            "| (6) round trip p50 ≤ 1.0× ZMQ (paired) | {q:.2} (JSON framing {json:.2}) | {} |\n",
            verdict(q, q <= 1.0)
        );
    }

    /// (8): how cost grows with concurrent work; only when that measurement ran.
    fn scale(&self, s: &mut String) {
        let r = self.results;
        if r.get("scale").is_none_or(|m| m.is_empty()) {
            return;
        }
        let _ = writeln!(
            s,
            "### How cost grows with concurrency\n\n**(8)** Ours only, as (5): N threads each running `\"1\"` back to back in its own context of one sandbox (\"contexts\"), or in the default context of its own `Sandbox::jupyter` handle on the same server (\"sandboxes\"). Memory and threads per connection: the client process before and after connecting, divided by N.\n"
        );
        table_head(
            s,
            "| connections | cells/s | latency p50 / p99 ms | client MiB per connection | threads per connection |",
        );
        for mode in ["contexts", "sandboxes"] {
            for n in SCALE_SIZES {
                let name = format!("{mode} {n}");
                if runs(r, "scale", &name).is_empty() {
                    continue;
                }
                let x = pooled(r, "scale", &name, "samples_ms");
                let one = |k: &str| median(&per_round(r, "scale", &name, |v| v[k].as_f64()));
                let _ = writeln!(
                    s,
                    "| {name} | {} | {} / {} | {} | {} |{}",
                    f(one("cells_per_s")),
                    f(pct(&x, 50.0)),
                    f(pct(&x, 99.0)),
                    f(one("rss_per_connection_kib") / 1024.0),
                    f(one("threads_per_connection")),
                    problems(r, "scale", &name)
                );
            }
        }
        let _ = writeln!(s, "\n![scale curve](perf-scale.png)\n");
    }

    /// The scale curve's points for bench/peers/plot_scale.py.
    pub fn scale_spec(&self) -> Value {
        let r = self.results;
        let mut series = serde_json::Map::new();
        for mode in ["contexts", "sandboxes"] {
            let points: Vec<Value> = SCALE_SIZES
                .iter()
                .filter_map(|n| {
                    let name = format!("{mode} {n}");
                    let v = ok_runs(r, "scale", &name).into_iter().next()?;
                    let x = pooled(r, "scale", &name, "samples_ms");
                    Some(json!({
                        "n": n,
                        "cells_per_s": v["cells_per_s"],
                        "p50_ms": pct(&x, 50.0),
                        "p99_ms": pct(&x, 99.0),
                        "mib_per_connection": v["rss_per_connection_kib"].as_f64().map(|k| k / 1024.0),
                        "threads_per_connection": v["threads_per_connection"],
                    }))
                })
                .collect();
            series.insert(mode.to_string(), Value::Array(points));
        }
        json!({
            "caption": format!(
                "cargo bench --bench compare · nproc {} · load average at start {} · e2b-blocking only",
                self.machine.nproc, self.machine.loadavg
            ),
            "series": series,
        })
    }

    pub fn chart_spec(&self) -> Value {
        let series = |m: &str, key_for: &dyn Fn(&str) -> &'static str, clients: &[&str]| {
            let mut map = serde_json::Map::new();
            for c in clients {
                map.insert(c.to_string(), json!(pooled(self.results, m, c, key_for(c))));
            }
            Value::Object(map)
        };
        let samples = |_: &str| "samples_ms";
        json!({
            "caption": format!(
                "cargo bench --bench compare · nproc {} · load average at start {} · one local jupyter_server",
                self.machine.nproc, self.machine.loadavg
            ),
            "panels": [
                {"title": "(1) round trip of \"1\" (ms)", "xlabel": "ms (log)",
                 "series": series("roundtrip", &samples, &[OURS, BASELINE, ZMQ, WSC, E2B, RAW_HOOK, RAW_BARE])},
                {"title": "(3) reconnect -> first result (ms)", "xlabel": "ms (log)",
                 "series": series("reconnect", &samples, &[OURS, WSC, E2B])},
                {"title": "(5) latency of \"1\" with 32 busy contexts (ms)", "xlabel": "ms (log)",
                 "series": series("concurrent", &samples, &[OURS, ZMQ, WSC, E2B])},
            ]
        })
    }
}

const BEGIN: &str = "<!-- BEGIN GENERATED: cargo bench --bench compare rewrites this part -->";
const END: &str = "<!-- END GENERATED -->";

/// Replaces the generated part of `path`, keeping what is written around it.
pub fn write_between_markers(path: &Path, body: &str) -> Res<()> {
    let old = std::fs::read_to_string(path)
        .unwrap_or_else(|_| format!("# Performance\n\n{BEGIN}\n{END}\n"));
    let (head, tail) = match (old.find(BEGIN), old.find(END)) {
        (Some(a), Some(b)) if a < b => (&old[..a], &old[b + END.len()..]),
        _ => (old.as_str(), "\n"),
    };
    std::fs::write(path, format!("{head}{BEGIN}\n{body}\n{END}{tail}"))?;
    Ok(())
}
