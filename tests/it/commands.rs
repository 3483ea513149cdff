//! sandbox.commands() against a real local jupyter_server: separate streams, exit codes,
//! timeouts, kills, env and cwd, binary output, concurrency and typed errors.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::support::{alive, deadline, descendants, init_logs, local, local_tcp, through_proxy};
use e2b_blocking::{CommandOutput, Error, ReconnectPolicy, Sandbox, TimeoutPhase};

/// Waits up to 5 s for a process to be gone (reaped or a zombie).
fn gone(pid: u32) -> bool {
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn stdout_stderr_and_exit_code_stay_separate() {
    deadline(|| {
        let sbx = local();
        let out = sbx
            .commands()
            .run("echo out1; echo err1 >&2; echo out2; exit 3")
            .unwrap();
        assert_eq!(out.stdout, "out1\nout2\n");
        assert_eq!(out.stderr, "err1\n");
        assert_eq!(out.exit_code, 3);
        assert!(!out.success());
        match out.check() {
            Err(Error::CommandFailed {
                exit_code: 3,
                stderr,
                ..
            }) => assert_eq!(stderr, "err1\n"),
            other => panic!("expected CommandFailed, got {other:?}"),
        }
        let ok = sbx.commands().run("true").unwrap().check().unwrap();
        assert_eq!((ok.stdout.as_str(), ok.exit_code), ("", 0));
        // The default cwd is the sandbox root, at /home/user inside as on E2B.
        let pwd = sbx.commands().run("pwd -P").unwrap();
        assert_eq!(pwd.stdout.trim_end(), "/home/user");
    });
}

#[test]
fn a_result_keeps_the_tail_of_each_stream_or_none_of_it() {
    deadline(|| {
        let sbx = local();
        let mut seen = String::new();
        let out = sbx
            .commands()
            .cmd("seq 1 20000; echo oops >&2")
            .max_output(100)
            .on_stdout(|s| seen.push_str(s))
            .run()
            .unwrap();
        let all: String = (1..=20000).map(|i| format!("{i}\n")).collect();
        assert!(seen == all, "the callback missed output");
        assert_eq!(out.stdout, all[all.len() - 100..]);
        assert_eq!(out.dropped.stdout_bytes, (all.len() - 100) as u64);
        assert_eq!(
            (out.stderr.as_str(), out.dropped.stderr_bytes),
            ("oops\n", 0)
        );

        // Nothing kept, on the handle either; its output iterator still sees everything.
        let mut handle = sbx
            .commands()
            .cmd("seq 1 1000; echo bad >&2; exit 3")
            .retain_output(false)
            .spawn()
            .unwrap();
        let streamed: String = handle
            .output()
            .filter(|o| !o.is_stderr())
            .map(|o| o.text().to_string())
            .collect();
        assert_eq!(
            streamed,
            (1..=1000).map(|i| format!("{i}\n")).collect::<String>()
        );
        assert_eq!((handle.stdout(), handle.stderr()), ("", ""));
        let out = handle.wait().unwrap();
        assert_eq!(
            (out.stdout.as_str(), out.stderr.as_str(), out.exit_code),
            ("", "", 3)
        );
        assert_eq!(out.dropped.stdout_bytes, streamed.len() as u64);
        assert_eq!(out.dropped.stderr_bytes, 4);
    });
}

#[test]
fn callbacks_stream_output_as_it_arrives() {
    deadline(|| {
        let sbx = local();
        let seen = Mutex::new(Vec::new());
        let started = Instant::now();
        let out = sbx
            .commands()
            .cmd("for i in 1 2 3; do echo $i; echo e$i >&2; sleep 0.3; done")
            .on_stdout(|s| {
                seen.lock()
                    .unwrap()
                    .push((format!("out:{}", s.trim()), started.elapsed()))
            })
            .on_stderr(|s| {
                seen.lock()
                    .unwrap()
                    .push((format!("err:{}", s.trim()), started.elapsed()))
            })
            .run()
            .unwrap();
        assert_eq!(out.stdout, "1\n2\n3\n");
        assert_eq!(out.stderr, "e1\ne2\ne3\n");
        let seen = seen.into_inner().unwrap();
        let labels: Vec<&str> = seen.iter().map(|(l, _)| l.as_str()).collect();
        for want in ["out:1", "err:e1", "out:2", "err:e2", "out:3", "err:e3"] {
            assert!(labels.contains(&want), "{labels:?}");
        }
        // The first line came well before the end: streamed, not batched.
        let first = seen.iter().find(|(l, _)| l == "out:1").unwrap().1;
        let last = seen.iter().find(|(l, _)| l == "out:3").unwrap().1;
        assert!(last - first >= Duration::from_millis(400), "{seen:?}");
    });
}

#[test]
fn a_command_past_its_timeout_is_killed() {
    deadline(|| {
        let sbx = local_tcp();
        let started = Instant::now();
        let mut handle = sbx
            .commands()
            .cmd("echo started; sleep 30; echo never")
            .timeout(Duration::from_secs(1))
            .spawn()
            .unwrap();
        let pid = handle.pid().expect("pid");
        assert!(alive(pid));
        match handle.wait() {
            Err(Error::Timeout {
                phase: TimeoutPhase::Command,
                after,
            }) => assert_eq!(after, Duration::from_secs(1)),
            other => panic!("expected a command timeout, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(handle.stdout(), "started\n");
        assert!(gone(pid), "the shell outlived its timeout");
        // `run` reports the same, and the pool's kernel is usable again.
        let err = sbx
            .commands()
            .cmd("sleep 30")
            .timeout(Duration::from_millis(500))
            .run()
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert_eq!(sbx.commands().run("echo next").unwrap().stdout, "next\n");
    });
}

#[test]
fn a_spawned_command_is_killed_by_its_handle() {
    deadline(|| {
        let sbx = local_tcp();
        let mut handle = sbx
            .commands()
            .cmd("sleep 100 & sleep 100; echo never")
            .timeout(None)
            .spawn()
            .unwrap();
        let pid = handle.pid().expect("pid");
        // Both sleeps, the background one included, are in the command's process group.
        let until = Instant::now() + Duration::from_secs(5);
        let mut children = descendants(pid);
        while children.len() < 2 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
            children = descendants(pid);
        }
        assert_eq!(children.len(), 2, "{children:?}");
        assert!(handle.try_wait().unwrap().is_none());
        let started = Instant::now();
        assert!(handle.kill().unwrap());
        // Normally ~100 ms; the bound is the kill's own grace period, for loaded CI machines.
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{:?}",
            started.elapsed()
        );
        let result = handle.wait().unwrap();
        assert_eq!(result.exit_code, -9);
        assert_eq!(result.stdout, "");
        assert!(gone(pid));
        for c in children {
            assert!(gone(c), "child {c} survived the kill");
        }
        assert!(!handle.kill().unwrap(), "a second kill has nothing to do");
        // Dropping a running handle kills its command too.
        let pid = {
            let h = sbx
                .commands()
                .cmd("sleep 100")
                .timeout(None)
                .spawn()
                .unwrap();
            h.pid().unwrap()
        };
        assert!(gone(pid), "dropping the handle did not kill the command");
        assert_eq!(sbx.commands().run("echo ok").unwrap().stdout, "ok\n");
    });
}

#[test]
fn env_vars_and_cwd_are_honoured() {
    deadline(|| {
        init_logs();
        let sbx = Sandbox::builder()
            .envs([("SANDBOX_VAR", "from-sandbox")])
            .local()
            .unwrap();
        sbx.files().make_dir("work/sub dir").unwrap();
        let out = sbx
            .commands()
            .cmd("pwd; echo \"$FOO|$SANDBOX_VAR|$QUOTE\"")
            .cwd("work/sub dir")
            .env("FOO", "bar baz")
            .envs([("QUOTE", "it's \"quoted\"")])
            .run()
            .unwrap();
        let mut lines = out.stdout.lines();
        assert!(lines.next().unwrap().ends_with("/work/sub dir"), "{out:?}");
        assert_eq!(
            lines.next().unwrap(),
            "bar baz|from-sandbox|it's \"quoted\""
        );
        // Per-command env vars do not leak into the next command.
        let out = sbx.commands().run("echo \"[$FOO]\"").unwrap();
        assert_eq!(out.stdout, "[]\n");
        // An absolute cwd works too (commands can reach the whole machine).
        let out = sbx.commands().cmd("pwd").cwd("/").run().unwrap();
        assert_eq!(out.stdout, "/\n");
    });
}

#[test]
fn start_errors_are_typed() {
    deadline(|| {
        let sbx = local();
        sbx.files().write("plain.txt", "x").unwrap();
        match sbx.commands().cmd("ls").cwd("nope").run() {
            Err(Error::FileNotFound { path }) => assert_eq!(path, "nope"),
            other => panic!("expected FileNotFound, got {other:?}"),
        }
        assert!(matches!(
            sbx.commands().cmd("ls").cwd("plain.txt").spawn(),
            Err(Error::NotADirectory { .. })
        ));
        assert!(matches!(
            sbx.commands().cmd("true").env("A=B", "x").run(),
            Err(Error::InvalidArgument(_))
        ));
        // A command that does not exist is the shell's exit code 127, not an Err.
        let out = sbx.commands().run("no-such-command-xyz").unwrap();
        assert_eq!(out.exit_code, 127);
        assert!(out.stderr.contains("no-such-command-xyz"), "{out:?}");
    });
}

#[test]
fn binary_output_and_background_children_do_not_break_the_runner() {
    deadline(|| {
        let sbx = local();
        let out = sbx
            .commands()
            .run("printf 'ok\\xff\\xfe\\n'; printf '\\xe2\\x82' >&2")
            .unwrap();
        assert_eq!(out.stdout, "ok\u{fffd}\u{fffd}\n");
        assert_eq!(out.stderr, "\u{fffd}");
        // A background child keeps the pipes open; the command still ends with its shell.
        let started = Instant::now();
        let out = sbx.commands().run("sleep 20 & echo bg started").unwrap();
        assert_eq!(out.stdout, "bg started\n");
        assert!(started.elapsed() < Duration::from_secs(8));
        // Large output arrives whole.
        let out = sbx.commands().run("seq 1 200000").unwrap();
        assert_eq!(out.stdout.lines().count(), 200_000);
        assert!(out.stdout.ends_with("199999\n200000\n"));
    });
}

#[test]
fn spawned_commands_run_concurrently_and_stream_through_an_iterator() {
    deadline(|| {
        let sbx = local();
        let cmds = sbx.commands();
        // Each waits for a file only the other creates: one after the other, the first would
        // give up waiting (after 60 s, a hang bound).
        let meet = |me: &str, other: &str| {
            format!(
                "touch {me}; for i in $(seq 600); do [ -e {other} ] && break; sleep 0.1; done; \
                 [ -e {other} ] && echo {me}-met || echo {me}-alone"
            )
        };
        let mut a = cmds.spawn(meet("a", "b")).unwrap();
        let mut b = cmds.spawn(meet("b", "a")).unwrap();
        assert_eq!(a.wait().unwrap().stdout, "a-met\n");
        assert_eq!(b.wait().unwrap().stdout, "b-met\n");

        let mut h = cmds
            .spawn("for i in 1 2 3; do echo $i; sleep 0.1; done; echo done >&2; exit 4")
            .unwrap();
        let items: Vec<CommandOutput> = h.output().collect();
        let stdout: String = items
            .iter()
            .filter(|o| !o.is_stderr())
            .map(|o| o.text())
            .collect();
        assert_eq!(stdout, "1\n2\n3\n");
        assert!(items.contains(&CommandOutput::Stderr("done\n".into())));
        let result = h.wait().unwrap();
        assert_eq!(result.exit_code, 4);
        assert_eq!(result.stdout, "1\n2\n3\n");
    });
}

#[test]
fn commands_and_files_fail_with_closed_after_the_sandbox_is_killed() {
    deadline(|| {
        let sbx = local_tcp();
        assert_eq!(sbx.commands().run("echo up").unwrap().stdout, "up\n");
        // A command in flight ends at once when another thread kills the sandbox.
        let mut h = sbx
            .commands()
            .cmd("sleep 60")
            .timeout(None)
            .spawn()
            .unwrap();
        let pid = h.pid().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(300));
                sbx.kill().unwrap();
            });
            let started = Instant::now();
            let err = h.wait().unwrap_err();
            assert!(err.is_fatal(), "{err:?}");
            assert!(started.elapsed() < Duration::from_secs(5));
        });
        assert!(gone(pid), "the command outlived its sandbox");
        drop(h);
        assert!(matches!(sbx.commands().run("echo up"), Err(Error::Closed)));
        assert!(matches!(sbx.files().read("x.txt"), Err(Error::Closed)));
        assert!(matches!(
            sbx.files().write("x.txt", "x"),
            Err(Error::Closed)
        ));
    });
}

#[test]
fn a_panicking_callback_kills_the_command_and_is_an_error() {
    deadline(|| {
        let sbx = local();
        let started = Instant::now();
        let err = sbx
            .commands()
            .cmd("echo first; sleep 30")
            .on_stdout(|_| panic!("callback bug"))
            .run()
            .unwrap_err();
        match err {
            Error::CallbackPanicked { callback, message } => {
                assert_eq!((callback, message.as_str()), ("on_stdout", "callback bug"))
            }
            other => panic!("expected CallbackPanicked, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(sbx.commands().run("echo fine").unwrap().stdout, "fine\n");
    });
}

#[test]
fn command_output_survives_connection_cuts() {
    deadline(|| {
        init_logs();
        let owner = local_tcp();
        let (proxy, sbx) = through_proxy(
            &owner,
            Sandbox::builder()
                .reconnect(ReconnectPolicy::default().max_elapsed(Duration::from_secs(30))),
        );
        // Start the command kernel before the cuts: REST calls are not retried.
        assert_eq!(sbx.commands().run("echo warm").unwrap().stdout, "warm\n");
        let chaos = proxy.start_random_cuts(
            Duration::from_millis(100),
            Duration::from_millis(400),
            0xc0de,
        );
        for n in 0..6 {
            let mut streamed = String::new();
            let out = sbx
                .commands()
                .cmd(format!(
                    "for i in $(seq 1 30); do echo c{n} out $i; echo c{n} err $i >&2; sleep 0.03; done; exit {n}"
                ))
                .on_stdout(|s| streamed.push_str(s))
                .run()
                .unwrap_or_else(|e| panic!("command {n}: {e:?}"));
            let want: String = (1..=30).map(|i| format!("c{n} out {i}\n")).collect();
            let want_err: String = (1..=30).map(|i| format!("c{n} err {i}\n")).collect();
            assert_eq!(out.stdout, want, "command {n}");
            assert_eq!(out.stderr, want_err, "command {n}");
            assert_eq!(streamed, want, "command {n}: callbacks");
            assert_eq!(out.exit_code, n);
        }
        drop(chaos);
        println!("{} cuts", proxy.cuts());
        assert!(proxy.cuts() >= 5, "only {} cuts", proxy.cuts());
    });
}

/// A spawned command's handle is `Send`: it can be waited on from another thread, and the
/// sandbox stays alive for it even after the caller dropped its own handle.
#[test]
fn a_command_handle_is_waited_on_from_another_thread() {
    deadline(|| {
        let sbx = local();
        let mut job = sbx.commands().spawn("sleep 0.5; echo done").unwrap();
        drop(sbx);
        let result = std::thread::spawn(move || job.wait())
            .join()
            .unwrap()
            .unwrap();
        assert_eq!((result.stdout.as_str(), result.exit_code), ("done\n", 0));
    });
}

/// `cat` echoes what is sent to its stdin, and exits 0 once stdin is closed.
#[test]
fn stdin_reaches_cat_and_close_ends_it() {
    deadline(|| {
        let sbx = local();
        let mut cat = sbx.commands().cmd("cat").stdin(true).spawn().unwrap();
        cat.send_stdin("hello\n").unwrap();
        cat.send_stdin(b"bytes \xe2\x9c\x93\n").unwrap();
        let mut seen = String::new();
        for out in cat.output() {
            seen.push_str(out.text());
            if seen.ends_with("✓\n") {
                break;
            }
        }
        assert_eq!(seen, "hello\nbytes ✓\n");
        cat.close_stdin().unwrap();
        cat.close_stdin().unwrap();
        assert!(matches!(cat.send_stdin("late"), Err(Error::StdinClosed)));
        let out = cat.wait().unwrap();
        assert_eq!(out.exit_code, 0);
        assert_eq!(out.stdout, "hello\nbytes ✓\n");

        // Without stdin(true) there is nothing to write to, and stdin is /dev/null.
        let mut plain = sbx.commands().spawn("cat; echo done").unwrap();
        assert!(matches!(
            plain.send_stdin("x"),
            Err(Error::InvalidArgument(_))
        ));
        assert_eq!(plain.wait().unwrap().stdout, "done\n");

        // More than a pipe holds (and than one piece of 4 MiB) gets through whole.
        let mut wc = sbx.commands().cmd("wc -c").stdin(true).spawn().unwrap();
        wc.send_stdin(vec![b'x'; (5 << 20) + 3]).unwrap();
        wc.close_stdin().unwrap();
        assert_eq!(
            wc.wait().unwrap().stdout.trim(),
            ((5 << 20) + 3).to_string()
        );

        // A command that has ended has no reader: the write is refused, not lost.
        let mut quick = sbx.commands().cmd("true").stdin(true).spawn().unwrap();
        assert!(quick.wait().unwrap().success());
        assert!(matches!(quick.send_stdin("x"), Err(Error::StdinClosed)));
        quick.close_stdin().unwrap();
    });
}

/// Through a proxy that cuts every connection at random, each piece sent to stdin arrives
/// exactly once and in order.
#[test]
fn stdin_arrives_exactly_once_across_cuts() {
    deadline(|| {
        init_logs();
        let owner = local_tcp();
        let (proxy, sbx) = through_proxy(
            &owner,
            Sandbox::builder()
                .reconnect(ReconnectPolicy::default().max_elapsed(Duration::from_secs(30))),
        );
        let mut cat = sbx
            .commands()
            .cmd("cat")
            .stdin(true)
            .timeout(None)
            .spawn()
            .unwrap();
        // The first write starts the writer's kernel before the cuts: REST calls are not
        // retried.
        cat.send_stdin("line 0\n").unwrap();
        let chaos = proxy.start_random_cuts(
            Duration::from_millis(100),
            Duration::from_millis(400),
            0x57d1,
        );
        for i in 1..40 {
            cat.send_stdin(format!("line {i}\n"))
                .unwrap_or_else(|e| panic!("line {i}: {e:?}"));
            std::thread::sleep(Duration::from_millis(20));
        }
        cat.close_stdin().unwrap();
        let out = cat.wait().unwrap();
        drop(chaos);
        let want: String = (0..40).map(|i| format!("line {i}\n")).collect();
        assert_eq!(out.stdout, want);
        assert_eq!(out.exit_code, 0);
        println!("{} cuts", proxy.cuts());
        assert!(proxy.cuts() >= 3, "only {} cuts", proxy.cuts());
    });
}

/// `list` shows running commands by pid, `kill(pid)` ends one (its handle then waits with
/// -9), and a background command survives its handle's drop while a plain one does not.
#[test]
fn list_kill_and_background_commands() {
    deadline(|| {
        let sbx = local();
        let cmds = sbx.commands();
        let listed = |pid: u32| cmds.list().unwrap().into_iter().find(|p| p.pid == pid);

        let mut held = cmds.cmd("sleep 30 # held").timeout(None).spawn().unwrap();
        let held_pid = held.pid().unwrap();
        let info = listed(held_pid).expect("the spawned command is listed");
        assert_eq!(info.cmd, "sleep 30 # held");
        assert!(
            info.cwd.as_deref().is_some_and(|c| c.starts_with('/')),
            "{info:?}"
        );
        assert!(info.started_at.is_some());
        assert!(cmds.kill(held_pid).unwrap());
        let out = held.wait().unwrap();
        assert_eq!(out.exit_code, -9);
        assert!(listed(held_pid).is_none());
        assert!(!cmds.kill(held_pid).unwrap(), "already gone");

        let dropped = cmds.cmd("sleep 30 # dropped").spawn().unwrap();
        let dropped_pid = dropped.pid().unwrap();
        drop(dropped);
        assert!(
            listed(dropped_pid).is_none(),
            "dropping kills a plain command"
        );

        let bg = cmds
            .cmd("sleep 30 # background")
            .background(true)
            .spawn()
            .unwrap();
        let bg_pid = bg.pid().unwrap();
        drop(bg);
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            listed(bg_pid).is_some(),
            "a background command outlives its handle"
        );
        assert_eq!(
            cmds.run("echo still works").unwrap().stdout,
            "still works\n"
        );
        assert!(cmds.kill(bg_pid).unwrap());
        assert!(gone_from_list(&sbx, bg_pid));

        // A background command that ended gives its kernel back for later commands.
        let short = cmds.cmd("sleep 0.2").background(true).spawn().unwrap();
        drop(short);
        std::thread::sleep(Duration::from_millis(500));
        let a = cmds.cmd("sleep 5").spawn().unwrap();
        let b = cmds.cmd("sleep 5").spawn().unwrap();
        let c = cmds.cmd("sleep 5").spawn().unwrap();
        for h in [a, b, c] {
            assert!(listed(h.pid().unwrap()).is_some());
        }
    });
}

/// Waits up to 5 s for `pid` to leave `commands().list()`.
fn gone_from_list(sbx: &Sandbox, pid: u32) -> bool {
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if !sbx.commands().list().unwrap().iter().any(|p| p.pid == pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// An unisolated sandbox runs on the host, but what its commands and code put in the temporary
/// directory (commands' output logs, `tempfile`) stays in the sandbox's own directory and goes
/// with it at close: before, every such sandbox left its command logs in the host's /tmp.
#[test]
fn an_unisolated_sandbox_keeps_its_temporary_files_to_itself() {
    deadline(|| {
        let sbx = local_tcp();
        let dir = sbx
            .as_local()
            .unwrap()
            .root()
            .parent()
            .unwrap()
            .to_path_buf();
        assert_eq!(sbx.commands().run("echo hi").unwrap().stdout, "hi\n");
        let made = sbx
            .run_code("import tempfile\nprint(tempfile.mkdtemp(prefix='mine-'), end='')")
            .unwrap()
            .logs
            .stdout
            .concat();
        let made = std::path::PathBuf::from(made);
        assert!(
            made.starts_with(&dir),
            "{} is outside {}",
            made.display(),
            dir.display()
        );
        let logs: Vec<String> = std::fs::read_dir(made.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("e2b-blocking-commands-"))
            .collect();
        assert_eq!(logs.len(), 1, "the command's log directory: {logs:?}");
        drop(sbx);
        assert!(!dir.exists(), "{} left behind", dir.display());
        assert!(
            !std::env::temp_dir().join(&logs[0]).exists(),
            "{} in the host's temporary directory",
            logs[0]
        );
    });
}
