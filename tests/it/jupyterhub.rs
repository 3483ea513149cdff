//! `Sandbox::jupyterhub` against a real JupyterHub (PyPI) and its configurable-http-proxy
//! (npm), started on 127.0.0.1 by each test: a user's server is started through the Hub's REST
//! API and driven through the Hub's proxy, also across cuts on either side of that proxy and
//! the proxy's own restart.

use std::time::{Duration, Instant};

use crate::support::deadline;
use crate::support::fault_proxy::FaultProxy;
use crate::support::jupyterhub::{BROKEN_USER, Hub, HubSetup, STUCK_USER, free_port};
use e2b_blocking::{
    ContextOptions, Error, FsEventKind, JupyterHubOptions, PtyEnd, PtyEvent, PtySize, Sandbox,
    TimeoutPhase, Timeouts,
};

/// Reads a terminal's output until it contains `needle`, within 30 s.
fn read_until(term: &e2b_blocking::Terminal, needle: &str) -> String {
    let mut text = String::new();
    let start = Instant::now();
    while !text.contains(needle) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no {needle:?} in {text:?}"
        );
        match term.recv_timeout(Duration::from_secs(1)).unwrap() {
            Some(PtyEvent::Output(t)) => text.push_str(&t),
            Some(PtyEvent::End(end)) => panic!("terminal ended ({end:?}): {text:?}"),
            _ => {}
        }
    }
    text
}

/// The first event of a watch, within 30 s.
fn next_event(watch: &mut e2b_blocking::WatchHandle) -> e2b_blocking::FsEvent {
    watch
        .next_timeout(Duration::from_secs(30))
        .unwrap()
        .expect("an event")
}

#[test]
fn starts_a_users_server_and_drives_everything_through_the_hubs_proxy() {
    deadline(|| {
        let hub = Hub::start(&HubSetup::default());
        let token = hub.user_token("alice");
        assert!(hub.server("alice").is_none());

        let sbx =
            Sandbox::jupyterhub(&format!("{}/hub/home", hub.url), "alice", token.as_str()).unwrap();
        assert!(
            !format!("{sbx:?}").contains(&token),
            "token in Debug output"
        );
        assert_eq!(sbx.sandbox_id(), "alice");
        assert_eq!(sbx.jupyter_url(), format!("{}/user/alice", hub.url));
        assert_eq!(hub.server("alice").unwrap()["ready"], true);

        // Code and contexts.
        let _ = sbx.run_code("x = 6").unwrap();
        assert_eq!(sbx.run_code("x * 7").unwrap().text(), Some("42"));
        let ctx = sbx.create_context(ContextOptions::new()).unwrap();
        let exec = sbx.code("'x' in globals()").context(&ctx).run().unwrap();
        assert_eq!(exec.text(), Some("False"));

        // Files, in the user's home (the server's root).
        sbx.files().write("notes/a.txt", "from the hub").unwrap();
        assert_eq!(
            std::fs::read_to_string(hub.home("alice").join("notes/a.txt")).unwrap(),
            "from the hub"
        );
        assert_eq!(sbx.files().read("notes/a.txt").unwrap(), "from the hub");

        // Commands, watches and terminals.
        let out = sbx.commands().run("cat notes/a.txt; echo; pwd").unwrap();
        let home = hub.home("alice").canonicalize().unwrap();
        assert_eq!(out.stdout, format!("from the hub\n{}\n", home.display()));
        let mut watch = sbx.files().watch_dir("notes", false).unwrap();
        sbx.files().write("notes/b.txt", "b").unwrap();
        let event = next_event(&mut watch);
        assert!(event.path.ends_with("b.txt"), "{event:?}");
        assert!(
            matches!(event.kind, FsEventKind::Create | FsEventKind::Write),
            "{event:?}"
        );
        watch.stop().unwrap();
        let term = sbx.pty().create(PtySize::new(100, 30)).unwrap();
        term.send_input("echo hub-$((6*7)); exit 0\n").unwrap();
        let out = term.wait().unwrap();
        assert!(out.output.contains("hub-42"), "{:?}", out.output);
        assert!(
            matches!(out.end, PtyEnd::Exited { .. } | PtyEnd::Gone),
            "{:?}",
            out.end
        );

        // Closing leaves the user's server running, without the kernels this sandbox made.
        sbx.close().unwrap();
        assert_eq!(hub.server("alice").unwrap()["ready"], true);
        // A running server is used as it is.
        let again = Sandbox::jupyterhub(&hub.url, "alice", token.as_str()).unwrap();
        assert_eq!(again.run_code("1 + 1").unwrap().text(), Some("2"));
        assert_eq!(again.list_contexts().unwrap().len(), 1);
        drop(again);

        // Stopping on close is asked for. The Hub answers the stop when the server is gone
        // (or with 202 after its slow_stop_timeout, 10 s): on a loaded machine that can take
        // longer than the default close budget of 5 s.
        let sbx = Sandbox::builder()
            .timeouts(Timeouts::default().close(Duration::from_secs(30)))
            .jupyterhub_with(
                &hub.url,
                "alice",
                token.as_str(),
                &JupyterHubOptions::new().stop_on_close(true),
            )
            .unwrap();
        assert_eq!(sbx.run_code("2 + 2").unwrap().text(), Some("4"));
        sbx.close().unwrap();
        let start = Instant::now();
        while hub.server("alice").is_some() {
            assert!(start.elapsed() < Duration::from_secs(15), "not stopped");
            std::thread::sleep(Duration::from_millis(100));
        }
    });
}

#[test]
fn hub_errors_are_typed_and_bounded() {
    deadline(|| {
        let hub = Hub::start(&HubSetup::default());

        // A spawner that fails: the Hub's own message.
        let token = hub.user_token(BROKEN_USER);
        let err = Sandbox::jupyterhub(&hub.url, BROKEN_USER, token.as_str()).unwrap_err();
        match &err {
            Error::SpawnFailed { server, message } => {
                assert_eq!(server, BROKEN_USER);
                assert!(message.contains("Spawn failed"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(!err.to_string().contains(&token));

        // A spawn that never finishes: the start deadline.
        let token = hub.user_token(STUCK_USER);
        // Its server sleeps for 600 s: a short deadline is as far from that as a long one.
        let limit = Duration::from_secs(2);
        let started = Instant::now();
        let err = Sandbox::builder()
            .timeouts(Timeouts::default().sandbox_start(limit))
            .jupyterhub(&hub.url, STUCK_USER, token.as_str())
            .unwrap_err();
        assert!(
            matches!(err, Error::Timeout { phase: TimeoutPhase::SandboxStart, after } if after == limit),
            "{err:?}"
        );
        // Hang bound: the deadline plus one request's worth.
        assert!(started.elapsed() < limit * 4, "{:?}", started.elapsed());

        // Tokens and users.
        let err = Sandbox::jupyterhub(&hub.url, "alice", "not-a-token").unwrap_err();
        assert!(matches!(err, Error::Authentication { .. }), "{err:?}");
        let bob = hub.user_token("bob");
        let err = Sandbox::jupyterhub(&hub.url, "alice", bob.as_str()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidArgument(_) | Error::Authentication { .. }
            ),
            "{err:?}"
        );
        let err = Sandbox::jupyterhub(&hub.url, "nobody-here", bob.as_str()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidArgument(_) | Error::Authentication { .. }
            ),
            "{err:?}"
        );
        let err = Sandbox::jupyterhub("hub.example.org", "alice", bob.as_str()).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        assert!(
            hub.server("alice").is_none(),
            "a refused call started alice's server"
        );
    });
}

/// Cuts between the SDK and the Hub's proxy, and between the proxy and the user's server
/// (the route the Hub gives its proxy leads through a second fault proxy): code, an execution
/// streaming across the cut, a terminal and commands all go on.
#[test]
fn reconnects_after_cuts_on_either_side_of_the_hubs_proxy() {
    deadline(|| {
        let real = free_port();
        let routed = FaultProxy::start(([127, 0, 0, 1], real).into()).unwrap();
        // The single-user servers load the repo's TCP_NODELAY extension, as the README says.
        let ext = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("server");
        let setup = HubSetup {
            alice_route: Some((real, routed.addr().port())),
            server_config: format!(
                "import sys\nsys.path.insert(0, {:?})\nc.ServerApp.jpserver_extensions = {{'e2b_nodelay': True}}\n",
                ext.display().to_string()
            ),
        };
        let hub = Hub::start(&setup);
        let token = hub.user_token("alice");
        let hub_addr = hub.url.trim_start_matches("http://").parse().unwrap();
        let front = FaultProxy::start(hub_addr).unwrap();

        let sbx = Sandbox::jupyterhub(&format!("http://{}", front.addr()), "alice", token.as_str())
            .unwrap();
        let _ = sbx.run_code("n = 1").unwrap();
        let term = sbx.pty().create(PtySize::new(100, 30)).unwrap();
        term.send_input("echo before-$((1+1))\n").unwrap();
        read_until(&term, "before-2");

        for (side, proxy) in [("client", &front), ("server", &routed)] {
            // An execution that prints across the cut arrives whole.
            let runner = {
                let sbx = sbx.clone();
                std::thread::spawn(move || {
                    sbx.run_code(
                        "import time\nfor i in range(20):\n    print(i, flush=True)\n    time.sleep(0.05)\nn += 1\nn",
                    )
                })
            };
            std::thread::sleep(Duration::from_millis(300));
            assert!(proxy.cut_all() > 0, "nothing to cut on the {side} side");
            let exec = runner.join().unwrap().unwrap();
            let expected: String = (0..20).map(|i| format!("{i}\n")).collect();
            assert_eq!(exec.logs.stdout.concat(), expected, "{side} side");
            term.send_input(format!("echo after-{side}-$((2+3))\n"))
                .unwrap();
            read_until(&term, &format!("after-{side}-5"));
            assert_eq!(
                sbx.commands().run("echo ok").unwrap().stdout,
                "ok\n",
                "{side} side"
            );
        }
        assert_eq!(sbx.run_code("n").unwrap().text(), Some("3"));
        assert!(front.cuts() > 0 && routed.cuts() > 0);
        assert!(
            hub.log()
                .contains("e2b_nodelay: TCP_NODELAY on every websocket"),
            "the single-user server did not load e2b_nodelay"
        );
    });
}

/// The Hub's configurable-http-proxy dies; the Hub starts a new one and adds the routes again,
/// and the sandbox's connections come back through it. Then the Hub stops the server: the
/// sandbox says it is gone.
#[test]
fn survives_the_hubs_proxy_restarting_and_reports_a_stopped_server() {
    deadline(|| {
        let hub = Hub::start(&HubSetup::default());
        let token = hub.user_token("alice");
        let sbx = Sandbox::jupyterhub(&hub.url, "alice", token.as_str()).unwrap();
        let _ = sbx.run_code("k = 41").unwrap();
        let term = sbx.pty().create(PtySize::new(100, 30)).unwrap();

        let old = hub.proxy_pid().expect("the Hub's proxy");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(old as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        // The test Hub checks its proxy every second (JupyterHub's default: 5 s); the default
        // reconnect budget is 15 s.
        assert_eq!(sbx.run_code("k + 1").unwrap().text(), Some("42"));
        let new = hub.proxy_pid().expect("a new proxy");
        assert_ne!(new, old);
        term.send_input("echo proxy-back-$((40+2))\n").unwrap();
        read_until(&term, "proxy-back-42");
        sbx.files().write("after.txt", "ok").unwrap();
        assert_eq!(sbx.files().read("after.txt").unwrap(), "ok");

        hub.stop_server("alice");
        let err = sbx.run_code("k").unwrap_err();
        assert!(
            matches!(&err, Error::SandboxNotFound { sandbox_id } if sandbox_id == "alice"),
            "{err:?}"
        );
        assert!(!sbx.is_running());
    });
}
