//! Side-by-side performance report: e2b-blocking against the Python peers of bench/peers
//! (jupyter_client over ZMQ, websocket-client, E2B's websocket-era client) and a raw
//! tungstenite reader, all against ONE local jupyter_server in the same run.
//!
//! `cargo bench --bench compare` (about 15 min on 2 cores). Writes docs/PERFORMANCE.md
//! (between its GENERATED markers), docs/perf-latency.png, docs/perf-scale.png and
//! target/compare/results.json.
//! Every client runs in its own process (ours re-executes this binary with `--child`), on its
//! own fresh kernel, and the clients of one measurement take turns round by round.
//!
//! Environment: E2B_BENCH_ONLY=roundtrip,stream,reconnect,create,concurrent,scale,local,nginx,
//! e2bplane (subset; `e2bplane` is the E2B data plane on its rig, beside E2B's official Python
//! SDK),
//! E2B_BENCH_QUICK=1 (fewer rounds and iterations, for a smoke run),
//! E2B_BENCH_ROUNDS=N (round-trip rounds, default 5), E2B_BENCH_CONCURRENT_ROUNDS=N (default 3),
//! E2B_BENCH_NO_DOCS=1 (print only),
//! E2B_BENCH_CLIENTS=a,b (round trip, stream, reconnect: only clients whose name contains one),
//! E2B_BENCH_BASELINE=PATH (this bench built against an older commit of the SDK: its
//! `--child ours` runs join round trip, stream and reconnect as "e2b-blocking (baseline)",
//! for before/after numbers from one run; copy the binary out of the target dir, or build
//! the old commit with a CARGO_TARGET_DIR of its own: it has the same file name as this one).

mod child;
#[path = "../../tests/support/data_rig.rs"]
mod data_rig;
mod e2b_plane;
#[path = "../../tests/support/e2b_rig.rs"]
mod e2b_rig;
#[path = "../../tests/support/fault_proxy.rs"]
mod fault_proxy;
#[path = "../../tests/support/installs.rs"]
mod installs;
#[path = "../../tests/support/listener.rs"]
mod listener;
#[path = "../../tests/support/nginx.rs"]
mod nginx;
#[path = "../../tests/support/procs.rs"]
mod procs;
mod proxied;
#[allow(dead_code)]
#[path = "../../tests/support/python_server.rs"]
mod python_server;
mod raw;
mod report;
#[path = "../../tests/support/scripted_ws.rs"]
mod scripted_ws;
mod util;

// The rigs find a server's processes through `super::descendants`.
use procs::descendants;

/// What the shared test support calls to set up logging (nothing here).
fn init_logs() {}

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use e2b_blocking::{Isolation, LocalOptions, Sandbox};
use serde_json::{Value, json};

use util::{Res, Rest, last_json, run_with_deadline};

const MATPLOTLIB: &str = "matplotlib==3.10.9";

fn main() {
    // Warnings (handled oddities: a reconnect, what the server logged as it stopped) go to
    // stderr, a child's to its log in target/compare/logs/, so that a failed run leaves its
    // cause; RUST_LOG overrides.
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .try_init();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let r = if args.first().map(String::as_str) == Some("--child") {
        child::run(&args[1..])
    } else if args.first().map(String::as_str) == Some("--serve") {
        serve(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(600))
    } else {
        orchestrate()
    };
    if let Err(e) = r {
        eprintln!("compare: {e}");
        std::process::exit(1);
    }
}

/// How a client is run.
#[derive(Clone)]
pub enum Kind {
    /// This binary with `--child ours …`: the SDK's public API.
    Ours,
    /// The same from the E2B_BENCH_BASELINE binary (an older SDK).
    Baseline,
    /// This binary with `--child raw …` on a fresh kernel.
    Raw,
    /// bench/peers/peers.py with this peer name, on a fresh kernel.
    Peer(&'static str),
}

#[derive(Clone)]
pub struct Client {
    pub name: &'static str,
    pub kind: Kind,
    pub extra: Vec<&'static str>,
}

fn client(name: &'static str, kind: Kind, extra: &[&'static str]) -> Client {
    Client {
        name,
        kind,
        extra: extra.to_vec(),
    }
}

#[derive(Clone)]
pub struct Bench {
    /// More environment for the clients (a path's certificate, options).
    env: Vec<(String, String)>,
    exe: PathBuf,
    server_pid: u32,
    baseline: Option<PathBuf>,
    python: PathBuf,
    peers_py: PathBuf,
    url: String,
    token: String,
    runtime: PathBuf,
    rest: Rest,
    logs: PathBuf,
}

impl Bench {
    /// Runs one client process for one measurement; `kernel` is passed as --kernel.
    fn run(
        &self,
        c: &Client,
        measurement: &str,
        kernel: Option<&str>,
        args: &[String],
        limit: Duration,
    ) -> Value {
        let mut cmd = match &c.kind {
            Kind::Ours | Kind::Raw | Kind::Baseline => {
                let exe = match (&c.kind, &self.baseline) {
                    (Kind::Baseline, Some(b)) => b,
                    _ => &self.exe,
                };
                let mut cmd = Command::new(exe);
                let who = if matches!(c.kind, Kind::Raw) {
                    "raw"
                } else {
                    "ours"
                };
                cmd.args(["--child", who, measurement]);
                cmd
            }
            Kind::Peer(p) => {
                let mut cmd = Command::new(&self.python);
                cmd.arg(&self.peers_py).args([*p, measurement]).args([
                    "--url",
                    &self.url,
                    "--token",
                    &self.token,
                ]);
                cmd
            }
        };
        if let Some(k) = kernel {
            cmd.args(["--kernel", k]);
        }
        cmd.args(args)
            .args(&c.extra)
            .env("E2B_BENCH_URL", &self.url)
            .env("E2B_BENCH_TOKEN", &self.token)
            .env("JUPYTER_RUNTIME_DIR", &self.runtime)
            .env("E2B_BENCH_SERVER_PID", self.server_pid.to_string())
            .env("PYTHONWARNINGS", "ignore")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        let log = self.logs.join(format!(
            "{}-{}.log",
            measurement,
            c.name.replace(|ch: char| !ch.is_ascii_alphanumeric(), "_")
        ));
        let t = Instant::now();
        let v = match run_with_deadline(&mut cmd, limit, &log) {
            Ok((_, out)) => last_json(&out).unwrap_or_else(
                || json!({"error": format!("no JSON output; see {}", log.display())}),
            ),
            Err(e) => json!({"error": e.to_string()}),
        };
        eprintln!(
            "  {:<34} {:<10} {:>6.1} s {}",
            c.name,
            measurement,
            t.elapsed().as_secs_f64(),
            v.get("error")
                .or_else(|| v.get("unsupported"))
                .map(|e| format!("-> {e}"))
                .unwrap_or_default()
        );
        v
    }

    /// Like `run`, on a kernel started for this run alone (except for ours, which starts its
    /// own through the SDK) and shut down afterwards.
    fn run_fresh(&self, c: &Client, measurement: &str, args: &[String], limit: Duration) -> Value {
        if matches!(c.kind, Kind::Ours | Kind::Baseline) {
            return self.run(c, measurement, None, args, limit);
        }
        let kernel = match self.rest.start_kernel() {
            Ok(k) => k,
            Err(e) => return json!({"error": format!("kernel start: {e}")}),
        };
        let v = self.run(c, measurement, Some(&kernel), args, limit);
        self.rest.delete_kernel(&kernel);
        v
    }
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Results: measurement -> client name -> one JSON object per round.
pub type Results = BTreeMap<String, BTreeMap<String, Vec<Value>>>;

fn orchestrate() -> Res<()> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let machine = report::Machine::collect(&repo);
    eprintln!(
        "compare: nproc {}, load average at start {}",
        machine.nproc, machine.loadavg
    );
    let quick = env_flag("E2B_BENCH_QUICK");
    let only: Option<Vec<String>> = std::env::var("E2B_BENCH_ONLY")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    let wanted = |m: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == m));

    let out_dir = repo.join("target").join("compare");
    let logs = out_dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    for e in std::fs::read_dir(&logs)?.flatten() {
        let _ = std::fs::remove_file(e.path());
    }
    if wanted("e2bplane") {
        let text = e2b_plane::run(&logs, quick)?;
        println!("{text}");
        if !env_flag("E2B_BENCH_NO_DOCS") {
            e2b_plane::write(&repo.join("docs/PERFORMANCE.md"), &text)?;
        }
        if only.as_ref().is_some_and(|o| o.len() == 1) {
            return Ok(());
        }
    }
    let python = setup_peers(&repo, &logs)?;

    let t_server = Instant::now();
    let sbx = Sandbox::builder()
        // Unisolated: the peers (and curl) reach the server over TCP.
        .local_with(LocalOptions::new().isolation(Isolation::None))?;
    eprintln!(
        "compare: local jupyter_server up in {:.1} s at {}",
        t_server.elapsed().as_secs_f64(),
        sbx.jupyter_url()
    );
    let token = token_of(&sbx)?;
    let bench = Bench {
        // The server is the local sandbox's, patched against the replaced-socket stall: ours
        // speaks the binary framing a local sandbox speaks (`Sandbox::jupyter` cannot know the
        // patch and would pick JSON; the "JSON framing" rows show that).
        env: vec![("E2B_BENCH_FRAMING".into(), "binary".into())],
        exe: std::env::current_exe()?,
        server_pid: sbx.as_local().map(|l| l.pid()).ok_or("no server pid")?,
        baseline: std::env::var_os("E2B_BENCH_BASELINE").map(PathBuf::from),
        python,
        peers_py: repo.join("bench/peers/peers.py"),
        url: sbx.jupyter_url().to_string(),
        rest: Rest::new(sbx.jupyter_url(), &token),
        token,
        runtime: sbx
            .as_local()
            .map(|l| l.runtime_dir())
            .ok_or("no runtime dir")?
            .to_path_buf(),
        logs,
    };

    let mut results: Results = BTreeMap::new();
    let t_all = Instant::now();
    if wanted("roundtrip") {
        roundtrip(&bench, &mut results, quick);
    }
    if wanted("stream") {
        stream(&bench, &mut results, quick);
    }
    if wanted("reconnect") {
        reconnect(&bench, &mut results, quick);
    }
    if wanted("create") {
        create(&bench, &mut results, quick);
    }
    if wanted("concurrent") {
        concurrent(&bench, &mut results, quick);
    }
    if wanted("scale") {
        scale(&bench, &mut results, quick);
    }
    if wanted("local") {
        local(&bench, &mut results, quick);
    }
    if wanted("nginx")
        && let Err(e) = proxied::nginx(&bench, &mut results, quick)
    {
        eprintln!("compare: nginx: {e}");
    }
    let elapsed = t_all.elapsed();
    let load_end = report::loadavg();
    drop(sbx);

    let rep = report::Report {
        machine,
        load_end,
        elapsed,
        quick,
        results: &results,
    };
    let text = rep.markdown();
    println!("{text}");
    std::fs::write(
        out_dir.join("results.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    if !env_flag("E2B_BENCH_NO_DOCS") {
        let docs = repo.join("docs");
        std::fs::create_dir_all(&docs)?;
        report::write_between_markers(&docs.join("PERFORMANCE.md"), &text)?;
        let spec = out_dir.join("latency.json");
        std::fs::write(&spec, serde_json::to_string(&rep.chart_spec())?)?;
        plot(
            &bench,
            &repo,
            "plot_latency.py",
            &spec,
            &docs.join("perf-latency.png"),
        );
        if results.contains_key("scale") {
            let spec = out_dir.join("scale.json");
            std::fs::write(&spec, serde_json::to_string(&rep.scale_spec())?)?;
            plot(
                &bench,
                &repo,
                "plot_scale.py",
                &spec,
                &docs.join("perf-scale.png"),
            );
        }
        eprintln!("compare: wrote {}", docs.join("PERFORMANCE.md").display());
    }
    Ok(())
}

/// The server token from the sandbox's Authorization header.
fn token_of(sbx: &Sandbox) -> Res<String> {
    sbx.jupyter_headers()
        .into_iter()
        .find(|(n, _)| n == "Authorization")
        .and_then(|(_, v)| v.expose_secret().strip_prefix("token ").map(str::to_string))
        .ok_or_else(|| "no token header".into())
}

/// `--serve SECONDS`: a local server for investigating by hand with `--child …` and peers.py.
/// Prints `export` lines for its URL, token and runtime dir, then waits.
fn serve(seconds: u64) -> Res<()> {
    let sbx = Sandbox::builder()
        // Unisolated: the peers (and curl) reach the server over TCP.
        .local_with(LocalOptions::new().isolation(Isolation::None))?;
    let token = token_of(&sbx)?;
    println!("export E2B_BENCH_URL={}", sbx.jupyter_url());
    println!("export E2B_BENCH_TOKEN={token}");
    println!(
        "export JUPYTER_RUNTIME_DIR={}",
        sbx.as_local()
            .map(|l| l.runtime_dir())
            .ok_or("no runtime dir")?
            .display()
    );
    std::thread::sleep(Duration::from_secs(seconds));
    Ok(())
}

/// bench/peers/setup.sh, plus matplotlib for the chart; returns the venv's python.
/// Draws `png` from the chart spec `spec` with `bench/peers/{script}`; a failure is reported,
/// not fatal (the tables are written either way).
fn plot(bench: &Bench, repo: &Path, script: &str, spec: &Path, png: &Path) {
    let mut cmd = Command::new(&bench.python);
    cmd.arg(repo.join("bench/peers").join(script))
        .arg(spec)
        .arg(png);
    match run_with_deadline(
        &mut cmd,
        Duration::from_secs(120),
        &bench.logs.join("plot.log"),
    ) {
        Ok((true, _)) => eprintln!("compare: wrote {}", png.display()),
        other => eprintln!(
            "compare: {} failed: {:?}",
            png.display(),
            other.map(|(ok, _)| ok)
        ),
    }
}

fn setup_peers(repo: &Path, logs: &Path) -> Res<PathBuf> {
    let mut cmd = Command::new("bash");
    cmd.arg(repo.join("bench/peers/setup.sh"));
    let (ok, out) = run_with_deadline(&mut cmd, Duration::from_secs(900), &logs.join("setup.log"))?;
    let python = PathBuf::from(out.lines().last().unwrap_or("").trim());
    if !ok || !python.exists() {
        return Err(format!("bench/peers/setup.sh failed; see {}", logs.display()).into());
    }
    let mut check = Command::new(&python);
    check.args(["-c", "import matplotlib"]);
    if !run_with_deadline(&mut check, Duration::from_secs(60), &logs.join("setup.log"))?.0 {
        eprintln!("compare: installing {MATPLOTLIB} into the peers venv (for the chart)");
        let mut pip = Command::new(&python);
        pip.args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar",
            "off",
            MATPLOTLIB,
        ]);
        if !run_with_deadline(&mut pip, Duration::from_secs(600), &logs.join("setup.log"))?.0 {
            eprintln!("compare: matplotlib install failed; the chart will be missing");
        }
    }
    Ok(python)
}

/// Runs every client (and the baseline SDK, when given) once per round, rotating who goes
/// first.
fn rounds(
    bench: &Bench,
    results: &mut Results,
    measurement: &str,
    mut clients: Vec<Client>,
    n_rounds: usize,
    args: &[String],
    limit: Duration,
) {
    if bench.baseline.is_some() {
        clients.insert(1, client(BASELINE, Kind::Baseline, &[]));
    }
    // E2B_BENCH_CLIENTS=a,b: only clients whose name contains one of these.
    let clients: Vec<&Client> = match std::env::var("E2B_BENCH_CLIENTS") {
        Ok(f) if !f.is_empty() => clients
            .iter()
            .filter(|c| f.split(',').any(|p| c.name.contains(p.trim())))
            .collect(),
        _ => clients.iter().collect(),
    };
    eprintln!(
        "compare: {measurement}: {n_rounds} round(s) of {} clients",
        clients.len()
    );
    for r in 0..n_rounds {
        for i in 0..clients.len() {
            let c = clients[(i + r) % clients.len()];
            let v = bench.run_fresh(c, measurement, args, limit);
            push(results, measurement, c.name, v);
        }
    }
}

pub const OURS: &str = "e2b-blocking";
/// Ours with one per-execution env var (`.envs(..)`): set-up, cell and restore in one round trip.
pub const OURS_ENV: &str = "e2b-blocking, one per-execution env var";
/// Ours with JSON framing: what `Sandbox::jupyter` speaks to a server the SDK did not start.
pub const OURS_JSON: &str = "e2b-blocking, JSON framing (stock servers)";
pub const RAW_HOOK: &str = "raw tungstenite (hooked kernel)";
pub const RAW_BARE: &str = "raw tungstenite (plain kernel)";
pub const RAW_PARSE: &str = "raw tungstenite + decode and keep text (hooked)";
pub const ZMQ: &str = "zmq (jupyter_client)";
pub const WSC: &str = "websocket-client";
pub const WSC_FAST: &str = "websocket-client (skip utf8 check)";
pub const E2B: &str = "e2b-ws (e2b-code-interpreter 0.0.10)";
pub const OURS_LOCAL: &str = "e2b-blocking Sandbox::local()";
pub const BASELINE: &str = "e2b-blocking (baseline)";
pub const LOCAL_ISOLATED: &str = "Sandbox::local(), isolated (bubblewrap, Unix socket)";
pub const LOCAL_NONE: &str = "Sandbox::local(), Isolation::None (127.0.0.1 TCP)";
pub const LOCAL_SPARE: &str = "Sandbox::local(), isolated, warm_spare(true), 2 s between starts";

fn roundtrip(bench: &Bench, results: &mut Results, quick: bool) {
    let clients = vec![
        client(OURS, Kind::Ours, &[]),
        client(OURS_ENV, Kind::Ours, &["--env"]),
        client(OURS_JSON, Kind::Ours, &["--framing", "json"]),
        client(ZMQ, Kind::Peer("zmq"), &[]),
        client(WSC, Kind::Peer("websocket-client"), &[]),
        client(E2B, Kind::Peer("e2b-ws"), &[]),
        client(RAW_HOOK, Kind::Raw, &["--hook"]),
        client(RAW_BARE, Kind::Raw, &[]),
    ];
    let n = env_num("E2B_BENCH_ROUNDS", if quick { 1 } else { 5 });
    let it = if quick { "30" } else { "100" };
    let args = strings(&["--iterations", it, "--warmup", "10"]);
    rounds(
        bench,
        results,
        "roundtrip",
        clients,
        n,
        &args,
        Duration::from_secs(300),
    );
}

fn stream(bench: &Bench, results: &mut Results, quick: bool) {
    let clients = vec![
        client(OURS, Kind::Ours, &[]),
        client(OURS_JSON, Kind::Ours, &["--framing", "json"]),
        client(RAW_HOOK, Kind::Raw, &["--hook"]),
        client(RAW_PARSE, Kind::Raw, &["--hook", "--parse"]),
        client(RAW_BARE, Kind::Raw, &[]),
        client(ZMQ, Kind::Peer("zmq"), &[]),
        client(WSC, Kind::Peer("websocket-client"), &[]),
        client(
            WSC_FAST,
            Kind::Peer("websocket-client"),
            &["--skip-utf8-validation"],
        ),
        client(E2B, Kind::Peer("e2b-ws"), &[]),
    ];
    let (n, it) = if quick { (1, "1") } else { (3, "2") };
    let n = env_num("E2B_BENCH_STREAM_ROUNDS", n);
    let args = strings(&["--iterations", it, "--warmup", "1", "--mb", "20"]);
    rounds(
        bench,
        results,
        "stream",
        clients,
        n,
        &args,
        Duration::from_secs(900),
    );
}

fn reconnect(bench: &Bench, results: &mut Results, quick: bool) {
    let clients = vec![
        client(OURS, Kind::Ours, &[]),
        client(WSC, Kind::Peer("websocket-client"), &[]),
        client(E2B, Kind::Peer("e2b-ws"), &[]),
        client(ZMQ, Kind::Peer("zmq"), &[]),
    ];
    let (n, it) = if quick { (1, "20") } else { (2, "50") };
    let args = strings(&["--iterations", it, "--warmup", "5"]);
    rounds(
        bench,
        results,
        "reconnect",
        clients,
        n,
        &args,
        Duration::from_secs(300),
    );
}

fn create(bench: &Bench, results: &mut Results, quick: bool) {
    // Peers make their own kernels here: the measurement is the kernel start.
    let clients = [
        client(OURS, Kind::Ours, &[]),
        client(ZMQ, Kind::Peer("zmq"), &[]),
        client(WSC, Kind::Peer("websocket-client"), &[]),
        client(E2B, Kind::Peer("e2b-ws"), &[]),
    ];
    let (n, it) = if quick { (1, "2") } else { (2, "5") };
    let args = strings(&["--iterations", it, "--warmup", "1", "--kernel", "none"]);
    eprintln!("compare: create: {n} round(s)");
    for r in 0..n {
        for i in 0..clients.len() {
            let c = &clients[(i + r) % clients.len()];
            let v = bench.run(c, "create", None, &args, Duration::from_secs(600));
            push(results, "create", c.name, v);
        }
        let local = client(OURS_LOCAL, Kind::Ours, &[]);
        let largs = strings(&[
            "--iterations",
            if quick { "1" } else { "3" },
            "--warmup",
            "0",
        ]);
        let v = bench.run(
            &local,
            "create-local",
            None,
            &largs,
            Duration::from_secs(600),
        );
        push(results, "create", OURS_LOCAL, v);
    }
}

fn concurrent(bench: &Bench, results: &mut Results, quick: bool) {
    let conns = env_num("E2B_BENCH_CONNECTIONS", 32);
    let duration = if quick { "4" } else { "10" };
    let args = strings(&[
        "--connections",
        &conns.to_string(),
        "--duration",
        duration,
        "--settle",
        "2",
    ]);
    // Three rounds, so that the paired ratio (their median) is not moved by one disturbed round.
    let n = env_num("E2B_BENCH_CONCURRENT_ROUNDS", if quick { 1 } else { 3 });
    eprintln!("compare: concurrent: {conns} connections, {n} round(s)");
    // Other jobs on the machine come and go within minutes: ours and the peers take turns,
    // round by round, ours (binary, then JSON) first in even rounds and last in odd ones.
    let ours = [
        client(OURS, Kind::Ours, &[]),
        client(OURS_JSON, Kind::Ours, &["--framing", "json"]),
    ];
    for r in 0..n {
        if r % 2 == 0 {
            concurrent_ours(bench, results, &ours, &args);
        }
        concurrent_peers(bench, results, conns, &args[2..]);
        if r % 2 == 1 {
            concurrent_ours(bench, results, &ours, &args);
        }
    }
}

fn concurrent_ours(bench: &Bench, results: &mut Results, ours: &[Client], args: &[String]) {
    for c in ours {
        let v = bench.run(c, "concurrent", None, args, Duration::from_secs(900));
        push(results, "concurrent", c.name, v);
    }
}

/// The peers of one round on one fresh set of kernels, zmq first (see bench/peers/README.md:
/// a websocket peer that leaves makes the server buffer that kernel's output).
fn concurrent_peers(bench: &Bench, results: &mut Results, conns: usize, args: &[String]) {
    let mut kernels = Vec::new();
    for _ in 0..conns {
        match bench.rest.start_kernel() {
            Ok(k) => kernels.push(k),
            Err(e) => {
                eprintln!("compare: kernel start failed: {e}");
                break;
            }
        }
    }
    if kernels.len() == conns {
        let list = kernels.join(",");
        for (name, peer) in [(ZMQ, "zmq"), (WSC, "websocket-client"), (E2B, "e2b-ws")] {
            let c = client(name, Kind::Peer(peer), &[]);
            let v = bench.run(
                &c,
                "concurrent",
                Some(&list),
                args,
                Duration::from_secs(900),
            );
            push(results, "concurrent", name, v);
        }
    }
    for k in &kernels {
        bench.rest.delete_kernel(k);
    }
}

/// How cost grows with work: ours with 8, 32 and 128 concurrent contexts of one sandbox, and
/// as many sandboxes (`Sandbox::jupyter` handles, one default context each) on the server.
/// Stored under "scale" as "contexts N" / "sandboxes N".
pub const SCALE_SIZES: [usize; 3] = [8, 32, 128];

fn scale(bench: &Bench, results: &mut Results, quick: bool) {
    let duration = if quick { "3" } else { "8" };
    for mode in ["contexts", "sandboxes"] {
        for n in SCALE_SIZES {
            let mut args = strings(&["--duration", duration, "--settle", "2"]);
            args.extend(["--connections".into(), n.to_string()]);
            if mode == "sandboxes" {
                args.push("--sandboxes".into());
            }
            let name = format!("{mode} {n}");
            eprintln!("compare: scale: {name}");
            let c = client(OURS, Kind::Ours, &[]);
            let v = bench.run(&c, "concurrent", None, &args, Duration::from_secs(900));
            push(results, "scale", &name, v);
        }
    }
}

/// The local sandbox on its own server, isolated (the default) and not: round trip and
/// create → first result, the two taking turns round by round.
fn local(bench: &Bench, results: &mut Results, quick: bool) {
    let clients = [
        client(LOCAL_ISOLATED, Kind::Ours, &["--isolation", "bwrap"]),
        client(LOCAL_NONE, Kind::Ours, &["--isolation", "none"]),
        client(
            LOCAL_SPARE,
            Kind::Ours,
            &["--isolation", "bwrap", "--warm-spare", "--pause-ms", "2000"],
        ),
    ];
    let n = env_num("E2B_BENCH_ROUNDS", if quick { 1 } else { 3 });
    let (it, creates) = if quick { ("30", "2") } else { ("200", "3") };
    let args = strings(&["--iterations", it, "--warmup", "20", "--creates", creates]);
    for r in 0..n {
        for i in 0..clients.len() {
            let c = &clients[(i + r) % clients.len()];
            let v = bench.run(c, "local", None, &args, Duration::from_secs(600));
            push(results, "local", c.name, v);
        }
    }
}

fn push(results: &mut Results, m: &str, name: &str, v: Value) {
    results
        .entry(m.to_string())
        .or_default()
        .entry(name.to_string())
        .or_default()
        .push(v);
}
