//! Measurements that run in a child process of the bench (one process per measurement, so
//! VmHWM and Threads of /proc/self/status describe that measurement alone). Each prints one
//! JSON line in the schema of bench/peers/peers.py.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use e2b_blocking::{ConnectionState, ContextOptions, Sandbox};
use serde_json::{Value, json};

use crate::fault_proxy::FaultProxy;
use crate::raw::Raw;
use crate::util::{Res, cpu_ns, ms, proc_status, summary};

pub struct Args {
    pub client: String,
    pub measurement: String,
    pub opts: HashMap<String, String>,
    flags: Vec<String>,
    pub url: String,
    pub token: String,
}

impl Args {
    pub fn parse(args: &[String]) -> Res<Args> {
        let client = args.first().ok_or("--child needs a client")?.clone();
        let measurement = args.get(1).ok_or("--child needs a measurement")?.clone();
        let mut opts = HashMap::new();
        let mut flags = Vec::new();
        let mut it = args[2..].iter().peekable();
        while let Some(a) = it.next() {
            let key = a.trim_start_matches("--").to_string();
            match it.peek() {
                Some(v) if !v.starts_with("--") => {
                    opts.insert(key, (*v).clone());
                    it.next();
                }
                _ => flags.push(key),
            }
        }
        Ok(Args {
            client,
            measurement,
            opts,
            flags,
            url: std::env::var("E2B_BENCH_URL")?,
            token: std::env::var("E2B_BENCH_TOKEN")?,
        })
    }

    fn num(&self, key: &str, default: f64) -> f64 {
        self.opts
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    fn count(&self, key: &str, default: usize) -> usize {
        self.num(key, default as f64) as usize
    }

    fn flag(&self, key: &str) -> bool {
        self.flags.iter().any(|f| f == key)
    }

    fn kernel(&self) -> Res<&str> {
        Ok(self.opts.get("kernel").ok_or("--kernel is required")?)
    }
}

pub fn run(raw_args: &[String]) -> Res<()> {
    let a = Args::parse(raw_args)?;
    let mut out = serde_json::Map::new();
    out.insert("schema".into(), json!(1));
    out.insert("peer".into(), json!(a.client));
    out.insert("measurement".into(), json!(a.measurement));
    let result = match (a.client.as_str(), a.measurement.as_str()) {
        ("ours", "roundtrip") => ours_roundtrip(&a, &mut out),
        ("ours", "stream") => ours_stream(&a, &mut out),
        ("ours", "reconnect") => ours_reconnect(&a, &mut out),
        ("ours", "create") => ours_create(&a, &mut out, false),
        ("ours", "create-local") => ours_create(&a, &mut out, true),
        ("ours", "local") => ours_local(&a, &mut out),
        ("ours", "concurrent") => ours_concurrent(&a, &mut out),
        ("raw", "roundtrip") => raw_roundtrip(&a, &mut out),
        ("raw", "stream") => raw_stream(&a, &mut out),
        ("raw", "ab") => raw_ab(&a, &mut out),
        ("ours", "ab") => ours_ab(&a, &mut out),
        (c, m) => Err(format!("unknown child measurement {c} {m}").into()),
    };
    let code = match result {
        Ok(()) => 0,
        Err(e) => {
            out.insert("error".into(), json!(with_causes(&*e)));
            1
        }
    };
    out.entry("peak_rss_kib")
        .or_insert(json!(proc_status("VmHWM")));
    out.insert("pid".into(), json!(std::process::id()));
    println!("{}", Value::Object(out));
    std::process::exit(code);
}

/// The sandbox on the bench's server; E2B_BENCH_CERT pins the server certificate of a
/// TLS proxy in front of it, E2B_BENCH_ACK_NUDGE=1 turns on `ConnectionConfig::ack_nudge`.
fn sandbox(a: &Args) -> Res<Sandbox> {
    let mut builder = Sandbox::builder();
    if let Ok(cert) = std::env::var("E2B_BENCH_CERT") {
        builder = builder.trust_server_certificate(std::fs::read(cert)?);
    }
    if std::env::var("E2B_BENCH_ACK_NUDGE").is_ok_and(|v| v == "1") {
        builder = builder.connection(e2b_blocking::ConnectionConfig::default().ack_nudge(true));
    }
    // --framing json|binary (else E2B_BENCH_FRAMING): the SDK's default for a server it did
    // not start is JSON; the bench's own server is the local sandbox's, patched against the
    // replaced-socket stall, so the orchestrator asks for the binary framing the local sandbox
    // speaks.
    let framing = a
        .opts
        .get("framing")
        .cloned()
        .or_else(|| std::env::var("E2B_BENCH_FRAMING").ok());
    match framing.as_deref() {
        Some("json") => builder = builder.binary_framing(false),
        Some("binary") => builder = builder.binary_framing(true),
        _ => {}
    }
    Ok(builder.jupyter(&a.url, a.token.as_str())?)
}

fn put_samples(out: &mut serde_json::Map<String, Value>, key: &str, prefix: &str, s: &[f64]) {
    out.insert(key.into(), json!(s));
    out.extend(summary(s, prefix));
}

/// Runs `f` `warmup` times, then `iterations` timed times. Also puts into `out` the CPU time
/// per timed iteration (µs, all threads) of this process, of the server and of `kernel`.
fn timed(
    out: &mut serde_json::Map<String, Value>,
    kernel: Option<&str>,
    iterations: usize,
    warmup: usize,
    mut f: impl FnMut() -> Res<()>,
) -> Res<Vec<f64>> {
    for _ in 0..warmup {
        f()?;
    }
    let kernel_pid = kernel
        .and_then(crate::util::kernel_and_server_pid)
        .map(|p| p.0);
    let pids = [
        Some(std::process::id()),
        crate::util::server_pid(),
        kernel_pid,
    ];
    let read = || pids.map(|p| p.map(cpu_ns));
    let cpu0 = read();
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        f()?;
        samples.push(ms(t.elapsed()));
    }
    let cpu1 = read();
    for (i, key) in ["client", "server", "kernel"].iter().enumerate() {
        if let (Some(a), Some(b)) = (cpu0[i], cpu1[i]) {
            let us = b.saturating_sub(a) as f64 / 1e3 / iterations.max(1) as f64;
            out.insert(format!("{key}_cpu_us_per_iter"), json!(us.round()));
        }
    }
    Ok(samples)
}

fn ours_roundtrip(a: &Args, out: &mut serde_json::Map<String, Value>) -> Res<()> {
    let sbx = sandbox(a)?;
    let (n, w) = (a.count("iterations", 200), a.count("warmup", 20));
    let kernel = sbx.list_contexts()?.remove(0).id;
    // --env: the same cell with one per-execution env var (set-up, cell, restore).
    let with_env = a.flag("env");
    let s = timed(out, Some(&kernel), n, w, || {
        let _ = if with_env {
            sbx.code("1").envs([("E2B_BENCH_VAR", "1")]).run()?
        } else {
            sbx.run_code("1")?
        };
        Ok(())
    })?;
    out.insert("iterations".into(), json!(n));
    out.insert("warmup".into(), json!(w));
    put_samples(out, "samples_ms", "", &s);
    Ok(())
}

fn raw_roundtrip(a: &Args, out: &mut serde_json::Map<String, Value>) -> Res<()> {
    let mut raw = Raw::connect(&a.url, &a.token, a.kernel()?)?;
    raw.store_history = !a.flag("no-store-history");
    if a.flag("hook") {
        raw.install_hook()?;
    }
    let (n, w) = (a.count("iterations", 200), a.count("warmup", 20));
    let kernel = a.kernel()?.to_string();
    let s = timed(out, Some(&kernel), n, w, || {
        raw.execute("1")?;
        Ok(())
    })?;
    raw.close();
    out.insert(
        "variant".into(),
        json!({"hook": a.flag("hook"), "store_history": !a.flag("no-store-history")}),
    );
    put_samples(out, "samples_ms", "", &s);
    Ok(())
}

/// The cell of bench/peers/peers.py `stream_code`: `mib` MiB as 64 KiB chunks, flushed.
pub fn stream_code(mib: usize) -> String {
    format!(
        "import sys\nchunk = 'x' * 65535 + '\\n'\nfor _ in range({}):\n    sys.stdout.write(chunk)\n    sys.stdout.flush()\n",
        mib * 16
    )
}

fn stream_common(
    a: &Args,
    out: &mut serde_json::Map<String, Value>,
    mut one: impl FnMut(&str) -> Res<(usize, usize)>,
) -> Res<()> {
    let mib = a.count("mb", 20);
    let (n, w) = (a.count("iterations", 3), a.count("warmup", 1));
    let code = stream_code(mib);
    let expected = mib << 20;
    let before = proc_status("VmHWM").unwrap_or(0);
    out.insert("rss_before_kib".into(), json!(before));
    for _ in 0..w {
        one(&code)?;
    }
    let (mut samples, mut got, mut msgs, mut rates) = (vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        let t = Instant::now();
        let (bytes, m) = one(&code)?;
        let dt = t.elapsed();
        samples.push(ms(dt));
        got.push(bytes);
        msgs.push(m);
        rates.push(((bytes as f64 / (1 << 20) as f64 / dt.as_secs_f64()) * 1e3).round() / 1e3);
    }
    put_samples(out, "samples_ms", "", &samples);
    out.insert("mib".into(), json!(mib));
    out.insert("bytes_expected".into(), json!(expected));
    out.insert("complete".into(), json!(got.iter().all(|&b| b >= expected)));
    out.insert("bytes_received".into(), json!(got));
    out.insert("stream_messages".into(), json!(msgs));
    out.insert(
        "mib_per_s_p50".into(),
        json!(crate::util::pct(&rates, 50.0)),
    );
    out.insert("mib_per_s".into(), json!(rates));
    out.insert("peak_rss_kib".into(), json!(proc_status("VmHWM")));
    Ok(())
}

fn ours_stream(a: &Args, out: &mut serde_json::Map<String, Value>) -> Res<()> {
    let sbx = sandbox(a)?;
    let _ = sbx.run_code("1")?;
    stream_common(a, out, |code| {
        let (mut bytes, mut msgs) = (0usize, 0usize);
        // Keeps all of it (over the 16 MiB default cap), as the peers do.
        let exec = sbx
            .code(code)
            .max_output(usize::MAX)
            .on_stdout(|m| {
                bytes += m.line.len();
                msgs += 1;
            })
            .timeout(Duration::from_secs(300))
            .run()?;
        drop(exec);
        Ok((bytes, msgs))
    })
}

fn raw_stream(a: &Args, out: &mut serde_json::Map<String, Value>) -> Res<()> {
    let mut raw = Raw::connect(&a.url, &a.token, a.kernel()?)?;
    raw.parse = a.flag("parse");
    if a.flag("hook") {
        raw.install_hook()?;
    }
    raw.execute("1")?;
    out.insert(
        "variant".into(),
        json!({"hook": a.flag("hook"), "parse": a.flag("parse"),
               "counts": "content part bytes (JSON)"}),
    );
    let r = stream_common(a, out, |code| {
        let d = raw.execute_with(code, false, |_| {})?;
        Ok((d.stream_bytes, d.stream_messages))
    });
    raw.close();
    r
}

fn ours_reconnect(a: &Args, out: &mut serde_json::Map<String, Value>) -> Res<()> {
    let (n, w) = (a.count("iterations", 50), a.count("warmup", 5));
    let target = a.url.trim_start_matches("http://").parse()?;
    let proxy = FaultProxy::start(target)?;
    let sbx = Sandbox::jupyter(&format!("http://{}", proxy.addr()), a.token.as_str())?;
    let states = sbx.watch_connection()?;
    let _ = sbx.run_code("1")?;
    let (mut usable, mut first) = (vec![], vec![]);
    for i in 0..n + w {
        while states.try_recv().is_some() {}
        let t0 = Instant::now();
        proxy.cut_all();
        let mut saw_break = false;
        loop {
            match states
                .recv_timeout(Duration::from_secs(10))
                .ok_or("no state change within 10 s")?
            {
                ConnectionState::Reconnecting { .. } => saw_break = true,
                ConnectionState::Connected if saw_break => break,
                ConnectionState::Closed { reason } => {
                    return Err(format!("closed: {reason:?}").into());
                }
                _ => {}
            }
        }
        let t1 = t0.elapsed();
        let _ = sbx.run_code("1")?;
        if i >= w {
            usable.push(ms(t1));
            first.push(ms(t0.elapsed()));
        }
    }
    out.insert("iterations".into(), json!(n));
    out.insert("same_session".into(), json!(true));
    out.insert(
        "completion".into(),
        json!("proxy cuts both TCP legs; cut -> Connected, then run_code(\"1\") done"),
    );
    put_samples(out, "samples_ms", "", &first);
    put_samples(out, "connected_samples_ms", "connected_", &usable);
    Ok(())
}

fn ours_create(a: &Args, out: &mut serde_json::Map<String, Value>, local: bool) -> Res<()> {
    let (n, w) = (a.count("iterations", 5), a.count("warmup", 1));
    let (mut total, mut create) = (vec![], vec![]);
    for i in 0..n + w {
        let t0 = Instant::now();
        let sbx = if local {
            Sandbox::local()?
        } else {
            sandbox(a)?
        };
        let t1 = t0.elapsed();
        let _ = sbx.run_code("1")?;
        let t2 = t0.elapsed();
        sbx.close()?;
        if i >= w {
            total.push(ms(t2));
            create.push(ms(t1));
        }
    }
    out.insert("iterations".into(), json!(n));
    put_samples(out, "samples_ms", "", &total);
    put_samples(out, "create_samples_ms", "create_", &create);
    Ok(())
}

/// The local sandbox on its own server, `--isolation bwrap` (the default: bubblewrap, Unix
/// socket) or `none` (127.0.0.1 TCP): `Sandbox::local_with` → first `run_code("1")` result,
/// `--creates` times (`first_result_samples_ms`), then the round trip `run_code("1")` on the
/// last one (`samples_ms`).
fn ours_local(a: &Args, out: &mut serde_json::Map<String, Value>) -> Res<()> {
    use e2b_blocking::{Isolation, LocalOptions};
    let isolation = match a.opts.get("isolation").map(String::as_str) {
        Some("none") => Isolation::None,
        Some("bwrap") | None => Isolation::Bubblewrap,
        Some(other) => return Err(format!("unknown --isolation {other}").into()),
    };
    // --warm-spare: LocalOptions::warm_spare, with --pause-ms of "work" after each start (a
    // spare needs the time to come up).
    let options = LocalOptions::new()
        .isolation(isolation)
        .warm_spare(a.flag("warm-spare"));
    let pause = Duration::from_millis(a.count("pause-ms", 0) as u64);
    let (creates, n, w) = (
        a.count("creates", 3),
        a.count("iterations", 200),
        a.count("warmup", 20),
    );
    // One unmeasured start first: the venv check and page cache, as a warmed-up process.
    Sandbox::builder().local_with(options.clone())?.close()?;
    std::thread::sleep(pause);
    let mut first = Vec::new();
    let mut last = None;
    for _ in 0..creates.max(1) {
        let t0 = Instant::now();
        let sbx = Sandbox::builder().local_with(options.clone())?;
        let _ = sbx.run_code("1")?;
        first.push(ms(t0.elapsed()));
        if let Some(old) = last.replace(sbx) {
            old.close()?;
        }
        std::thread::sleep(pause);
    }
    let sbx = last.ok_or("no sandbox")?;
    for _ in 0..w {
        let _ = sbx.run_code("1")?;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let _ = sbx.run_code("1")?;
        samples.push(ms(t.elapsed()));
    }
    out.insert("jupyter_url".into(), json!(sbx.jupyter_url()));
    sbx.close()?;
    out.insert("iterations".into(), json!(n));
    out.insert("creates".into(), json!(creates));
    put_samples(out, "samples_ms", "", &samples);
    put_samples(out, "first_result_samples_ms", "first_result_", &first);
    Ok(())
}

/// An error with its causes: the SDK's own [`e2b_blocking::Error::report`] when it is one.
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    e.downcast_ref::<e2b_blocking::Error>()
        .map_or_else(|| e.to_string(), e2b_blocking::Error::report)
}

/// One connection of the concurrent measurement.
enum Conn {
    Context(e2b_blocking::Context),
    Sandbox(Sandbox),
}

impl Conn {
    /// `"1"` in this context of `sbx`, or in this sandbox's default context.
    fn run(&self, sbx: &Sandbox, timeout: Duration) -> Result<(), e2b_blocking::Error> {
        let _ = match self {
            Conn::Context(ctx) => sbx.code("1").context(ctx).timeout(timeout).run()?,
            Conn::Sandbox(own) => own.code("1").timeout(timeout).run()?,
        };
        Ok(())
    }
}

fn ours_concurrent(a: &Args, out: &mut serde_json::Map<String, Value>) -> Res<()> {
    let n = a.count("connections", 32);
    let duration = Duration::from_secs_f64(a.num("duration", 10.0));
    let settle = Duration::from_secs_f64(a.num("settle", 1.0));
    // --sandboxes: each connection is a sandbox of its own (a `Sandbox::jupyter` handle and its
    // default context) instead of a context of one sandbox.
    let own_sandboxes = a.flag("sandboxes");
    let sbx = sandbox(a)?;
    let _ = sbx.run_code("1")?;
    let rss0 = proc_status("VmRSS").unwrap_or(0);
    let thr0 = proc_status("Threads").unwrap_or(0);
    // Contexts (or sandboxes) are created from 8 threads at once (kernel start-up dominates);
    // those threads are joined before the "connected" reading.
    let made: Mutex<Vec<Conn>> = Mutex::new(Vec::new());
    let failed: Mutex<Option<String>> = Mutex::new(None);
    std::thread::scope(|s| {
        for t in 0..8 {
            let (sbx, made, failed) = (&sbx, &made, &failed);
            s.spawn(move || {
                for _ in (t..n).step_by(8) {
                    let conn = if own_sandboxes {
                        sandbox(a)
                            .map(Conn::Sandbox)
                            .map_err(|e| format!("opening a sandbox: {}", with_causes(&*e)))
                    } else {
                        sbx.create_context(ContextOptions::new())
                            .map(Conn::Context)
                            .map_err(|e| format!("creating a context: {}", e.report()))
                    };
                    match conn {
                        Ok(c) => made.lock().unwrap().push(c),
                        Err(e) => *failed.lock().unwrap() = Some(e),
                    }
                }
            });
        }
    });
    if let Some(e) = failed.into_inner()? {
        return Err(e.into());
    }
    let contexts = made.into_inner()?;
    // One execution each, then a pause, so kernel start-up work is over (as for the peers).
    for conn in &contexts {
        conn.run(&sbx, Duration::from_secs(60))
            .map_err(|e| format!("the first cell: {}", e.report()))?;
    }
    std::thread::sleep(Duration::from_secs(2));
    let rss1 = proc_status("VmRSS").unwrap_or(0);
    let thr1 = proc_status("Threads").unwrap_or(0);
    out.insert("connections".into(), json!(n));
    out.insert("rss_before_kib".into(), json!(rss0));
    out.insert("threads_before".into(), json!(thr0));
    out.insert("rss_connected_kib".into(), json!(rss1));
    out.insert("threads_connected".into(), json!(thr1));
    out.insert(
        "rss_per_connection_kib".into(),
        json!(((rss1 as f64 - rss0 as f64) / n as f64 * 10.0).round() / 10.0),
    );
    out.insert(
        "threads_per_connection".into(),
        json!(((thr1 as f64 - thr0 as f64) / n as f64 * 100.0).round() / 100.0),
    );

    let start = Instant::now() + Duration::from_millis(200);
    let measure_from = start + settle;
    let stop_at = measure_from + duration;
    let stop = AtomicBool::new(false);
    let results: Vec<Res2> = std::thread::scope(|s| {
        let handles: Vec<_> = contexts
            .iter()
            .map(|ctx| {
                let (sbx, stop) = (&sbx, &stop);
                s.spawn(move || -> Res2 {
                    let mut lat = Vec::new();
                    while Instant::now() < start {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    loop {
                        let t0 = Instant::now();
                        if t0 >= stop_at || stop.load(Ordering::Relaxed) {
                            break;
                        }
                        ctx.run(sbx, Duration::from_secs(60))
                            .map_err(|e| e.report())?;
                        let t1 = Instant::now();
                        if t0 >= measure_from && t1 <= stop_at {
                            lat.push(ms(t1 - t0));
                        }
                    }
                    Ok(lat)
                })
            })
            .collect();
        std::thread::sleep((measure_from + duration / 2).saturating_duration_since(Instant::now()));
        out.insert("threads_running".into(), json!(proc_status("Threads")));
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("worker panicked".into())))
            .collect()
    });
    let mut counts = Vec::new();
    let mut all = Vec::new();
    for r in results {
        let lat = r?;
        counts.push(lat.len());
        all.extend(lat);
    }
    let total: usize = counts.iter().sum();
    out.insert("duration_s".into(), json!(duration.as_secs_f64()));
    out.insert("cells".into(), json!(total));
    out.insert(
        "cells_per_s".into(),
        json!((total as f64 / duration.as_secs_f64() * 100.0).round() / 100.0),
    );
    out.insert("cells_per_connection".into(), json!(counts));
    all.sort_by(f64::total_cmp);
    put_samples(out, "samples_ms", "", &all);
    out.insert("peak_rss_kib".into(), json!(proc_status("VmHWM")));
    Ok(())
}

type Res2 = Result<Vec<f64>, String>;

/// Investigation aid (`--child raw ab --kernel K [--batches N] [--batch N]`): one connection,
/// one kernel, and the variants hook on/off × store_history on/off taking turns in small
/// batches, so machine load hits every variant alike.
fn raw_ab(a: &Args, out: &mut serde_json::Map<String, Value>) -> Res<()> {
    let mut raw = Raw::connect(&a.url, &a.token, a.kernel()?)?;
    let unhook = "import sys\nm = sys.modules.pop('__e2b_hook', None)\nif m is not None: m.session.__dict__.pop('send', None)";
    let (batches, batch) = (a.count("batches", 20), a.count("batch", 20));
    // (hook, store_history, date)
    let variants: Vec<(bool, bool, bool)> = match a.opts.get("vary").map(String::as_str) {
        Some("date") => vec![(true, true, false), (true, true, true)],
        _ => vec![
            (false, false, false),
            (false, true, false),
            (true, false, false),
            (true, true, false),
        ],
    };
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let (kpid, spid) = crate::util::kernel_and_server_pid(a.kernel()?).ok_or("no kernel pid")?;
    let me = std::process::id();
    let mut cpu = vec![[0u64; 3]; variants.len()];
    for _ in 0..10 {
        raw.execute("1")?;
    }
    let mut hooked = None;
    for b in 0..batches {
        for i in 0..variants.len() {
            let v = (i + b) % variants.len();
            let (hook, history, date) = variants[v];
            if hooked != Some(hook) {
                if hook {
                    raw.install_hook()?;
                } else {
                    raw.execute_with(unhook, true, |_| {})?;
                }
                hooked = Some(hook);
            }
            raw.store_history = history;
            raw.date = date;
            raw.execute("1")?;
            let c0 = [cpu_ns(me), cpu_ns(spid), cpu_ns(kpid)];
            for _ in 0..batch {
                let t = Instant::now();
                raw.execute("1")?;
                samples[v].push(ms(t.elapsed()));
            }
            let c1 = [cpu_ns(me), cpu_ns(spid), cpu_ns(kpid)];
            for j in 0..3 {
                cpu[v][j] += c1[j] - c0[j];
            }
        }
    }
    for (i, (hook, history, date)) in variants.iter().enumerate() {
        let s = &samples[i];
        let per = |j: usize| (cpu[i][j] as f64 / s.len() as f64 / 1e3).round();
        out.insert(
            format!("hook={hook} store_history={history} date={date}"),
            json!({"n": s.len(), "p10": crate::util::pct(s, 10.0), "p50": crate::util::pct(s, 50.0),
                   "p90": crate::util::pct(s, 90.0), "mean": s.iter().sum::<f64>() / s.len() as f64,
                   "cpu_us_per_cell": {"client": per(0), "server": per(1), "kernel": per(2)}}),
        );
    }
    raw.close();
    Ok(())
}

/// Investigation aid (`--child ours ab --kernel K`): the SDK on its own kernel and the raw
/// client on kernel K (hooked, store_history on, like ours) take turns in small batches; wall
/// time and CPU time of this process, the server and each kernel per cell.
fn ours_ab(a: &Args, out: &mut serde_json::Map<String, Value>) -> Res<()> {
    let sbx = sandbox(a)?;
    let ours_kernel = sbx.list_contexts()?.remove(0).id;
    // --sdk-kernel: the raw client uses a second context made by the SDK (whose worker then
    // also reads that kernel's iopub) instead of --kernel.
    let raw_kernel = if a.flag("same-kernel") {
        ours_kernel.clone()
    } else if a.flag("sdk-kernel") {
        sbx.create_context(ContextOptions::new())?.id
    } else {
        a.kernel()?.to_string()
    };
    let mut raw = Raw::connect(&a.url, &a.token, &raw_kernel)?;
    raw.date = a.flag("date");
    raw.install_hook()?;
    let (ka, spid) = crate::util::kernel_and_server_pid(&ours_kernel).ok_or("no kernel pid")?;
    let (kb, _) = crate::util::kernel_and_server_pid(&raw_kernel).ok_or("no kernel pid")?;
    let me = std::process::id();
    let (batches, batch) = (a.count("batches", 20), a.count("batch", 20));
    let mut samples = [Vec::new(), Vec::new()];
    // --mb N: a stream cell of N MiB instead of "1".
    let code = match a.opts.get("mb") {
        Some(mb) => stream_code(mb.parse()?),
        None => "1".to_string(),
    };
    let mut cpu = [[0u64; 3]; 2];
    for _ in 0..10 {
        let _ = sbx.run_code("1")?;
        raw.execute("1")?;
    }
    for b in 0..batches {
        for i in 0..2 {
            let v = (i + b) % 2;
            let kpid = if v == 0 { ka } else { kb };
            let c0 = [cpu_ns(me), cpu_ns(spid), cpu_ns(kpid)];
            for _ in 0..batch {
                let t = Instant::now();
                if v == 0 {
                    let _ = sbx.code(code.as_str()).on_stdout(|_| {}).run()?;
                } else {
                    raw.execute(&code)?;
                    if let Some(g) = a.opts.get("gap-us") {
                        std::thread::sleep(Duration::from_micros(g.parse()?));
                    }
                }
                samples[v].push(ms(t.elapsed()));
            }
            let c1 = [cpu_ns(me), cpu_ns(spid), cpu_ns(kpid)];
            for j in 0..3 {
                cpu[v][j] += c1[j] - c0[j];
            }
        }
    }
    let threads = |pid: u32| -> Vec<String> {
        let mut v: Vec<(u64, String)> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|t| {
                let ns: u64 = std::fs::read_to_string(t.path().join("schedstat"))
                    .ok()?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()?;
                let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
                Some((ns, format!("{} {}", comm.trim(), ns / 1_000_000)))
            })
            .collect();
        v.sort();
        v.into_iter().rev().map(|x| x.1).collect()
    };
    out.insert("threads_ms_ours_kernel".into(), json!(threads(ka)));
    out.insert("threads_ms_raw_kernel".into(), json!(threads(kb)));
    for (i, name) in ["ours", "raw"].iter().enumerate() {
        let s = &samples[i];
        let per = |j: usize| (cpu[i][j] as f64 / s.len() as f64 / 1e3).round();
        out.insert(
            name.to_string(),
            json!({"n": s.len(), "p10": crate::util::pct(s, 10.0), "p50": crate::util::pct(s, 50.0),
                   "p90": crate::util::pct(s, 90.0), "mean": s.iter().sum::<f64>() / s.len() as f64,
                   "cpu_us_per_cell": {"client": per(0), "server": per(1), "kernel": per(2)}}),
        );
    }
    raw.close();
    Ok(())
}
