//! Terminals (PTYs) over jupyter_server's terminals API: on the local sandbox (isolated and
//! not), on a stock jupyter_server, and through a proxy that cuts the link at random.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use e2b_blocking::{
    ConnectionState, Error, PtyEnd, PtyEvent, PtyGap, PtyOptions, PtySize, Sandbox, Terminal,
};

use crate::support::python_server::PythonServer;
use crate::support::{deadline, local, local_tcp, through_proxy};

/// Hang bound for one expected piece of output (not a speed threshold: a bug fails here
/// instead of hanging).
const OUTPUT_BOUND: Duration = Duration::from_secs(60);

/// Output so far and the gaps seen, read from a terminal.
#[derive(Default)]
struct Screen {
    text: String,
    gaps: Vec<PtyGap>,
    end: Option<PtyEnd>,
}

impl Screen {
    /// Reads until `done(lines)` holds or the terminal ends; panics with the output past
    /// [`OUTPUT_BOUND`].
    fn read_until(&mut self, term: &Terminal, done: impl Fn(&[String], &[PtyGap]) -> bool) {
        let until = Instant::now() + OUTPUT_BOUND;
        while !done(&lines(&self.text), &self.gaps) {
            assert!(
                self.end.is_none(),
                "terminal ended ({:?}) before the output expected; output: {:?}",
                self.end,
                self.text
            );
            assert!(
                Instant::now() < until,
                "expected output did not come; output: {:?}",
                self.text
            );
            if let Some(event) = term.recv_timeout(Duration::from_millis(100)).expect("read") {
                self.take(event);
            }
        }
    }

    fn take(&mut self, event: PtyEvent) {
        match event {
            PtyEvent::Output(t) => self.text.push_str(&t),
            PtyEvent::Gap(g) => self.gaps.push(g),
            PtyEvent::End(e) => self.end = Some(e),
            other => panic!("unexpected event {other:?}"),
        }
    }
}

/// Asserts that `numbered` is exactly `1..=n`; on failure says briefly what is wrong (the
/// lists run to thousands of numbers).
fn assert_each_once_in_order(numbered: &[usize], n: usize) {
    if numbered.iter().copied().eq(1..=n) {
        return;
    }
    let mut counts = vec![0usize; n + 1];
    let mut beyond = Vec::new();
    for &k in numbered {
        match counts.get_mut(k) {
            Some(c) if k > 0 => *c += 1,
            _ => beyond.push(k),
        }
    }
    let missing: Vec<usize> = (1..=n).filter(|&k| counts[k] == 0).collect();
    let repeated: Vec<usize> = (1..=n).filter(|&k| counts[k] > 1).collect();
    let disorder = numbered.windows(2).position(|w| w[1] <= w[0]);
    let around = |at: usize| &numbered[at.saturating_sub(3)..(at + 5).min(numbered.len())];
    panic!(
        "lines 1..={n} not each once in order: {} seen; missing {:?}; repeated {:?}; \
         out of range {:?}; first step back at index {disorder:?}: {:?}",
        numbered.len(),
        &missing[..missing.len().min(20)],
        &repeated[..repeated.len().min(20)],
        &beyond[..beyond.len().min(20)],
        disorder.map(around),
    );
}

/// The numbers of the lines that end with `line-N`, in the order shown. A line may start
/// with a prompt: `sh` prints its prompt after the tty echoed input typed before it was ready,
/// so the first line of output follows it (`# line-1`). The command lines' own echo holds
/// `line-$i`, never a number.
fn line_numbers(text: &str) -> Vec<usize> {
    lines(text)
        .iter()
        .filter_map(|l| l.rsplit_once("line-")?.1.parse().ok())
        .collect()
}

/// The output's lines as a terminal shows them: `\r\n` split, and of a line redrawn with
/// `\r`, what was written last (bash writes `ESC[?2004l\r` before a command's output).
fn lines(text: &str) -> Vec<String> {
    text.split('\n')
        .map(|l| {
            let l = l.trim_end_matches('\r');
            l.rsplit('\r').next().unwrap_or(l).to_string()
        })
        .collect()
}

/// A line that ends with `want`: `sh` prints its prompt after the tty echoed input typed
/// early, so output can follow a prompt (`# hello`). Commands are typed so that their echo
/// never ends with what they print (`echo hel""lo`).
fn has_line(want: &str) -> impl Fn(&[String], &[PtyGap]) -> bool + '_ {
    move |lines, _| lines.iter().any(|l| l.ends_with(want))
}

/// `echo`, `printf` and `exit 3` in a fresh terminal of `sbx`, which reports the exit status
/// as `code`. The command line's echo holds `hel""lo` and `$((6*7))`, so only the shell's
/// output has the lines `hello` and `42`.
fn echo_then_exit(sbx: &Sandbox, code: Option<i32>) {
    let term = sbx.pty().create(PtySize::new(100, 30)).unwrap();
    assert!(term.name().starts_with("e2b"), "{}", term.name());
    assert!(sbx.pty().list().unwrap().contains(&term.name().to_string()));
    term.send_input("echo hel\"\"lo; printf '%s\\n' $((6*7))\n")
        .unwrap();
    let mut screen = Screen::default();
    screen.read_until(&term, |l, g| {
        has_line("hello")(l, g) && has_line("42")(l, g)
    });
    term.send_input("exit 3\n").unwrap();
    let out = term.wait().unwrap();
    assert_eq!(out.end, PtyEnd::Exited { code }, "{:?}", screen.text);
    assert!(screen.gaps.is_empty() && out.gaps.is_empty());
    // Over for good: input is refused with a typed error, and the end stays readable.
    assert!(matches!(
        term.send_input("echo again\n"),
        Err(Error::TerminalNotFound { .. })
    ));
    assert_eq!(
        term.recv_timeout(Duration::ZERO).unwrap(),
        Some(PtyEvent::End(PtyEnd::Exited { code }))
    );
}

/// The local sandbox's terminals run bash, as E2B's do, whatever the host's `$SHELL` (unset in
/// the isolated sandbox, where jupyter_server alone would start `sh`), and find the kernel's
/// `python` first, as commands do (a login shell's /etc/profile sets PATH anew).
fn runs_bash_with_the_kernels_python(sbx: &Sandbox) {
    let term = sbx.pty().create(PtySize::new(250, 30)).unwrap();
    term.send_input("echo \"shell-${BASH_VERSION:+ba\"\"sh} py=$(command -v python)\"\n")
        .unwrap();
    let mut screen = Screen::default();
    // The typed line's echo holds `shell-${BASH_VERSION...`; the output, what it expanded to.
    let answer = |lines: &[String]| {
        lines.iter().find_map(|l| {
            let after = l.rsplit_once("shell-")?.1;
            (!after.starts_with('$')).then(|| after.to_string())
        })
    };
    screen.read_until(&term, |l, _| answer(l).is_some());
    let python = sbx.commands().run("command -v python").unwrap().stdout;
    assert_eq!(
        answer(&lines(&screen.text)).unwrap(),
        format!("bash py={}", python.trim()),
        "{:?}",
        screen.text
    );
}

#[test]
fn echo_and_exit_on_the_isolated_local_sandbox() {
    deadline(|| {
        let sbx = local();
        runs_bash_with_the_kernels_python(&sbx);
        echo_then_exit(&sbx, Some(3));
    });
}

#[test]
fn echo_and_exit_on_the_unisolated_local_sandbox() {
    deadline(|| {
        let sbx = local_tcp();
        runs_bash_with_the_kernels_python(&sbx);
        echo_then_exit(&sbx, Some(3));
    });
}

/// A shell ended by a signal reports 128 + its number, as `$?` would.
#[test]
fn a_shell_killed_by_a_signal_reports_128_plus_its_number() {
    deadline(|| {
        let sbx = local();
        let term = sbx.pty().create(PtySize::default()).unwrap();
        term.send_input("kill -9 $$\n").unwrap();
        assert_eq!(term.wait().unwrap().end, PtyEnd::Exited { code: Some(137) });
    });
}

#[test]
fn echo_and_exit_on_a_stock_jupyter_server() {
    deadline(|| {
        let server = PythonServer::tokenless_jupyter();
        let sbx = Sandbox::jupyter(&server.url, "").unwrap();
        // Stock terminado tells only that the shell is gone.
        echo_then_exit(&sbx, None);
    });
}

/// E2B without the cloud: the template-faithful jupyter_server behind the stand-in for E2B's
/// sandbox proxy, reached as an E2B sandbox.
#[test]
fn echo_and_exit_on_an_e2b_template_server() {
    deadline(|| {
        crate::support::init_logs();
        let rig = crate::support::e2b_rig::Rig::start();
        let sbx = Sandbox::builder()
            .e2b_with(&rig.config(), &e2b_blocking::E2bOptions::default())
            .unwrap();
        echo_then_exit(&sbx, None);
        assert!(
            rig.proxy
                .seen()
                .iter()
                .any(|s| s.upgrade && s.target.contains("/terminals/websocket/")),
            "the terminal's websocket went through the proxy"
        );
    });
}

#[test]
fn resize_is_what_stty_reports() {
    deadline(|| {
        let sbx = local();
        let term = sbx
            .pty()
            .create_with(PtyOptions::new().size(PtySize::new(90, 20)))
            .unwrap();
        let mut screen = Screen::default();
        term.send_input("stty size\n").unwrap();
        screen.read_until(&term, has_line("20 90"));
        term.resize(PtySize::new(123, 45)).unwrap();
        term.send_input("stty size\n").unwrap();
        screen.read_until(&term, has_line("45 123"));
        assert!(matches!(
            term.resize(PtySize::new(0, 10)),
            Err(Error::InvalidArgument(_))
        ));
        // Bad input is refused before it is queued, and the terminal goes on.
        assert!(matches!(
            term.send_input([0xff, 0xfe]),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            term.send_input("x".repeat(11 << 20)),
            Err(Error::RequestTooLarge { .. })
        ));
        term.send_input("echo st\"\"ill-here\n").unwrap();
        screen.read_until(&term, has_line("still-here"));
    });
}

#[test]
fn kill_ends_the_terminal_and_wait_returns() {
    deadline(|| {
        let sbx = local();
        let term = sbx.pty().create(PtySize::default()).unwrap();
        let name = term.name().to_string();
        term.send_input("sleep 1000\n").unwrap();
        assert!(term.kill().unwrap());
        assert_eq!(term.wait().unwrap().end, PtyEnd::Killed);
        assert!(!sbx.pty().list().unwrap().contains(&name));
        assert!(!term.kill().unwrap(), "already gone");
        assert!(matches!(
            sbx.pty().connect(&name),
            Err(Error::TerminalNotFound { .. })
        ));
    });
}

/// A job that ignores the hangup keeps the PTY open after its shell is killed. The local
/// sandbox's server kills the rest of the terminal's session too, so it sees the terminal end,
/// says so, and forgets it.
#[test]
fn a_kill_ends_a_job_that_ignores_the_hangup() {
    deadline(|| {
        let sbx = local();
        let term = sbx.pty().create(PtySize::default()).unwrap();
        let name = term.name().to_string();
        let mut screen = Screen::default();
        term.send_input("(trap '' HUP; exec sleep 1234) & echo sta\"\"rted\n")
            .unwrap();
        screen.read_until(&term, has_line("started"));
        assert!(term.kill().unwrap());
        assert_eq!(term.wait().unwrap().end, PtyEnd::Killed);
        assert!(!sbx.pty().list().unwrap().contains(&name));
    });
}

/// The pid a line `job-<pid>` shows.
fn job_pid(lines: &[String]) -> Option<u32> {
    lines
        .iter()
        .find_map(|l| l.rsplit_once("job-")?.1.parse().ok())
}

/// On a stock server such a job outlives the kill and the server never says the terminal
/// ended; the handle ends it itself shortly after the server confirmed the kill.
#[test]
fn a_killed_terminal_ends_even_where_the_server_never_says_so() {
    deadline(|| {
        let server = PythonServer::tokenless_jupyter();
        let sbx = Sandbox::jupyter(&server.url, "").unwrap();
        let term = sbx.pty().create(PtySize::default()).unwrap();
        let name = term.name().to_string();
        let mut screen = Screen::default();
        // The job names itself only once it ignores SIGHUP (ignored signals survive exec), so
        // the kill cannot reach it before the trap is set; `sh -c` because a server started
        // without SHELL runs `sh`, which has no $BASHPID.
        term.send_input("(trap '' HUP; exec sh -c 'echo \"job-$$\"; exec sleep 120') &\n")
            .unwrap();
        screen.read_until(&term, |l, _| job_pid(l).is_some());
        assert!(term.kill().unwrap());
        assert_eq!(term.wait().unwrap().end, PtyEnd::Killed);
        // The owner's server still has it, held open by the job; end the job here.
        assert!(sbx.pty().list().unwrap().contains(&name));
        let pid = job_pid(&lines(&screen.text)).unwrap();
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    });
}

#[test]
fn cwd_envs_timeout_and_reattaching() {
    deadline(|| {
        let sbx = local();
        sbx.files().make_dir("sub").unwrap();
        let term = sbx
            .pty()
            .create_with(
                PtyOptions::new()
                    .cwd("sub")
                    .envs([("PTY_TEST_VAR", "v-1")])
                    .kill_on_drop(false),
            )
            .unwrap();
        let mut screen = Screen::default();
        term.send_input("echo \"[$(basename \"$PWD\")][$PTY_TEST_VAR]\"\n")
            .unwrap();
        screen.read_until(&term, has_line("[sub][v-1]"));
        let name = term.detach();
        // A new handle gets terminado's buffer first: what was printed before it attached.
        let again = sbx.pty().connect(&name).unwrap();
        let mut replayed = Screen::default();
        replayed.read_until(&again, has_line("[sub][v-1]"));
        drop(again);
        assert!(!sbx.pty().list().unwrap().contains(&name), "killed on drop");

        assert!(matches!(
            sbx.pty().create_with(PtyOptions::new().cwd("no/such/dir")),
            Err(Error::FileNotFound { .. })
        ));
        let short = sbx
            .pty()
            .create_with(PtyOptions::new().timeout(Duration::from_millis(300)))
            .unwrap();
        assert_eq!(short.wait().unwrap().end, PtyEnd::TimedOut);
    });
}

/// Records how long each outage of a terminal's connection lasted, as it happens.
fn watch_outages(term: &Terminal, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<Duration>> {
    let watch = term.watch_connection();
    std::thread::spawn(move || {
        let mut outages = Vec::new();
        let mut since = None;
        while !stop.load(Ordering::SeqCst) {
            match watch.recv_timeout(Duration::from_millis(50)) {
                Some(ConnectionState::Reconnecting { .. }) => {
                    since.get_or_insert_with(Instant::now);
                }
                Some(ConnectionState::Connected) => {
                    if let Some(t) = since.take() {
                        outages.push(t.elapsed());
                    }
                }
                Some(ConnectionState::Closed { .. }) => break,
                _ => {}
            }
        }
        outages
    })
}

#[test]
fn output_and_input_arrive_once_through_random_cuts() {
    deadline(|| {
        let owner = local_tcp();
        let (proxy, sbx) = through_proxy(&owner, Sandbox::builder());
        let term = sbx.pty().create(PtySize::new(120, 40)).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let outages = watch_outages(&term, stop.clone());
        let mut screen = Screen::default();
        term.send_input("stty -echoctl\n").unwrap();
        // 1500 lines, one PTY chunk or so each: past terminado's 1000-chunk buffer, so the
        // later replays come from a buffer that has wrapped.
        const N: usize = 1500;
        let chaos =
            proxy.start_random_cuts(Duration::from_millis(100), Duration::from_millis(500), 11);
        // Bash's `read -t` on a pipe nothing writes to paces the lines as `sleep` would,
        // without starting a process for each.
        term.send_input(format!(
            "exec {{p}}<> <(:); for i in $(seq 1 {N}); do echo line-$i; read -t 0.004 -u $p; \
             done; echo lo\"\"op-done\n"
        ))
        .unwrap();
        screen.read_until(&term, has_line("loop-done"));
        // Typed while the link keeps being cut: each command's output must show once. The
        // local sandbox's server numbers terminal input, so what a cut leaves unconfirmed is
        // sent again exactly when it did not arrive.
        const MARKERS: usize = 30;
        for k in 1..=MARKERS {
            term.send_input(format!("echo mark\"\"er-{k}\n")).unwrap();
            std::thread::sleep(Duration::from_millis(40));
        }
        screen.read_until(&term, has_line(&format!("marker-{MARKERS}")));
        // With the link left alone, one more line proves the shell has read everything.
        let cuts = chaos.triggered();
        drop(chaos);
        term.send_input("echo fi\"\"nal\n").unwrap();
        screen.read_until(&term, has_line("final"));
        stop.store(true, Ordering::SeqCst);
        let outages = outages.join().unwrap();

        let seen = lines(&screen.text);
        assert!(
            screen.gaps.is_empty(),
            "gaps: {:?} (outages: {outages:?})",
            screen.gaps
        );
        assert_each_once_in_order(&line_numbers(&screen.text), N);
        for k in 1..=MARKERS {
            let want = format!("marker-{k}");
            let times = seen.iter().filter(|l| **l == want).count();
            assert_eq!(times, 1, "{want} seen {times} times");
        }
        assert!(cuts > 0, "the proxy cut the link");
        let mut sorted = outages.clone();
        sorted.sort();
        eprintln!(
            "pty through random cuts: {cuts} cuts, {} reconnects, reconnect median {:?} max {:?}",
            outages.len(),
            sorted.get(sorted.len() / 2),
            sorted.last(),
        );
        assert!(!outages.is_empty(), "the terminal reconnected");
        drop(term);
        drop(proxy);
    });
}

/// Output through random cuts on a stock jupyter_server, which does not number terminal
/// input: output still arrives once and in order; input is sent at most once, and any input
/// a cut left unconfirmed is reported.
#[test]
fn a_stock_server_keeps_output_whole_through_cuts() {
    deadline(|| {
        let server = PythonServer::tokenless_jupyter();
        let addr = server.url.trim_start_matches("http://").parse().unwrap();
        let proxy = crate::support::fault_proxy::FaultProxy::start(addr).unwrap();
        let sbx = Sandbox::jupyter(&format!("http://{}", proxy.addr()), "").unwrap();
        let term = sbx.pty().create(PtySize::new(120, 40)).unwrap();
        let mut screen = Screen::default();
        const N: usize = 600;
        let chaos =
            proxy.start_random_cuts(Duration::from_millis(100), Duration::from_millis(500), 5);
        term.send_input(format!(
            "for i in $(seq 1 {N}); do echo line-$i; sleep 0.005; done; echo lo\"\"op-done\n"
        ))
        .unwrap();
        screen.read_until(&term, |l, g| {
            has_line("loop-done")(l, g)
                || g.iter()
                    .any(|g| matches!(g, PtyGap::InputUnconfirmed(i) if i.contains("seq 1")))
        });
        let cuts = chaos.triggered();
        drop(chaos);
        let unconfirmed: Vec<_> = screen
            .gaps
            .iter()
            .filter(|g| matches!(g, PtyGap::InputUnconfirmed(_)))
            .collect();
        if !unconfirmed.is_empty() {
            // The loop's own command line was cut off unconfirmed: nothing more to check.
            eprintln!("stock server: the command was not confirmed ({cuts} cuts)");
            return;
        }
        assert!(screen.gaps.is_empty(), "gaps: {:?}", screen.gaps);
        assert_each_once_in_order(&line_numbers(&screen.text), N);
        eprintln!("stock server through random cuts: {cuts} cuts, output whole");
        assert!(cuts > 0);
    });
}

#[test]
fn a_terminal_gone_during_a_cut_ends_as_gone() {
    deadline(|| {
        let owner = local_tcp();
        let (proxy, sbx) = through_proxy(&owner, Sandbox::builder());
        let term = sbx.pty().create(PtySize::default()).unwrap();
        let mut screen = Screen::default();
        term.send_input("echo rea\"\"dy\n").unwrap();
        screen.read_until(&term, has_line("ready"));
        let watch = term.watch_connection();
        proxy.set_refuse(true);
        proxy.cut_all();
        // Wait until the worker noticed the cut (bounded by the test deadline).
        while !matches!(
            watch.recv_timeout(Duration::from_secs(30)),
            Some(ConnectionState::Reconnecting { .. })
        ) {}
        // Killed by someone else while this client is cut off.
        assert!(owner.pty().kill(term.name()).unwrap());
        proxy.set_refuse(false);
        assert_eq!(term.wait().unwrap().end, PtyEnd::Gone);
    });
}

#[test]
fn a_killed_sandbox_ends_its_terminals_with_a_typed_error() {
    deadline(|| {
        let sbx = local_tcp();
        let term = sbx.pty().create(PtySize::default()).unwrap();
        sbx.kill().unwrap();
        let err = term
            .wait()
            .expect_err("the terminal cannot outlive its sandbox");
        assert!(
            matches!(err, Error::SandboxNotFound { .. } | Error::Closed),
            "{err:?}"
        );
        assert!(term.send_input("ls\n").is_err());
    });
}

/// A cut that outlasts terminado's buffer (1000 PTY reads) loses output; the reader gets a
/// typed gap where it happened, and everything around it once and in order.
#[test]
fn a_cut_longer_than_terminados_buffer_is_a_typed_gap() {
    deadline(|| {
        let owner = local_tcp();
        let patient = e2b_blocking::ReconnectPolicy::default()
            .max_attempts(100_000)
            .max_elapsed(Duration::from_secs(120));
        let (proxy, sbx) = through_proxy(&owner, Sandbox::builder().reconnect(patient));
        let term = sbx.pty().create(PtySize::new(120, 40)).unwrap();
        let mut screen = Screen::default();
        // One echo per PTY read or so (the waits keep reads apart; `read -t` as in
        // `output_and_input_arrive_once_through_random_cuts`), until told to stop: how
        // many reads a number of lines takes depends on how busy the machine is, so the loss
        // is checked below, not assumed.
        term.send_input(
            "exec {p}<> <(:); i=0; while [ ! -e stop-loop ]; do i=$((i+1)); echo line-$i; \
             read -t 0.002 -u $p; done; echo lo\"\"op-done-$i\n",
        )
        .unwrap();
        screen.read_until(&term, has_line("line-1"));
        proxy.set_refuse(true);
        proxy.cut_all();
        // What the cut client holds: everything queued before the cut.
        while let Some(event) = term.recv_timeout(Duration::from_millis(300)).unwrap() {
            screen.take(event);
        }
        let held = line_numbers(&screen.text).into_iter().max().unwrap_or(0);
        // The output is lost for sure once a new client's replay (terminado's buffer) starts
        // after the line that follows what the cut client holds.
        let until = Instant::now() + OUTPUT_BOUND;
        loop {
            assert!(
                Instant::now() < until,
                "terminado's buffer never moved past line {held}"
            );
            std::thread::sleep(Duration::from_millis(300));
            let peek = owner.pty().connect(term.name()).unwrap();
            let mut replay = Screen::default();
            replay.read_until(&peek, |l, _| l.len() > 2);
            peek.detach();
            if line_numbers(&replay.text)
                .first()
                .is_some_and(|&n| n > held + 1)
            {
                break;
            }
        }
        owner.files().write("stop-loop", "").unwrap();
        proxy.set_refuse(false);
        screen.read_until(&term, |l, _| l.iter().any(|l| l.contains("loop-done-")));
        assert_eq!(screen.gaps, vec![PtyGap::OutputLost]);
        let last: usize = lines(&screen.text)
            .iter()
            .find_map(|l| l.rsplit_once("loop-done-")?.1.parse().ok())
            .expect("the loop's count");
        // In order and each once, with one jump: the lines printed while cut off and gone
        // from terminado's buffer.
        let numbered = line_numbers(&screen.text);
        let jumps: Vec<_> = numbered.windows(2).filter(|w| w[1] != w[0] + 1).collect();
        assert_eq!(jumps.len(), 1, "one gap: {jumps:?}");
        assert_eq!(numbered.last(), Some(&last));
        eprintln!(
            "a cut over terminado's buffer: lines {}..{} lost, {} lines replayed after it",
            jumps[0][0] + 1,
            jumps[0][1] - 1,
            last - jumps[0][1] + 1
        );
    });
}
