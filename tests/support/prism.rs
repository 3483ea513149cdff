//! Stoplight Prism as a mock of an OpenAPI spec on 127.0.0.1, for contract tests.
//!
//! [`Prism::start`] installs the pinned `@stoplight/prism-cli` into `<repo>/target/prism` with
//! npm the first time (about 30 s; a file lock keeps parallel test binaries from racing), then
//! runs `prism mock <spec>` on a free port and waits until it answers. Dropping the [`Prism`]
//! kills its process group; if the test process dies first, a guard shell sees its stdin
//! close and kills Prism, so no mock outlives the tests.
//!
//! Prism validates every request against the spec (path, query, headers, security, body) and
//! answers a violation with the spec's 400/401/422 and an `sl-violations` header; requests
//! can steer the answer with `Prefer: code=404`, `Prefer: example=…` or `Prefer: dynamic=true`.
//!
//! Needs Node.js ([`NODE_MIN`] or later) and `npm` with registry access for the first install;
//! without them the test fails with one line saying what to install.
#![allow(dead_code)]

use std::fs::{self, File};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// The pinned Prism release: the newest that runs on Node 18/20 (5.15 and later want Node 24).
pub const PRISM_VERSION: &str = "5.14.2";

/// The oldest Node.js the pinned Prism supports (its `engines` field).
pub const NODE_MIN: (u32, u32, u32) = (18, 20, 1);

/// What to install when Node.js or npm is missing or too old.
const NODE_HINT: &str = "install Node.js 18.20.1 or later and npm (Debian: apt-get install nodejs, then npm \
     unless nodejs has it, as NodeSource's does; Debian 12 before its 18.20.4 update is too old)";

/// Deadline for Prism to answer after it is spawned.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// Ports tried before giving up (another process may grab the port we picked).
const PORT_ATTEMPTS: u32 = 5;

/// A running `prism mock`. Killed, with its process group, on drop.
pub struct Prism {
    child: Child,
    url: String,
    log: PathBuf,
    keep_log: bool,
}

impl std::fmt::Debug for Prism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prism")
            .field("url", &self.url)
            .field("pid", &self.child.id())
            .finish()
    }
}

/// `<repo>/target/prism`.
pub fn prism_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("prism")
}

/// `v20.11.0` → `(20, 11, 0)`.
pub fn parse_node_version(text: &str) -> Option<(u32, u32, u32)> {
    let mut parts = text.trim().trim_start_matches('v').splitn(3, '.');
    let mut next = || {
        parts
            .next()?
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some((next()?, next()?, next()?))
}

/// Panics with one line saying what to install unless Node.js is recent enough for Prism.
pub fn require_node() {
    let text = crate::support::require_tool("node", NODE_HINT);
    match parse_node_version(&text) {
        Some(v) if v >= NODE_MIN => {}
        _ => panic!("Node.js {text} is too old for Prism {PRISM_VERSION}: {NODE_HINT}"),
    }
}

/// Installs the pinned Prism once; returns the path of its `prism` executable.
pub fn ensure_installed() -> PathBuf {
    require_node();
    crate::support::require_tool("npm", NODE_HINT);
    crate::support::installs::npm_package(
        &prism_dir(),
        "@stoplight/prism-cli",
        PRISM_VERSION,
        "prism",
    )
}

/// The entries of the YAML mapping that starts after the line `header`, whose keys sit at
/// `indent`: each entry is its key line with everything below it, shifted right by `shift`.
/// Comment lines go with the entry before them. Also returns the line range the mapping spans.
fn entries(
    lines: &[&str],
    header: &str,
    indent: usize,
    shift: usize,
) -> (Vec<(String, Vec<String>)>, std::ops::Range<usize>) {
    let start = lines
        .iter()
        .position(|l| *l == header)
        .unwrap_or_else(|| panic!("no {header:?} line"))
        + 1;
    let depth = |l: &str| l.len() - l.trim_start().len();
    let is_content = |l: &str| !l.trim().is_empty() && !l.trim_start().starts_with('#');
    let mut end = start;
    while end < lines.len() && !(is_content(lines[end]) && depth(lines[end]) < indent) {
        end += 1;
    }
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in &lines[start..end] {
        let shifted = if line.trim().is_empty() {
            String::new()
        } else {
            format!("{}{line}", " ".repeat(shift))
        };
        if is_content(line) && depth(line) == indent {
            let key = line.trim().trim_end_matches(':').to_string();
            out.push((key, vec![shifted]));
        } else if let Some((_, block)) = out.last_mut() {
            block.push(shifted);
        }
    }
    (out, start..end)
}

/// `spec` (an OpenAPI YAML file with `paths:` and `components:` → `schemas:` laid out as E2B's
/// is) with the entries of `overlay` (a YAML file of top-level `paths:` and `schemas:`)
/// replacing the spec's entries of the same name, or added after them.
pub fn merge_overlay(spec: &str, overlay: &str) -> String {
    let over: Vec<&str> = overlay.lines().collect();
    let mut text = spec.to_string();
    for (spec_header, over_header, indent) in
        [("paths:", "paths:", 2), ("  schemas:", "schemas:", 4)]
    {
        let lines: Vec<&str> = text.lines().collect();
        let (mut merged, range) = entries(&lines, spec_header, indent, 0);
        let (added, _) = entries(&over, over_header, 2, indent - 2);
        for (key, block) in added {
            match merged.iter_mut().find(|(k, _)| *k == key) {
                Some(entry) => entry.1 = block,
                None => merged.push((key, block)),
            }
        }
        let mut out: Vec<String> = lines[..range.start].iter().map(|l| l.to_string()).collect();
        out.extend(merged.into_iter().flat_map(|(_, block)| block));
        out.extend(lines[range.end..].iter().map(|l| l.to_string()));
        text = out.join("\n") + "\n";
    }
    text
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port on 127.0.0.1")
}

impl Prism {
    /// Installs Prism if needed and mocks `spec` on a free port of 127.0.0.1. Panics (failing
    /// the test) when Prism cannot be installed or does not answer within a minute.
    pub fn start(spec: &Path) -> Prism {
        assert!(spec.is_file(), "no spec at {}", spec.display());
        let bin = ensure_installed();
        let logs = prism_dir().join("logs");
        fs::create_dir_all(&logs).expect("create target/prism/logs");
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let log = logs.join(format!("prism-{}-{port}.log", std::process::id()));
            match Prism::spawn(&bin, spec, port, &log) {
                Ok(prism) => return prism,
                Err(text) if text.contains("EADDRINUSE") => {
                    let _ = fs::remove_file(&log);
                    last_log = text;
                }
                Err(text) => panic!("Prism did not start; its log ({}):\n{text}", log.display()),
            }
        }
        panic!("Prism found no free port in {PORT_ATTEMPTS} attempts:\n{last_log}");
    }

    /// Spawns Prism under a guard shell in a new process group. `Err` holds Prism's log.
    fn spawn(bin: &Path, spec: &Path, port: u16, log: &Path) -> Result<Prism, String> {
        let out = File::create(log).expect("create the Prism log");
        let err = out.try_clone().expect("clone the Prism log handle");
        // The shell keeps our pipe on fd 3; a background reader kills Prism when the pipe
        // closes (the test process died). `wait` makes the shell exit when Prism does.
        let script = r#"exec 3<&0
"$0" mock "$1" -h 127.0.0.1 -p "$2" </dev/null &
p=$!
(read -r _ <&3; kill "$p" 2>/dev/null) &
wait "$p""#;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .arg(bin)
            .arg(spec)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().expect("spawn sh for Prism");
        let mut prism = Prism {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log: log.to_path_buf(),
            keep_log: true,
        };
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = prism.child.try_wait() {
                return Err(format!("Prism exited ({status})\n{}", prism.log_text()));
            }
            if prism.answers(port) {
                prism.keep_log = false;
                return Ok(prism);
            }
            if start.elapsed() > START_DEADLINE {
                return Err(format!(
                    "no answer within {START_DEADLINE:?}\n{}",
                    prism.log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// True once something answers HTTP on the port with Prism's log saying it listens.
    fn answers(&self, port: u16) -> bool {
        if TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
            .is_err()
        {
            return false;
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .into();
        agent.get(format!("{}/health", self.url)).call().is_ok()
            && self.log_text().contains("Prism is listening")
    }

    /// The base URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What Prism logged so far (every request, and the violations it found).
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        let pgid = Pid::from_raw(self.child.id() as i32);
        let _ = killpg(pgid, Signal::SIGKILL);
        if let Some(stdin) = self.child.stdin.as_mut() {
            let _ = stdin.flush();
        }
        let _ = self.child.wait();
        // Keep the log of a failed test for a look; tests also print it when they fail.
        if !self.keep_log && !std::thread::panicking() {
            let _ = fs::remove_file(&self.log);
        }
    }
}
