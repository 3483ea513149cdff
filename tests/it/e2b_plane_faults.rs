//! The E2B data plane's promises on the rig: typed errors for a sandbox that is gone, a link
//! that is down or stalled, a token that is refused, an envd too old; a cut in the middle of an
//! execution that never loses output silently nor runs the cell twice.

use std::time::{Duration, Instant};

use crate::support::data_rig::{DataRig, Options};
use crate::support::deadline;
use crate::support::fault_proxy::FaultProxy;
use e2b_blocking::e2b::{ConnectOptions, E2bClient, PauseOptions};
use e2b_blocking::{
    CommandHandle, DataPlane, E2bOptions, Error, ReconnectPolicy, Sandbox, SandboxBuilder, Timeouts,
};

/// Every kind of call on `sbx`, REST and stream, and the wait of `spawned` (a stream open
/// since before): each must fail, and `expected` say its error is the right one.
fn every_call_fails(sbx: &Sandbox, spawned: &mut CommandHandle, expected: fn(&Error) -> bool) {
    let check = |e: Error| assert!(expected(&e), "{e:?}");
    check(sbx.run_code("1").unwrap_err());
    check(sbx.files().read("kept.txt").unwrap_err());
    check(sbx.files().list("/").unwrap_err());
    check(sbx.files().write("x", "x").unwrap_err());
    check(sbx.commands().run("true").unwrap_err());
    check(sbx.list_contexts().unwrap_err());
    check(spawned.wait().unwrap_err());
}

/// A sandbox spawning `sleep 30` on `rig`, with `kept.txt` written.
fn sleeping(rig: &DataRig) -> (Sandbox, CommandHandle) {
    let sbx = rig.sandbox();
    sbx.files().write("kept.txt", "kept").unwrap();
    let spawned = sbx
        .commands()
        .cmd("sleep 30")
        .timeout(None)
        .spawn()
        .unwrap();
    (sbx, spawned)
}

#[test]
fn a_sandbox_that_is_gone_is_sandbox_not_found_everywhere() {
    deadline(|| {
        let rig = DataRig::start();
        let (sbx, mut spawned) = sleeping(&rig);
        rig.kill_sandbox();
        assert!(!sbx.is_running());
        every_call_fails(&sbx, &mut spawned, |e| {
            matches!(e, Error::SandboxNotFound { .. })
        });
    });
}

/// E2B's proxy answers "sandbox not found" for a paused sandbox as for a killed one; every
/// call, REST or stream, asks the control plane and says which, and works again after a resume.
#[test]
fn a_sandbox_paused_by_another_client_is_sandbox_paused_everywhere() {
    deadline(|| {
        let rig = DataRig::start();
        let (sbx, mut spawned) = sleeping(&rig);
        let other = E2bClient::new(&rig.config()).unwrap();
        assert!(other.pause(sbx.sandbox_id(), &PauseOptions::new()).unwrap());
        every_call_fails(&sbx, &mut spawned, |e| {
            matches!(e, Error::SandboxPaused { .. })
        });

        other
            .connect(sbx.sandbox_id(), &ConnectOptions::new())
            .unwrap();
        assert_eq!(sbx.files().read("kept.txt").unwrap(), "kept");
        assert_eq!(sbx.run_code("1 + 1").unwrap().text(), Some("2"));
    });
}

#[test]
fn a_refused_envd_token_is_authentication_and_a_private_sandbox_sends_its_traffic_token() {
    deadline(|| {
        let rig = DataRig::start_with(&Options {
            envd_token: Some("not-the-token".into()),
            ..Default::default()
        });
        let sbx = rig.sandbox();
        let auth = |e: Error| assert!(matches!(e, Error::Authentication { .. }), "{e:?}");
        auth(sbx.files().read("x").unwrap_err());
        auth(sbx.files().list("/").unwrap_err());
        auth(sbx.commands().run("true").unwrap_err());
        auth(sbx.run_code("1").unwrap_err());

        let rig = DataRig::start_with(&Options {
            private: true,
            ..Default::default()
        });
        let sbx = rig.sandbox();
        assert_eq!(sbx.run_code("1 + 1").unwrap().text(), Some("2"));
        assert_eq!(sbx.commands().run("echo t").unwrap().stdout, "t\n");
        // Nothing was refused for want of the token (the proxy answers 403 then).
        assert!(rig.proxy.seen().iter().all(|s| s.answered != Some(403)));
    });
}

#[test]
fn an_old_envd_is_refused_by_name_and_version() {
    deadline(|| {
        let rig = DataRig::start_with(&Options {
            envd_version: Some("0.1.0".into()),
            ..Default::default()
        });
        let sbx = rig.sandbox();
        let err = sbx.commands().cmd("cat").stdin(true).spawn().unwrap_err();
        assert_eq!(
            err.to_string(),
            "a command's stdin needs envd 0.3.0; the sandbox has envd 0.1.0"
        );
        // Older envds take multipart uploads and want the user named: both still work.
        sbx.files().write("old.txt", "o").unwrap();
        assert_eq!(sbx.files().read("old.txt").unwrap(), "o");
        let err = sbx.files().watch_dir("/home/user", true).unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
        let _ = sbx.files().watch_dir("/home/user", false).unwrap();
    });
}

#[test]
fn the_plane_can_be_chosen() {
    deadline(|| {
        let rig = DataRig::start();
        let e2b = Sandbox::builder()
            .e2b_with(
                &rig.config().data_plane(DataPlane::E2b),
                &E2bOptions::default(),
            )
            .unwrap();
        assert_eq!(e2b.data_plane(), DataPlane::E2b);
        // The rig's template keeps Jupyter private: asking for it fails, saying why.
        let err = Sandbox::builder()
            .timeouts(Timeouts::default().sandbox_start(Duration::from_secs(15)))
            .e2b_with(
                &rig.config().data_plane(DataPlane::Jupyter),
                &E2bOptions::default(),
            )
            .unwrap_err();
        assert!(err.to_string().contains("port 8888"), "{err}");
    });
}

/// A sandbox on the rig reached through a fault proxy in front of the sandbox proxy.
fn through_faults(rig: &DataRig, request: Duration) -> (FaultProxy, Sandbox) {
    through_faults_with(
        rig,
        Sandbox::builder().timeouts(Timeouts::default().request(request)),
    )
}

/// [`through_faults`] with the sandbox's options given.
fn through_faults_with(rig: &DataRig, builder: SandboxBuilder) -> (FaultProxy, Sandbox) {
    let faults = FaultProxy::start(rig.proxy.addr()).unwrap();
    let sbx = builder
        .e2b_with(
            &rig.config()
                .sandbox_url(format!("http://{}", faults.addr())),
            &E2bOptions::default(),
        )
        .unwrap();
    (faults, sbx)
}

#[test]
fn unreachable_and_stalled_links_are_typed_and_bounded() {
    deadline(|| {
        let rig = DataRig::start();
        // A refused link is retried for the reconnect budget before it is an error: 2 s of
        // refusals prove that as the default 15 s do.
        let (faults, sbx) = through_faults_with(
            &rig,
            Sandbox::builder()
                .timeouts(Timeouts::default().request(Duration::from_secs(2)))
                .reconnect(ReconnectPolicy::default().max_elapsed(Duration::from_secs(2))),
        );
        faults.set_stall(true);
        let started = Instant::now();
        let err = sbx.files().list("/").unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );
        faults.set_stall(false);
        faults.set_refuse(true);
        faults.cut_all();
        let err = sbx.files().list("/").unwrap_err();
        assert!(matches!(err, Error::Transport { .. }), "{err:?}");
        assert!(!sbx.is_running());
        faults.set_refuse(false);
        assert!(sbx.is_running());
        assert!(
            sbx.files()
                .list("/home")
                .unwrap()
                .iter()
                .any(|e| e.name == "user")
        );
    });
}

#[test]
fn a_cut_mid_execution_is_output_lost_with_what_arrived_and_the_cell_runs_once() {
    deadline(|| {
        let rig = DataRig::start();
        let (faults, sbx) = through_faults(&rig, Duration::from_secs(10));
        // /tmp is the host's in the rig: a name of this run's own.
        let ran_file = format!("/tmp/ran-once-{}", uuid::Uuid::new_v4().simple());
        let mut seen = 0;
        let err = sbx
            .code(format!(
                "import time\nfor i in range(40):\n    print(i, flush=True)\n    \
                 open('{ran_file}', 'a').write(f'{{i}}\\n')\n    time.sleep(0.1)"
            ))
            .on_stdout(|_| {
                seen += 1;
                if seen == 5 {
                    faults.cut_all();
                }
            })
            .run()
            .unwrap_err();
        let Error::OutputLost { partial, .. } = err else {
            panic!("{err:?}");
        };
        let lines: Vec<String> = partial
            .logs
            .stdout
            .concat()
            .lines()
            .map(String::from)
            .collect();
        let expected: Vec<String> = (0..lines.len()).map(|i| i.to_string()).collect();
        assert_eq!(lines, expected, "what arrived is in order, each once");
        assert!(lines.len() >= 5);
        // The server interrupted the cell when the request dropped: it ran once, not to its end,
        // and was not sent again. The kernel runs one cell at a time, so once a cell sent now
        // is answered (run, or aborted as queued behind an interrupt), the cut one has ended,
        // interrupted or at its end; no wait for the 4 s it would take needs guessing.
        let _ = sbx
            .code("1")
            .timeout(Duration::from_secs(30))
            .run()
            .unwrap();
        let ran = sbx.files().read(&ran_file).unwrap();
        let ran: Vec<&str> = ran.lines().collect();
        assert!(
            ran.len() < 40,
            "the cell was not interrupted: {} lines",
            ran.len()
        );
        let unique: std::collections::BTreeSet<&str> = ran.iter().copied().collect();
        assert_eq!(unique.len(), ran.len(), "the cell ran twice");
        sbx.files().remove(&ran_file).unwrap();
    });
}

#[test]
fn idempotent_calls_are_sent_again_when_the_link_breaks() {
    deadline(|| {
        let rig = DataRig::start();
        let (faults, sbx) = through_faults(&rig, Duration::from_secs(10));
        sbx.files().write("kept.txt", "k").unwrap();
        let cuts =
            faults.start_random_cuts(Duration::from_millis(20), Duration::from_millis(80), 22);
        for _ in 0..40 {
            assert_eq!(sbx.files().get_info("kept.txt").unwrap().size, Some(1));
            assert!(
                sbx.files()
                    .list("/home/user")
                    .unwrap()
                    .iter()
                    .any(|e| e.name == "kept.txt")
            );
            assert_eq!(sbx.files().read("kept.txt").unwrap(), "k");
        }
        drop(cuts);
        assert!(faults.cuts() > 0, "no cut happened");
    });
}

/// `n` numbered lines of `prefix`.
fn numbered(prefix: &str, n: u32) -> String {
    (1..=n).map(|i| format!("{prefix}-{i}\n")).collect()
}

#[test]
fn background_output_is_exact_across_reattaches_and_from_another_client() {
    deadline(|| {
        let rig = DataRig::start();
        let (faults, sbx) = through_faults(&rig, Duration::from_secs(10));
        // Paced by bash's `read -t` on a pipe nothing writes to: a sleep without a process
        // (its timeout is a failure, hence `|| :`).
        let script = "exec {p}<> <(:); for i in $(seq 1 400); do echo out-$i; echo err-$i >&2; \
                      read -t 0.02 -u $p || :; done";
        let mut bg = sbx
            .commands()
            .cmd(script)
            .background(true)
            .timeout(None)
            .spawn()
            .unwrap();
        let pid = bg.pid().unwrap();
        // Another client of the same sandbox attaches while it runs: all of it, from the start.
        let other = Sandbox::builder()
            .e2b_connect(&rig.config(), crate::support::e2b_rig::SANDBOX_ID)
            .unwrap();
        let mut attached = other.commands().connect(pid).unwrap();
        let cuts =
            faults.start_random_cuts(Duration::from_millis(100), Duration::from_millis(500), 7);
        let result = bg.wait().unwrap();
        drop(cuts);
        let cut = faults.cuts();
        assert_eq!(result.stdout, numbered("out", 400));
        assert_eq!(result.stderr, numbered("err", 400));
        assert_eq!(result.exit_code, 0);
        assert!(cut >= 10, "only {cut} cuts");
        let seen = attached.wait().unwrap();
        assert_eq!(seen.stdout, numbered("out", 400));
        assert_eq!(seen.stderr, numbered("err", 400));
        assert_eq!(seen.exit_code, 0);
    });
}

#[test]
fn streaming_cells_through_random_cuts_are_exact_or_typed_and_never_run_twice() {
    deadline(|| {
        let rig = DataRig::start();
        let (faults, sbx) = through_faults(&rig, Duration::from_secs(10));
        let cuts =
            faults.start_random_cuts(Duration::from_millis(100), Duration::from_millis(500), 200);
        // /tmp is the host's in the rig: a name of this run's own.
        let ran_file = format!("/tmp/cells-ran-{}", uuid::Uuid::new_v4().simple());
        let (mut exact, mut lost, mut aborted, mut other) = (0, 0, 0, Vec::new());
        for cell in 0..200 {
            let code = format!(
                "open('{ran_file}', 'a').write('{cell}\\n')\n\
                 for i in range(20):\n    print(f'{cell}-{{i}}', flush=True)"
            );
            let expected: String = (0..20).map(|i| format!("{cell}-{i}\n")).collect();
            match sbx.code(code).timeout(Duration::from_secs(30)).run() {
                Ok(exec)
                    if exec
                        .error
                        .as_ref()
                        .is_some_and(|e| e.name == "ExecutionAborted") =>
                {
                    aborted += 1
                }
                Ok(exec) => {
                    assert_eq!(exec.logs.stdout.concat(), expected, "cell {cell}");
                    exact += 1;
                }
                Err(Error::OutputLost { partial, .. }) => {
                    let got = partial.logs.stdout.concat();
                    assert!(expected.starts_with(&got), "cell {cell}: {got:?}");
                    lost += 1;
                }
                Err(e) => other.push(e.to_string()),
            }
        }
        drop(cuts);
        let cut = faults.cuts();
        println!(
            "200 cells through {cut} cuts: {exact} exact, {lost} OutputLost (a prefix, in order), \
             {aborted} aborted by the kernel after an interrupt, {} other typed errors {other:?}",
            other.len()
        );
        // A quick run (CI's) sees fewer cuts than a slow one; a few are enough to mean it.
        assert!(cut >= 3, "only {cut} cuts");
        assert!(
            other
                .iter()
                .all(|e| e.contains("could not reach") || e.contains("timed out")),
            "{other:?}"
        );
        // No cell ran twice: nothing was sent again.
        let ran = sbx.files().read(&ran_file).unwrap();
        sbx.files().remove(&ran_file).unwrap();
        let mut ids: Vec<&str> = ran.lines().collect();
        let all = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all, "a cell ran twice");
        assert!(all >= exact, "{all} ran, {exact} exact");
    });
}
