//! The E2B data plane on the rig of `tests/support/data_rig.rs` (envd and the code-interpreter
//! stand-ins in front of a real jupyter_server, behind the sandbox-proxy stand-in): e2b-blocking
//! beside E2B's official Python SDK (`e2b-code-interpreter` 2.11.5, debug mode, pointed at the
//! same proxy), both through the code-interpreter server's `/execute`. Round trip of
//! `run_code("1")` and 20 MiB of stdout streamed, as ratios ours / theirs.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::data_rig::{DataRig, Options, rig_python};
use crate::util::{Res, run_with_deadline};

const BEGIN: &str = "<!-- BEGIN GENERATED: E2B_BENCH_ONLY=e2bplane rewrites this part -->";
const END: &str = "<!-- END GENERATED: e2bplane -->";
const STREAM_MIB: u64 = 20;

/// Runs both clients; returns the report's markdown.
pub fn run(logs: &std::path::Path, quick: bool) -> Res<String> {
    let (rounds, stream_rounds) = if quick { (20, 1) } else { (200, 4) };
    let rig = DataRig::start_with(&Options {
        open: true,
        ..Default::default()
    });
    eprintln!("compare: e2bplane: rig up");

    // Theirs runs in its own process, through a proxy of its own: in debug mode E2B's SDK
    // names the sandbox `debug_sandbox_id` in its routing headers.
    let debug_proxy = crate::e2b_rig::SandboxProxy::start_ports(
        &[
            ("49983", rig.standins.envd),
            ("49999", rig.standins.interpreter),
        ],
        "debug_sandbox_id",
        Default::default(),
        Default::default(),
    )?;
    let sbx = e2b_blocking::Sandbox::builder()
        .e2b_with(&rig.config(), &e2b_blocking::E2bOptions::default())?;
    for _ in 0..5 {
        let _ = sbx.run_code("1")?;
    }
    // The two clients take turns, block by block, so a change of the machine's load (it is
    // shared) falls on both.
    let (mut ours_rt, mut ours_stream, mut their_rt, mut their_stream) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for block in 0..stream_rounds {
        ours(&sbx, rounds / stream_rounds, &mut ours_rt, &mut ours_stream)?;
        let (rt, stream) = theirs(&debug_proxy.url(), rounds / stream_rounds, logs, block)?;
        their_rt.extend(rt);
        their_stream.extend(stream);
    }
    drop(sbx);

    let (om, op90, tm, tp90) = (
        median(&ours_rt),
        p90(&ours_rt),
        median(&their_rt),
        p90(&their_rt),
    );
    let (os, ts) = (median(&ours_stream), median(&their_stream));
    let mib_s = |s: f64| STREAM_MIB as f64 / s;
    let text = format!(
        "{BEGIN}\n\
         ### E2B data plane: e2b-blocking vs E2B's official Python SDK\n\n\
         Both against the E2B data-plane rig (`tests/support/data_rig.rs`: the code-interpreter\n\
         server stand-in in front of a real jupyter_server on a Unix socket, behind the\n\
         sandbox-proxy stand-in, all on 127.0.0.1), one after the other in one run, through\n\
         `POST /execute`; the official SDK is `e2b-code-interpreter` 2.11.5 in debug mode with\n\
         `E2B_SANDBOX_URL` at a proxy stand-in of its own (it names the sandbox `debug_sandbox_id`). {rounds} round trips and {stream_rounds} stream(s) each, in {stream_rounds} turns{quick}.\n\
         Load average at the end: {load}.\n\n\
         | measurement | e2b-blocking | official Python SDK | ratio (ours / theirs) |\n\
         |---|---|---|---|\n\
         | `run_code(\"1\")` round trip, median | {om:.2} ms | {tm:.2} ms | {:.2} |\n\
         | `run_code(\"1\")` round trip, p90 | {op90:.2} ms | {tp90:.2} ms | {:.2} |\n\
         | {STREAM_MIB} MiB of stdout streamed, median | {os:.2} s ({:.1} MiB/s) | {ts:.2} s ({:.1} MiB/s) | {:.2} |\n\n\
         Lower is better; most of a round trip is the stand-in server and the kernel, which both\n\
         clients share, so the ratio understates the difference between the clients themselves.\n\
         {END}\n",
        om / tm,
        op90 / tp90,
        mib_s(os),
        mib_s(ts),
        os / ts,
        quick = if quick { " (E2B_BENCH_QUICK)" } else { "" },
        load = crate::report::loadavg(),
    );
    Ok(text)
}

/// `rounds` round trips and one stream of ours.
fn ours(
    sbx: &e2b_blocking::Sandbox,
    rounds: usize,
    rt: &mut Vec<f64>,
    stream: &mut Vec<f64>,
) -> Res<()> {
    for _ in 0..rounds {
        let t = Instant::now();
        let exec = sbx.run_code("1")?;
        rt.push(t.elapsed().as_secs_f64() * 1000.0);
        if exec.text() != Some("1") {
            return Err(format!("run_code(\"1\") gave {exec:?}").into());
        }
    }
    let code = format!(
        "import sys\nline = 'x' * 1023 + '\\n'\nfor _ in range({STREAM_MIB} * 1024):\n    \
         sys.stdout.write(line)\nsys.stdout.flush()"
    );
    let t = Instant::now();
    let mut got = 0usize;
    let exec = sbx
        .code(code.as_str())
        .timeout(Duration::from_secs(600))
        .on_stdout(|m| got += m.line.len())
        .run()?;
    stream.push(t.elapsed().as_secs_f64());
    if got as u64 != STREAM_MIB << 20 || exec.error.is_some() {
        return Err(format!("the stream gave {got} bytes").into());
    }
    Ok(())
}

/// `rounds` round trips and one stream of E2B's official SDK, in a process of its own.
fn theirs(
    url: &str,
    rounds: usize,
    logs: &std::path::Path,
    block: usize,
) -> Res<(Vec<f64>, Vec<f64>)> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/peers/e2b_plane.py");
    let mut cmd = Command::new(rig_python());
    cmd.arg(script)
        .arg(rounds.to_string())
        .arg(STREAM_MIB.to_string())
        .arg("1")
        .env("E2B_SANDBOX_URL", url)
        .env("E2B_DEBUG", "true");
    let log = logs.join(format!("e2bplane-python-{block}.log"));
    let (ok, out) = run_with_deadline(&mut cmd, Duration::from_secs(1800), &log)?;
    if !ok {
        return Err(format!("the official SDK failed; see {}", log.display()).into());
    }
    let theirs: Value = crate::util::last_json(&out).ok_or("no JSON from the official SDK")?;
    let floats = |v: &Value| -> Vec<f64> {
        v.as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default()
    };
    Ok((floats(&theirs["roundtrip_ms"]), floats(&theirs["stream_s"])))
}

/// Replaces the E2B-plane part of `path` (or appends it).
pub fn write(path: &std::path::Path, text: &str) -> Res<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if e > b => {
            format!("{}{}{}", &old[..b], text.trim_end(), &old[e + END.len()..])
        }
        _ => format!("{}\n{}", old.trim_end(), text),
    };
    std::fs::write(path, new)?;
    Ok(())
}

fn median(v: &[f64]) -> f64 {
    quantile(v, 0.5)
}

fn p90(v: &[f64]) -> f64 {
    quantile(v, 0.9)
}

fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return f64::NAN;
    }
    s[((s.len() - 1) as f64 * q).round() as usize]
}
