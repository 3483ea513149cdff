//! Contract tests of the E2B control-plane client against E2B's official OpenAPI spec, mocked
//! by Stoplight Prism on 127.0.0.1 (see `support/prism.rs`).
//!
//! Prism rejects any request that breaks the spec (400/401/422 with an `sl-violations`
//! header), so every call below that returns `Ok` was a valid request, and its response
//! (generated from the spec) parsed into this crate's models. The mock runs on a copy of the
//! spec whose request bodies forbid unknown fields, so a misspelt field name fails too. The
//! copy also carries what E2B's SDK 2.63 calls beyond the newest published spec
//! (`tests/spec/e2b-openapi-sdk-2.63.yml`, see `tests/spec/README.md`).

#[path = "../support/prism.rs"]
mod prism;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use crate::support::{TEST_DEADLINE, within};
use e2b_blocking::e2b::{
    ALL_TRAFFIC, ConnectOptions, E2bClient, ForkOptions, Lifecycle, ListQuery, MetricsQuery,
    NetworkOptions, NetworkUpdate, OnResume, OnTimeout, Order, PauseMode, PauseOptions,
    SandboxState, SnapshotOptions, SnapshotQuery,
};
use e2b_blocking::{E2bConfig, E2bOptions, Error};
use prism::Prism;

/// The official spec, vendored with its provenance in `tests/spec/README.md`.
fn spec() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/spec/e2b-openapi.yml")
}

/// What E2B's SDK 2.63 calls beyond the published spec, transcribed from its client.
fn overlay() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/spec/e2b-openapi-sdk-2.63.yml")
}

/// Request schemas that get `additionalProperties: false` in the strict copy: every body this
/// SDK sends.
const STRICT_SCHEMAS: &[&str] = &[
    "NewSandboxV2",
    "SandboxNetworkConfig",
    "SandboxNetworkUpdateConfig",
    "SandboxTimeoutRequest",
    "SandboxRefreshRequest",
    "ConnectSandboxV2",
    "SandboxPauseRequest",
    "SandboxSnapshotRequest",
    "SandboxForkRequest",
];

/// A copy of the spec whose request schemas refuse unknown properties. Prism follows only
/// local `#/…` references; the spec has no remote ones (checked here too).
fn strict_spec() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(write_strict_spec).clone()
}

fn write_strict_spec() -> PathBuf {
    let published = std::fs::read_to_string(spec()).expect("read the E2B spec");
    let additions = std::fs::read_to_string(overlay()).expect("read the SDK 2.63 additions");
    let text = prism::merge_overlay(&published, &additions);
    for line in text.lines().filter(|l| l.contains("$ref")) {
        assert!(
            line.contains("\"#/") || line.contains("'#/"),
            "the spec has a non-local $ref, which Prism would fetch: {line}"
        );
    }
    let mut out = String::with_capacity(text.len() + 512);
    let mut found = Vec::new();
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if let Some(name) = STRICT_SCHEMAS.iter().find(|n| line == format!("    {n}:")) {
            out.push_str("      additionalProperties: false\n");
            found.push(*name);
        }
    }
    assert_eq!(
        found.len(),
        STRICT_SCHEMAS.len(),
        "schemas found: {found:?}"
    );
    let dir = prism::prism_dir();
    std::fs::create_dir_all(&dir).expect("create target/prism");
    let path = dir.join("e2b-openapi.strict.yml");
    // Prism watches its spec and reloads it when the file changes, dropping requests in
    // flight: touch the file only when its content differs.
    if std::fs::read_to_string(&path).ok().as_deref() != Some(out.as_str()) {
        let tmp = dir.join(format!("e2b-openapi.strict.yml.{}.tmp", std::process::id()));
        std::fs::write(&tmp, out).expect("write the strict spec");
        std::fs::rename(&tmp, &path).expect("move the strict spec in place");
    }
    path
}

/// One Prism shared by the tests that overlap in time; it dies with the last of them.
fn prism() -> Arc<Prism> {
    static SHARED: Mutex<Weak<Prism>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = shared.upgrade() {
        return p;
    }
    let p = Arc::new(Prism::start(&strict_spec()));
    *shared = Arc::downgrade(&p);
    p
}

fn config(prism: &Prism) -> E2bConfig {
    E2bConfig::default()
        .api_key("e2b_0123456789abcdef")
        .api_url(prism.url())
        .request_timeout(Duration::from_secs(10))
        .max_attempts(2)
}

/// A client whose requests all carry `Prefer: <prefer>`.
fn client_preferring(prism: &Prism, prefer: &str) -> E2bClient {
    E2bClient::new(&config(prism).header("Prefer", prefer)).expect("client")
}

fn full_options() -> E2bOptions {
    E2bOptions::new()
        .template("code-interpreter-v1")
        .lifetime(Duration::from_secs(600))
        .metadata([("user", "alice b"), ("app", "x&y=z")])
        .envs([("FOO", "bar")])
        .allow_internet_access(true)
        .network(
            NetworkOptions::new()
                .allow_out(["api.example.com", "8.8.8.8/32"])
                .deny_out([ALL_TRAFFIC])
                .dns_servers(["1.1.1.1"])
                .allow_public_traffic(false)
                .mask_request_host("${PORT}-app.example.com")
                .https_ports([3000]),
        )
        .lifecycle(
            Lifecycle::new()
                .on_timeout(OnTimeout::Pause)
                .pause_mode(PauseMode::Full)
                .auto_resume(true),
        )
        .idempotency_key("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
}

/// Every call the SDK makes, on a Prism of its own so that its log holds only these requests:
/// all are accepted, none is even warned about, and every response parses.
#[test]
fn every_call_is_valid_and_parses() {
    within(TEST_DEADLINE, || {
        let prism = Prism::start(&strict_spec());
        let client = E2bClient::new(&config(&prism)).unwrap();
        let id = "i1a2b3c4d5e6f7g8h9j0";
        let fail = |what: &str, e: Error| -> ! { panic!("{what}: {e:?}\n{}", prism.log_text()) };
        let mut sent = 0;
        let mut count = |n: usize| sent += n;

        let filesystem = E2bOptions::new().lifecycle(
            Lifecycle::new()
                .on_timeout(OnTimeout::Pause)
                .pause_mode(PauseMode::Filesystem),
        );
        // A snapshot is a template: a sandbox starts from one by its id.
        let from_snapshot = E2bOptions::new().template("team-slug/my-snapshot:default");
        for options in [E2bOptions::new(), full_options(), filesystem, from_snapshot] {
            let access = client
                .create(&options)
                .unwrap_or_else(|e| fail("create", e));
            assert!(!access.sandbox_id.is_empty());
            count(1);
        }

        for options in [
            ConnectOptions::new(),
            ConnectOptions::new()
                .lifetime(Duration::from_secs(300))
                .on_resume(OnResume::Reboot),
        ] {
            let access = client
                .connect(id, &options)
                .unwrap_or_else(|e| fail("connect", e));
            assert!(!access.sandbox_id.is_empty());
            count(1);
        }

        let info = client.get_info(id).unwrap_or_else(|e| fail("get_info", e));
        assert!(!info.started_at.is_empty() && info.cpu_count >= 1);
        count(1);

        let samples = client
            .metrics(id, &MetricsQuery::new())
            .unwrap_or_else(|e| fail("metrics", e));
        assert!(samples.iter().all(|m| m.mem_total >= m.mem_used));
        let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        client
            .metrics(
                id,
                &MetricsQuery::new()
                    .start(hour_ago)
                    .end(std::time::SystemTime::now()),
            )
            .unwrap_or_else(|e| fail("metrics in a range", e));
        count(2);

        let page = client
            .list(&ListQuery::new())
            .unwrap_or_else(|e| fail("list", e));
        assert!(!page.sandboxes.is_empty());
        let token = page
            .next_token
            .clone()
            .expect("the spec declares X-Next-Token");
        let query = ListQuery::new()
            .metadata([("user", "alice b"), ("app", "x&y=z")])
            .states([SandboxState::Running, SandboxState::Paused])
            .template("code-interpreter-v1")
            .started_after(hour_ago)
            .order(Order::Ascending)
            .limit(10)
            .next_token(token);
        client
            .list(&query)
            .unwrap_or_else(|e| fail("list with every filter", e));
        count(2);
        // Prism names its one example token on every page: the paginator takes the first
        // page, then refuses to follow the same token again.
        let mut pages = client.list_paged(&query);
        let first = pages
            .next_page()
            .expect("a page")
            .unwrap_or_else(|e| fail("list_paged", e));
        assert!(!first.is_empty());
        count(1);
        assert!(matches!(
            pages.next_page(),
            Some(Err(Error::Protocol { .. }))
        ));
        count(1);
        assert!(pages.next_page().is_none());

        for options in [
            PauseOptions::new(),
            PauseOptions::new().mode(PauseMode::Filesystem).strict(true),
        ] {
            assert!(
                client
                    .pause(id, &options)
                    .unwrap_or_else(|e| fail("pause", e))
            );
            count(1);
        }

        for options in [
            SnapshotOptions::new(),
            SnapshotOptions::new()
                .name("my-snapshot")
                .mode(PauseMode::Full),
        ] {
            let snapshot = client
                .create_snapshot(id, &options)
                .unwrap_or_else(|e| fail("create_snapshot", e));
            assert!(!snapshot.snapshot_id.is_empty());
            count(1);
        }
        let mut snapshots = client.list_snapshots(
            &SnapshotQuery::new()
                .sandbox_id(id)
                .name("my-snapshot:v1")
                .limit(5),
        );
        let first = snapshots
            .next()
            .expect("a snapshot")
            .unwrap_or_else(|e| fail("list_snapshots", e));
        assert!(!first.snapshot_id.is_empty());
        count(1);
        assert!(
            client
                .delete_snapshot(&first.snapshot_id)
                .unwrap_or_else(|e| fail("delete_snapshot", e))
        );
        count(1);

        for options in [
            ForkOptions::new(),
            ForkOptions::new()
                .count(3)
                .lifetime(Duration::from_secs(60)),
        ] {
            let forks = client
                .fork(id, &options)
                .unwrap_or_else(|e| fail("fork", e));
            assert!(!forks.is_empty());
            count(1);
        }

        for update in [
            NetworkUpdate::new(),
            NetworkUpdate::new()
                .allow_out(["example.com"])
                .deny_out([ALL_TRAFFIC])
                .dns_servers(["1.1.1.1"])
                .allow_internet_access(false),
        ] {
            client
                .update_network(id, &update)
                .unwrap_or_else(|e| fail("update_network", e));
            count(1);
        }

        client
            .set_lifetime(id, Duration::from_secs(120))
            .unwrap_or_else(|e| fail("set_lifetime", e));
        client
            .refresh(id, Duration::from_secs(3600))
            .unwrap_or_else(|e| fail("refresh", e));
        assert!(client.kill(id).unwrap_or_else(|e| fail("kill", e)));
        count(3);

        // Prism logs asynchronously; wait for the last request to show up.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut log = prism.log_text();
        let last = format!("delete /sandboxes/{id}");
        while !log.contains(&last) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            log = prism.log_text();
        }
        let requests = log
            .lines()
            .filter(|l| l.contains("Request received") && !l.contains("/health"))
            .count();
        assert_eq!(requests, sent, "{log}");
        assert!(
            !log.contains("Violation") && !log.contains("did not pass"),
            "Prism flagged a request:\n{log}"
        );
    });
}

#[test]
fn not_found_is_sandbox_not_found_and_kill_says_false() {
    within(TEST_DEADLINE, || {
        let prism = prism();
        let client = client_preferring(&prism, "code=404");
        let id = "gone";
        let not_found = |r: Result<(), Error>, what: &str| match r {
            Err(Error::SandboxNotFound { sandbox_id }) => assert_eq!(sandbox_id, id),
            other => panic!("{what}: {other:?}\n{}", prism.log_text()),
        };
        not_found(client.get_info(id).map(drop), "get_info");
        not_found(
            client.connect(id, &ConnectOptions::new()).map(drop),
            "connect",
        );
        not_found(client.pause(id, &PauseOptions::new()).map(drop), "pause");
        not_found(
            client
                .create_snapshot(id, &SnapshotOptions::new())
                .map(drop),
            "create_snapshot",
        );
        not_found(client.fork(id, &ForkOptions::new()).map(drop), "fork");
        not_found(
            client.update_network(id, &NetworkUpdate::new()),
            "update_network",
        );
        not_found(
            client.set_lifetime(id, Duration::from_secs(60)),
            "set_lifetime",
        );
        not_found(client.refresh(id, Duration::from_secs(60)), "refresh");
        not_found(
            client.metrics(id, &MetricsQuery::new()).map(drop),
            "metrics",
        );
        assert!(matches!(client.kill(id), Ok(false)));
    });
}

#[test]
fn missing_or_rejected_key_is_authentication() {
    within(TEST_DEADLINE, || {
        let prism = prism();
        // Debug mode allows a client without a key; Prism then enforces the spec's security.
        let keyless =
            E2bClient::new(&E2bConfig::default().debug(true).api_url(prism.url())).unwrap();
        assert!(matches!(
            keyless.get_info("x"),
            Err(Error::Authentication { status: 401, .. })
        ));
        let rejected = client_preferring(&prism, "code=401");
        assert!(matches!(
            rejected.create(&E2bOptions::new()),
            Err(Error::Authentication { status: 401, .. })
        ));
        assert!(matches!(
            rejected.kill("x"),
            Err(Error::Authentication { status: 401, .. })
        ));
    });
}

#[test]
fn server_errors_are_typed_with_the_api_message() {
    within(TEST_DEADLINE, || {
        let prism = prism();
        let client = client_preferring(&prism, "code=500");
        for r in [
            client.get_info("x").map(drop),
            client.create(&E2bOptions::new()).map(drop),
            client.list(&ListQuery::new()).map(drop),
            client.pause("x", &PauseOptions::new()).map(drop),
        ] {
            match r {
                Err(Error::Http {
                    status: 500,
                    message,
                    ..
                }) => assert!(!message.is_empty()),
                other => panic!("{other:?}"),
            }
        }
        let busy = client_preferring(&prism, "code=503");
        for r in [
            busy.create(&E2bOptions::new()).map(drop),
            busy.pause("x", &PauseOptions::new().strict(true)).map(drop),
            busy.fork("x", &ForkOptions::new()).map(drop),
            busy.connect("x", &ConnectOptions::new()).map(drop),
        ] {
            assert!(matches!(r, Err(Error::ServiceBusy { .. })), "{r:?}");
        }
        let limited = client_preferring(&prism, "code=429");
        for r in [
            limited.create(&E2bOptions::new()).map(drop),
            limited.pause("x", &PauseOptions::new()).map(drop),
            limited.connect("x", &ConnectOptions::new()).map(drop),
        ] {
            assert!(matches!(r, Err(Error::RateLimited { .. })), "{r:?}");
        }
        // E2B answers 409 to a pause of a paused sandbox: the pause's outcome already holds.
        let conflict = client_preferring(&prism, "code=409");
        assert!(matches!(
            conflict.pause("x", &PauseOptions::new()),
            Ok(false)
        ));
        assert!(matches!(
            conflict.update_network("x", &NetworkUpdate::new()),
            Err(Error::Http { status: 409, .. })
        ));
    });
}

/// Responses generated at random from the schemas (optional fields missing, nulls, extra
/// properties) all parse.
#[test]
fn random_valid_responses_parse() {
    within(TEST_DEADLINE, || {
        let prism = prism();
        let client = client_preferring(&prism, "dynamic=true");
        for i in 0..25 {
            let fail = |what: &str, e: Error| -> ! {
                panic!("round {i}, {what}: {e:?}\n{}", prism.log_text())
            };
            client
                .create(&full_options())
                .unwrap_or_else(|e| fail("create", e));
            client
                .connect("x", &ConnectOptions::new())
                .unwrap_or_else(|e| fail("connect", e));
            client
                .pause("x", &PauseOptions::new())
                .unwrap_or_else(|e| fail("pause", e));
            client
                .create_snapshot("x", &SnapshotOptions::new())
                .unwrap_or_else(|e| fail("create_snapshot", e));
            client
                .fork("x", &ForkOptions::new().count(2))
                .unwrap_or_else(|e| fail("fork", e));
            if let Some(Err(e)) = client.list_snapshots(&SnapshotQuery::new()).next() {
                fail("list_snapshots", e);
            }
            if let Some(Err(e)) = client.list_paged(&ListQuery::new()).next() {
                fail("list_paged", e);
            }
            client.get_info("x").unwrap_or_else(|e| fail("get_info", e));
            client
                .metrics("x", &MetricsQuery::new())
                .unwrap_or_else(|e| fail("metrics", e));
            client
                .list(&ListQuery::new().limit(5))
                .unwrap_or_else(|e| fail("list", e));
        }
    });
}

/// The harness itself: Prism does reject requests that break the (strict) spec, so an `Ok`
/// above means something.
#[test]
fn prism_rejects_invalid_requests() {
    within(TEST_DEADLINE, || {
        let prism = prism();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let post = |path: &str, body: &str| {
            agent
                .post(format!("{}{path}", prism.url()))
                .header("X-API-KEY", "e2b_00")
                .header("Content-Type", "application/json")
                .send(body.to_string())
                .expect("Prism answers")
        };
        let violations = |r: &ureq::http::Response<ureq::Body>| {
            r.headers()
                .get("sl-violations")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        for (path, body) in [
            ("/v2/sandboxes", r#"{"templateID": 5}"#),
            (
                "/v2/sandboxes",
                r#"{"templateID": "t", "envvars": {"A": "1"}}"#,
            ),
            ("/v2/sandboxes", r#"{"templateID": "t", "timeout": 0}"#),
            ("/v2/sandboxes", r#"{"templateID": "t", "secure": true}"#),
            (
                "/v2/sandboxes",
                r#"{"templateID": "t", "network": {"dnsServer": ["1.1.1.1"]}}"#,
            ),
            ("/sandboxes/x/refreshes", r#"{"duration": 4000}"#),
            ("/sandboxes/x/timeout", r#"{"timeout": 1, "extra": true}"#),
            ("/v2/sandboxes/x/connect", r#"{"onResume": "reboot"}"#),
            ("/sandboxes/x/pause", r#"{"strict": true}"#),
            ("/sandboxes/x/fork", r#"{"count": 0}"#),
            ("/sandboxes/x/snapshots", r#"{"mode": "full"}"#),
        ] {
            let r = post(path, body);
            // A 400 or 401 the spec defines carries the violations in a header; Prism's own
            // 422 (operations without a 400) in its problem+json body.
            let flagged = violations(&r).is_some() || r.status().as_u16() == 422;
            assert!(
                r.status().is_client_error() && flagged,
                "{path} {body} was accepted: {}",
                r.status()
            );
        }
        let ok = post(
            "/v2/sandboxes",
            r#"{"templateID": "t", "envVars": {"A": "1"}}"#,
        );
        assert_eq!(ok.status().as_u16(), 201, "{:?}", violations(&ok));
        let bad_key = agent
            .post(format!("{}/v2/sandboxes", prism.url()))
            .header("X-API-KEY", "e2b_00")
            .header("Idempotency-Key", "Not_Lowercase")
            .header("Content-Type", "application/json")
            .send(r#"{"templateID": "t"}"#)
            .expect("Prism answers");
        assert!(bad_key.status().is_client_error(), "{}", bad_key.status());
        let bad_query = agent
            .get(format!("{}/v2/sandboxes?state=bogus", prism.url()))
            .header("X-API-KEY", "e2b_00")
            .call()
            .expect("Prism answers");
        assert!(bad_query.status().is_client_error() && violations(&bad_query).is_some());
    });
}

/// Node.js versions compare by number, so 18.9 is older than the 18.20.1 Prism needs.
#[test]
fn node_versions_compare_by_number() {
    within(Duration::from_secs(10), || {
        assert_eq!(prism::parse_node_version("v20.20.2"), Some((20, 20, 2)));
        assert_eq!(prism::parse_node_version("v18.19.0\n"), Some((18, 19, 0)));
        assert!(prism::parse_node_version("v18.9.0").unwrap() < prism::NODE_MIN);
        assert!(prism::parse_node_version("v22.0.0-pre").unwrap() > prism::NODE_MIN);
        assert_eq!(prism::parse_node_version("node"), None);
    });
}
