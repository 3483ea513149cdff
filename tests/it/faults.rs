//! Faults a real jupyter_server cannot produce by itself, injected by a proxy in between:
//! half-open (stalled) links, refused reconnects, requests made while disconnected.

use std::time::Duration;

use crate::support::{
    deadline, init_logs, local, local_tcp, through_proxy, through_proxy_with_framing,
    through_unix_proxy,
};
use e2b_blocking::{
    CloseReason, ConnectionState, Continuity, Error, Keepalive, ReconnectPolicy, Sandbox,
};

#[test]
fn a_stalled_link_is_detected_by_ping_and_the_execution_completes_whole() {
    deadline(|| {
        init_logs();
        let owner = local_tcp();
        let (proxy, sbx) = through_proxy(
            &owner,
            Sandbox::builder().keepalive(
                Keepalive::default()
                    .idle_ping(Duration::from_millis(300))
                    .pong_timeout(Duration::from_millis(300)),
            ),
        );
        let states = sbx.watch_connection().unwrap();
        let code =
            "import time\nfor i in range(30):\n    print(i, flush=True)\n    time.sleep(0.1)";
        let exec = std::thread::scope(|s| {
            let run = s.spawn(|| sbx.code(code).timeout(Duration::from_secs(60)).run());
            std::thread::sleep(Duration::from_millis(500));
            proxy.set_stall(true);
            std::thread::sleep(Duration::from_millis(1500));
            proxy.set_stall(false);
            run.join().unwrap()
        })
        .unwrap();
        let expected: String = (0..30).map(|i| format!("{i}\n")).collect();
        assert_eq!(exec.logs.stdout.concat(), expected);
        let seen: Vec<ConnectionState> = states.try_iter().collect();
        assert!(
            seen.iter()
                .any(|s| matches!(s, ConnectionState::Reconnecting { .. })),
            "no reconnect: {seen:?}"
        );
        assert_eq!(sbx.connection_state(), ConnectionState::Connected);
    });
}

#[test]
fn requests_made_while_disconnected_are_sent_after_the_reconnect() {
    deadline(|| {
        init_logs();
        let owner = local_tcp();
        let (proxy, sbx) = through_proxy(&owner, Sandbox::builder());
        let _ = sbx.run_code("base = 40").unwrap();
        let states = sbx.watch_connection().unwrap();
        proxy.set_refuse(true);
        proxy.cut_all();
        // Waits on the state itself, not a sleep: a loaded machine may take a while to notice.
        let first = states.recv_timeout(Duration::from_secs(10));
        assert!(
            matches!(first, Some(ConnectionState::Reconnecting { .. })),
            "{first:?}"
        );
        let exec = std::thread::scope(|s| {
            let run = s.spawn(|| sbx.code("base + 2").timeout(Duration::from_secs(30)).run());
            std::thread::sleep(Duration::from_millis(300));
            proxy.set_refuse(false);
            run.join().unwrap()
        })
        .unwrap();
        assert_eq!(exec.text(), Some("42"));
    });
}

#[test]
fn when_reconnects_keep_failing_every_call_fails_fast_and_typed() {
    deadline(|| {
        init_logs();
        let owner = local_tcp();
        let (proxy, sbx) = through_proxy(
            &owner,
            Sandbox::builder()
                .reconnect(ReconnectPolicy::default().max_elapsed(Duration::from_millis(800))),
        );
        let result = std::thread::scope(|s| {
            let run = s.spawn(|| {
                sbx.code("import time\ntime.sleep(30)")
                    .timeout(Duration::from_secs(60))
                    .run()
            });
            std::thread::sleep(Duration::from_millis(300));
            proxy.set_refuse(true);
            proxy.cut_all();
            run.join().unwrap()
        });
        // The server is alive but unreachable: not SandboxNotFound, and well before the
        // execution's 60 s deadline (the test's own deadline would catch a hang).
        assert!(
            matches!(result, Err(Error::ConnectionLost { .. })),
            "{result:?}"
        );
        assert!(matches!(
            sbx.connection_state(),
            ConnectionState::Closed {
                reason: CloseReason::GaveUp
            }
        ));
        let later = sbx.run_code("1");
        assert!(
            matches!(later, Err(Error::ConnectionLost { .. })),
            "{later:?}"
        );
    });
}

/// Six cells (each after `prefix`) printing 20 numbered lines over a second: each one's output
/// arrives whole, in order, with its result, and its continuity is known.
fn run_six_streaming_cells(sbx: &Sandbox, prefix: &str) {
    for n in 0..6 {
        let code = format!(
            "{prefix}import time\nfor i in range(20):\n    print(f'{n} {{i}}', flush=True)\n    \
             time.sleep(0.05)\n{{'cell': {n}}}"
        );
        let exec = sbx
            .code(code)
            .timeout(Duration::from_secs(60))
            .run()
            .unwrap();
        let expected: String = (0..20).map(|i| format!("{n} {i}\n")).collect();
        assert_eq!(exec.logs.stdout.concat(), expected, "cell {n}");
        assert_eq!(
            exec.text().map(str::to_string),
            Some(format!("{{'cell': {n}}}"))
        );
        assert_ne!(exec.continuity, Continuity::Unverified, "cell {n}");
    }
}

/// JSON framing (`binary_framing(false)`, for servers without the local sandbox's patch)
/// recovers output across cuts exactly as binary framing does.
#[test]
fn json_framing_keeps_executions_whole_across_random_cuts() {
    deadline(|| {
        init_logs();
        let owner = local_tcp();
        let (proxy, sbx) = through_proxy_with_framing(&owner, Sandbox::builder(), false);
        let chaos =
            proxy.start_random_cuts(Duration::from_millis(100), Duration::from_millis(400), 7);
        run_six_streaming_cells(&sbx, "");
        drop(chaos);
        assert!(proxy.cuts() >= 5, "only {} cuts", proxy.cuts());
    });
}

/// The isolated (default) local sandbox's transports, Unix sockets, recover as TCP does: cut at
/// random (half mid-chunk) between the SDK and the server, every line of every execution
/// arrives exactly once and in order, and an execution run during the cuts runs once.
#[test]
fn an_isolated_sandbox_over_unix_sockets_keeps_executions_whole_across_random_cuts() {
    deadline(|| {
        init_logs();
        let owner = local();
        assert!(owner.jupyter_url().starts_with("http+unix://%2F"));
        let (proxy, sbx) = through_unix_proxy(
            &owner,
            Sandbox::builder()
                .reconnect(ReconnectPolicy::default().max_elapsed(Duration::from_secs(30))),
        );
        let _ = sbx.run_code("runs = 0").unwrap();
        let chaos =
            proxy.start_random_cuts(Duration::from_millis(100), Duration::from_millis(400), 11);
        run_six_streaming_cells(&sbx, "runs += 1\n");
        drop(chaos);
        assert!(proxy.cuts() >= 5, "only {} cuts", proxy.cuts());
        // Each cell ran exactly once, however often its request was replayed.
        assert_eq!(sbx.run_code("runs").unwrap().text(), Some("6"));
    });
}

/// Output lost in a cut that the kernel's replay ring no longer holds (here shrunk to 4 KiB)
/// is `OutputLost`, carrying everything else the execution produced, in order.
#[test]
fn output_the_replay_ring_dropped_is_output_lost_with_the_rest() {
    deadline(|| {
        init_logs();
        let owner = local_tcp();
        let (proxy, sbx) = through_proxy(&owner, Sandbox::builder());
        let _ = sbx
            .run_code("__import__('__e2b_hook').limits['bytes'] = 4096")
            .unwrap();
        let line = |i: usize| format!("{i:04}{}\n", "y".repeat(2043));
        let code = "import sys, time\nfor i in range(40):\n    \
                    sys.stdout.write(f'{i:04d}' + 'y' * 2043 + '\\n')\n    \
                    sys.stdout.flush()\n    time.sleep(0.05)";
        let result = std::thread::scope(|s| {
            let run = s.spawn(|| sbx.code(code).timeout(Duration::from_secs(60)).run());
            std::thread::sleep(Duration::from_millis(700));
            proxy.cut_all_mid_chunk();
            run.join().unwrap()
        });
        let Err(Error::OutputLost { missing, partial }) = result else {
            panic!("expected OutputLost, got {result:?}");
        };
        assert!(missing.is_some_and(|n| n >= 1), "{missing:?}");
        let got = partial.logs.stdout.concat();
        let expected: Vec<String> = (0..40).map(line).collect();
        // What arrived is the output in order with a hole where the cut was.
        let mut rest = expected.iter();
        for piece in got.split_inclusive('\n') {
            assert!(
                rest.any(|l| l == piece),
                "out of order or garbled: {:?}",
                &piece[..8.min(piece.len())]
            );
        }
        assert!(got.len() < expected.concat().len(), "nothing was lost");
        assert!(got.starts_with(&line(0)));
        assert_eq!(sbx.run_code("6 * 7").unwrap().text(), Some("42"));
    });
}

/// A link that goes silent mid-execution: the ping notices it, reconnect attempts (each cut to
/// what is left of the budget) end within `max_elapsed`, the call fails with `ConnectionLost`,
/// and `close()` then returns at once instead of spending its budget on the dead link.
#[test]
fn a_silent_link_ends_within_the_reconnect_budget_and_close_returns_at_once() {
    deadline(|| {
        init_logs();
        let owner = local_tcp();
        let idle_ping = Duration::from_millis(300);
        let pong_timeout = Duration::from_millis(300);
        let max_elapsed = Duration::from_secs(3);
        let connect = Duration::from_secs(1);
        let close_budget = Duration::from_secs(30);
        let (proxy, sbx) = through_proxy(
            &owner,
            Sandbox::builder()
                .keepalive(
                    Keepalive::default()
                        .idle_ping(idle_ping)
                        .pong_timeout(pong_timeout),
                )
                .reconnect(ReconnectPolicy::default().max_elapsed(max_elapsed))
                .timeouts(
                    e2b_blocking::Timeouts::default()
                        .connect(connect)
                        .close(close_budget),
                ),
        );
        let (result, silent_for) = std::thread::scope(|s| {
            let run = s.spawn(|| sbx.code("import time\ntime.sleep(60)").timeout(None).run());
            std::thread::sleep(Duration::from_millis(300));
            proxy.set_stall(true);
            let silent_at = std::time::Instant::now();
            let result = run.join().unwrap();
            (result, silent_at.elapsed())
        });
        assert!(
            matches!(result, Err(Error::ConnectionLost { .. })),
            "{result:?}"
        );
        // Noticing (ping + pong timeout), then the budget, plus at most one connect timeout;
        // the slack is for a loaded machine.
        let bound = idle_ping + pong_timeout + max_elapsed + connect + Duration::from_secs(2);
        assert!(silent_for < bound, "failed after {silent_for:?}");
        let started = std::time::Instant::now();
        sbx.close().unwrap();
        let took = started.elapsed();
        // Spending the budget would take all of it; the bound leaves a loaded machine room.
        assert!(took < close_budget / 3, "close took {took:?}");
        proxy.set_stall(false);
    });
}

/// Opening a sandbox is protected like everything else: through a link cut every 100–500 ms
/// from the first connection, 20 sandboxes in a row open (REST calls retried, the kernel
/// start found again by its id, the first handshake and the hook install retried), and the
/// server then holds exactly the kernels of the open sandboxes: no failed attempt left one.
#[test]
fn twenty_sandboxes_open_through_a_link_that_keeps_being_cut() {
    crate::support::within(Duration::from_secs(600), || {
        init_logs();
        let owner = local_tcp();
        let token = crate::support::token_of(&owner);
        let direct = format!("http://{}", crate::support::server_addr(&owner));
        let kernel_ids = || -> std::collections::BTreeSet<String> {
            let body = ureq::get(&format!("{direct}/api/kernels"))
                .header("Authorization", &format!("token {token}"))
                .call()
                .expect("list kernels")
                .body_mut()
                .read_to_string()
                .expect("body");
            let v: serde_json::Value = serde_json::from_str(&body).expect("json");
            v.as_array()
                .expect("a list")
                .iter()
                .filter_map(|k| k["id"].as_str().map(str::to_string))
                .collect()
        };
        let mut expected = kernel_ids();
        let proxy =
            crate::support::fault_proxy::FaultProxy::start(crate::support::server_addr(&owner))
                .expect("proxy starts");
        let chaos = proxy.start_random_cuts(
            Duration::from_millis(100),
            Duration::from_millis(500),
            0x0be,
        );
        let url = format!("http://{}", proxy.addr());
        let mut open = Vec::new();
        for i in 0..20 {
            let sbx = Sandbox::builder()
                .reconnect(ReconnectPolicy::default().max_elapsed(Duration::from_secs(30)))
                .jupyter(&url, token.as_str())
                .unwrap_or_else(|e| panic!("sandbox {i}: {}", e));
            open.push(sbx);
        }
        drop(chaos);
        println!("20 sandboxes opened through {} cuts", proxy.cuts());
        for sbx in &open {
            expected.insert(sbx.default_context().unwrap().id);
        }
        assert_eq!(kernel_ids(), expected);
        assert!(proxy.cuts() > 0);
        // Each close waits for the server to shut its kernel down: side by side, not in a row.
        std::thread::scope(|s| {
            for sbx in open {
                s.spawn(move || drop(sbx));
            }
        });
    });
}
