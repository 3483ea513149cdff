//! The spec of the SDK's secrets guarantee, stated in `src/net/redact/mod.rs`: no log record of
//! any target at any level, and no `Debug` output, carries a token, an API key, a header value
//! or an env var value. Each test runs in a process of its own and
//! installs a logger there (the global logger can be set once per process) that keeps every record of every target at trace
//! level, drives a local sandbox through REST, websocket, files, commands and terminal calls and
//! a forced reconnect, and an E2B sandbox whose control plane hands out access tokens, and looks
//! for the secrets in what was logged and in the `Debug` output of what holds them.

use std::sync::Mutex;
use std::time::Duration;

use crate::support::own_process::in_own_process;
use crate::support::{deadline, through_proxy, token_of};
use e2b_blocking::{ConnectionState, Sandbox};

struct Record {
    target: String,
    message: String,
}

static RECORDS: Mutex<Vec<Record>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let entry = Record {
            target: record.target().to_string(),
            message: record.args().to_string(),
        };
        match RECORDS.lock() {
            Ok(mut g) => g.push(entry),
            Err(p) => p.into_inner().push(entry),
        }
    }

    fn flush(&self) {}
}

static LOGGER: Capture = Capture;

/// Installs the capturing logger of this test's own process.
fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        log::set_logger(&LOGGER).expect("the only logger of this process");
        log::set_max_level(log::LevelFilter::Trace);
    });
}

/// Pieces of `secret` long enough to identify it: whole 12-character windows of it and of its
/// hex encoding, so a hex dump that splits the token over rows is caught too.
///
/// ureq-proto dumps 16 bytes a row, one record per row, so a secret of 31 bytes or more fills
/// at least one row whole wherever it starts: its hex windows are then 16 bytes (32 hex
/// characters) long, which still catch every such dump, and which random hex in a record (a
/// mask, a message id, a frame's payload) cannot match by chance as 6 bytes of a hex token can.
fn fingerprints(secret: &str) -> Vec<String> {
    const WINDOW: usize = 12;
    const DUMP_ROW: usize = 16;
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    let hex_window = if secret.len() >= 2 * DUMP_ROW - 1 {
        2 * DUMP_ROW
    } else {
        WINDOW
    };
    let mut out = Vec::new();
    for (s, window) in [(secret, WINDOW), (hex.as_str(), hex_window)] {
        let chars: Vec<char> = s.chars().collect();
        for w in chars.windows(window.min(chars.len())) {
            out.push(w.iter().collect());
        }
    }
    out
}

#[test]
fn no_log_record_carries_the_token_across_a_reconnect() {
    in_own_process(|| {
        capture_logs();
        deadline(|| {
            let owner = crate::support::local_tcp();
            let token = token_of(&owner);
            let (proxy, sbx) = through_proxy(&owner, Sandbox::builder());
            for s in [&owner, &sbx] {
                assert_eq!(s.run_code("n = 41").unwrap().error, None);
            }
            let states = sbx.watch_connection().unwrap();
            assert!(proxy.cut_all() > 0);
            loop {
                match states.recv_timeout(Duration::from_secs(60)) {
                    Some(ConnectionState::Reconnecting { .. }) => break,
                    Some(_) => {}
                    None => panic!("no reconnect seen"),
                }
            }
            assert_eq!(sbx.run_code("n + 1").unwrap().text(), Some("42"));
            for s in [&owner, &sbx] {
                let files = s.files();
                files.write("secret-test.txt", "hello").unwrap();
                assert_eq!(files.read("secret-test.txt").unwrap(), "hello");
                assert!(!files.list(".").unwrap().is_empty());
                files.remove("secret-test.txt").unwrap();
                let out = s.commands().run("echo hi").unwrap();
                assert!(out.success(), "{out:?}");
            }
            let shown = [
                format!("{owner:?}"),
                format!("{sbx:?}"),
                format!("{:?}", owner.jupyter_headers()),
                format!("{:?}", owner.jupyter_token()),
            ];
            drop(sbx);
            drop(proxy);
            owner.close().unwrap();

            assert_no_text_carries(&shown, &token);
            let records = RECORDS.lock().unwrap_or_else(|p| p.into_inner());
            assert_nothing_carries(&records, &token);
            // Not vacuous: the dependencies that see the secrets did log, the reconnect happened.
            for prefix in ["tungstenite", "ureq"] {
                assert!(
                    records.iter().any(|r| r.target.starts_with(prefix)),
                    "no record from {prefix}"
                );
            }
            assert!(
                records.iter().any(|r| r.message.contains("reconnected")),
                "no reconnect logged"
            );
        });
    });
}

/// The same over each of the agent's other connector chains: ureq's TLS (a private CA trusted),
/// the SDK's own TLS (a pinned certificate) and an isolated sandbox's Unix socket; rustls logs
/// too.
#[test]
fn no_log_record_carries_the_token_over_tls_or_a_unix_socket() {
    in_own_process(|| {
        use crate::support::tls_proxy::{TestCa, TlsProxy};

        capture_logs();
        deadline(|| {
            let owner = crate::support::local_tcp();
            let token = token_of(&owner);
            let ca = TestCa::new();
            let proxy = TlsProxy::start(crate::support::server_addr(&owner), &ca).unwrap();
            let over_tls = |builder: e2b_blocking::SandboxBuilder| {
                builder.jupyter(&proxy.url(), token.as_str()).unwrap()
            };
            let isolated = crate::support::local();
            let unix_token = token_of(&isolated);
            assert!(isolated.jupyter_url().starts_with("http+unix://"));
            let sandboxes = [
                over_tls(Sandbox::builder().add_root_certificate(ca.ca_pem.clone())),
                over_tls(Sandbox::builder().trust_server_certificate(ca.leaf_pem.clone())),
                isolated,
            ];
            for s in &sandboxes {
                assert_eq!(s.run_code("6 * 7").unwrap().text(), Some("42"));
                let files = s.files();
                files.write("secret-test.txt", "hello").unwrap();
                assert_eq!(files.read("secret-test.txt").unwrap(), "hello");
                files.remove("secret-test.txt").unwrap();
            }
            assert!(proxy.handshakes() >= 4, "{}", proxy.handshakes());
            drop(sandboxes);
            drop(proxy);
            owner.close().unwrap();

            let records = RECORDS.lock().unwrap_or_else(|p| p.into_inner());
            assert_nothing_carries(&records, &token);
            assert_nothing_carries(&records, &unix_token);
            assert!(
                records.iter().any(|r| r.target.starts_with("rustls")),
                "no record from rustls"
            );
        });
    });
}

/// Env var values are often API keys. The SDK sends them in an execution's metadata, a
/// kernel's silent set-up cell and a command request's metadata (frames it writes itself,
/// since tungstenite logs the frames it writes, and that the kernel does not echo back), and
/// in a terminal's REST body (ureq logs no body it sends with a known length). So at trace
/// level no record shows them, across a reconnect too.
#[test]
fn no_log_record_carries_env_values() {
    in_own_process(|| {
        use e2b_blocking::{ContextOptions, PtyEvent, PtyOptions};

        capture_logs();
        deadline(|| {
            let owner = crate::support::local_tcp();
            let values: Vec<String> = (0..5).map(|_| letters_token()).collect();
            let builder = Sandbox::builder().envs([("SANDBOX_KEY", values[0].as_str())]);
            let context_options = ContextOptions::new().envs([("CONTEXT_KEY", values[1].as_str())]);
            let pty_options = PtyOptions::default().envs([("TERMINAL_KEY", values[4].as_str())]);
            let mut shown = vec![
                format!("{builder:?}"),
                format!("{context_options:?}"),
                format!("{pty_options:?}"),
            ];
            let (proxy, sbx) = through_proxy(&owner, builder);
            let ctx = sbx.create_context(context_options).unwrap();
            let lengths = "import os; [len(os.environ.get(k, '')) for k in \
                           ('SANDBOX_KEY', 'CONTEXT_KEY', 'RUN_KEY')]";
            let run = |sbx: &Sandbox| {
                sbx.code(lengths)
                    .context(&ctx)
                    .envs([("RUN_KEY", values[2].as_str())])
                    .run()
                    .unwrap()
            };
            assert_eq!(run(&sbx).text(), Some("[32, 32, 32]"));
            let command = |sbx: &Sandbox| {
                sbx.commands()
                    .cmd("printf %s \"$SANDBOX_KEY$COMMAND_KEY\" | wc -c")
                    .env("COMMAND_KEY", values[3].as_str())
                    .run()
                    .unwrap()
            };
            assert_eq!(command(&sbx).stdout.trim(), "64");
            let term = sbx.pty().create_with(pty_options).unwrap();
            term.send_input("echo len-${#TERMINAL_KEY}-$((1+1))\n")
                .unwrap();
            let mut screen = String::new();
            while !screen.contains("len-32-2") {
                match term.recv_timeout(Duration::from_secs(30)).unwrap() {
                    Some(PtyEvent::Output(text)) => screen.push_str(&text),
                    Some(_) => {}
                    None => panic!("no terminal output; so far: {screen:?}"),
                }
            }
            drop(term);
            assert!(proxy.cut_all() > 0);
            assert_eq!(run(&sbx).text(), Some("[32, 32, 32]"));
            assert_eq!(command(&sbx).stdout.trim(), "64");
            shown.extend([format!("{sbx:?}"), format!("{ctx:?}")]);
            drop(sbx);
            drop(proxy);
            owner.close().unwrap();

            let records = RECORDS.lock().unwrap_or_else(|p| p.into_inner());
            for value in &values {
                assert_no_text_carries(&shown, value);
                assert_nothing_carries(&records, value);
            }
            // Not vacuous: tungstenite logged the frames it read.
            assert!(
                records
                    .iter()
                    .any(|r| r.target.starts_with("tungstenite") && r.message.contains("frame")),
                "no frame logged by tungstenite"
            );
        });
    });
}

/// Whether `text` carries a piece of `secret` (see [`fingerprints`]), whitespace aside.
fn carries(text: &str, prints: &[String]) -> bool {
    let flat: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    prints.iter().any(|p| flat.contains(p.as_str()))
}

/// Records that carry a piece of `secret`.
fn carrying<'a>(records: &'a [Record], secret: &str) -> Vec<&'a Record> {
    let prints = fingerprints(secret);
    records
        .iter()
        .filter(|r| carries(&r.message, &prints))
        .collect()
}

/// `Debug` output (or any text shown) must not carry a piece of `secret` either.
fn assert_no_text_carries(shown: &[String], secret: &str) {
    let prints = fingerprints(secret);
    for text in shown {
        assert!(!carries(text, &prints), "a secret in Debug output: {text}");
    }
}

fn assert_nothing_carries(records: &[Record], secret: &str) {
    let leaks = carrying(records, secret);
    let mut targets: Vec<&str> = leaks.iter().map(|r| r.target.as_str()).collect();
    targets.dedup();
    assert!(
        leaks.is_empty(),
        "{} of {} records carry the secret, from {targets:?}, e.g.:\n{}",
        leaks.len(),
        records.len(),
        leaks
            .iter()
            .map(|r| format!("[{}] {}", r.target, r.message))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// E2B's answers to creating and connecting to a sandbox carry its access tokens; ureq dumps
/// every response it reads at trace level, and none of those dumps may show them.
#[test]
fn no_log_record_carries_the_e2b_access_tokens() {
    in_own_process(|| {
        use crate::support::e2b_plane::{assert_created_then_killed, control_plane_recording};
        use crate::support::python_server::PythonServer;
        use e2b_blocking::e2b::{E2bClient, FileUrlOptions};
        use e2b_blocking::{E2bConfig, E2bOptions};

        capture_logs();
        deadline(|| {
            // Random and nothing else (no word a header name could share), so a hit is a leak.
            let envd = letters_token();
            let traffic = letters_token();
            let jupyter = PythonServer::tokenless_jupyter();
            let env_value = letters_token();
            let (plane, seen, bodies) = control_plane_recording(serde_json::json!({
                "envdAccessToken": envd, "trafficAccessToken": traffic,
            }));
            // The stand-in refuses any other key, so every call that succeeds carried it.
            let api_key = "e2b_test";
            let config = E2bConfig::default()
                .api_key(api_key)
                .api_url(plane.http_url())
                .sandbox_url(jupyter.url.clone());
            let options = E2bOptions::default().envs([("E2B_KEY", env_value.as_str())]);
            let sbx = Sandbox::builder().e2b_with(&config, &options).unwrap();
            assert_eq!(sbx.run_code("6 * 7").unwrap().text(), Some("42"));
            // Connecting answers with the tokens too, and the client must still read them.
            let access = E2bClient::new(&config)
                .unwrap()
                .connect(
                    sbx.sandbox_id(),
                    &e2b_blocking::e2b::ConnectOptions::new().lifetime(Duration::from_secs(300)),
                )
                .unwrap();
            assert_eq!(
                access.envd_access_token.as_ref().map(|t| t.expose_secret()),
                Some(envd.as_str())
            );
            assert_eq!(
                access
                    .traffic_access_token
                    .as_ref()
                    .map(|t| t.expose_secret()),
                Some(traffic.as_str())
            );
            // A signed file URL is handed to the caller only: its signature is as secret as a token.
            let e2b = sbx.as_e2b().expect("an E2B sandbox");
            let url = e2b
                .download_url(
                    "/home/user/signed.txt",
                    &FileUrlOptions::new().expires_in(Duration::from_secs(60)),
                )
                .unwrap();
            let signature = url
                .split(['?', '&'])
                .find_map(|p| p.strip_prefix("signature="))
                .expect("a signed URL")
                .replace("%2B", "+")
                .replace("%2F", "/");
            assert!(signature.starts_with("v1_"), "{url}");
            let shown = [
                format!("{config:?}"),
                format!("{options:?}"),
                format!("{sbx:?}"),
                format!("{e2b:?}"),
                format!("{access:?}"),
            ];
            drop(sbx);
            assert_created_then_killed(&seen);
            // The env value reached the control plane in the create body, which ureq does not log
            // (it logs bodies it sends only when they are chunked).
            let created: serde_json::Value =
                serde_json::from_slice(&bodies.lock().unwrap()[0]).expect("a JSON create body");
            assert_eq!(created["envVars"]["E2B_KEY"], env_value.as_str());

            let records = RECORDS.lock().unwrap_or_else(|p| p.into_inner());
            for secret in [envd.as_str(), &traffic, &env_value, api_key, &signature] {
                assert_no_text_carries(&shown, secret);
                assert_nothing_carries(&records, secret);
            }
            // Not vacuous: ureq dumped the answer to the create at trace level.
            assert!(
                !carrying(&records, "HTTP/1.1 201").is_empty(),
                "ureq did not dump the answer to the create"
            );
        });
    });
}

/// A random token of the letters g to v. A hex token often holds six digits in a row, whose
/// hex form can match a number (a timestamp, a port) in some other dumped message by chance.
fn letters_token() -> String {
    uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .bytes()
        .map(|b| {
            let nibble = (b as char).to_digit(16).unwrap_or(0) as u8;
            char::from(b'g' + nibble)
        })
        .collect()
}
