//! `files().watch_dir()` and `commands().connect(pid)` against a real local jupyter_server:
//! events in order, typed errors, overflow, following a command from another handle, and
//! exactly-once stdin and watch events through a proxy that cuts connections at random.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{alive, deadline, init_logs, local, local_tcp, through_proxy};
use e2b_blocking::{Error, FsEvent, FsEventKind, ReconnectPolicy, Sandbox, WatchHandle};

fn ev(kind: FsEventKind, path: &str) -> (FsEventKind, String) {
    (kind, path.to_string())
}

/// Reads events until `last` arrives (bounded by the test deadline). Repeated writes to one
/// file count once: `fs::write` to an existing file truncates, then writes, and inotify merges
/// the two modifications only when the first was not read yet.
fn until(watch: &mut WatchHandle, last: (FsEventKind, &str)) -> Vec<(FsEventKind, String)> {
    let mut seen: Vec<(FsEventKind, String)> = Vec::new();
    for event in watch.by_ref() {
        let event = event.expect("watch event");
        let again = (event.kind, event.path);
        if again.0 == FsEventKind::Write && seen.last() == Some(&again) {
            continue;
        }
        seen.push(again);
        if seen
            .last()
            .is_some_and(|(k, p)| *k == last.0 && p == last.1)
        {
            return seen;
        }
    }
    panic!("the watch ended before {last:?}: {seen:?}");
}

fn root(sbx: &Sandbox) -> std::path::PathBuf {
    sbx.as_local()
        .expect("a local sandbox")
        .root()
        .to_path_buf()
}

#[test]
fn watch_reports_each_change_once_in_order() {
    deadline(|| {
        let sbx = local();
        let dir = root(&sbx).join("w");
        fs::create_dir_all(dir.join("sub")).unwrap();

        let mut flat = sbx.files().watch_dir("w", false).unwrap();
        fs::write(dir.join("a.txt"), "x").unwrap();
        fs::rename(dir.join("a.txt"), dir.join("b.txt")).unwrap();
        let mut perms = fs::metadata(dir.join("b.txt")).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
        fs::set_permissions(dir.join("b.txt"), perms).unwrap();
        fs::remove_file(dir.join("b.txt")).unwrap();
        // Not watched without `recursive`.
        fs::write(dir.join("sub/inner.txt"), "y").unwrap();
        fs::File::create(dir.join("end")).unwrap();
        use FsEventKind::*;
        assert_eq!(
            until(&mut flat, (Create, "end")),
            [
                ev(Create, "a.txt"),
                ev(Write, "a.txt"),
                ev(Rename, "a.txt"),
                ev(Create, "b.txt"),
                ev(Chmod, "b.txt"),
                ev(Remove, "b.txt"),
                ev(Create, "end"),
            ]
        );
        flat.stop().unwrap();
        assert!(flat.by_ref().all(|e| e.is_ok()), "stop ends the iteration");
        assert!(flat.is_finished());

        let mut deep = sbx.files().watch_dir("w", true).unwrap();
        fs::write(dir.join("sub/inner.txt"), "z").unwrap();
        // A file made in a new directory before its watch is in place is still reported,
        // once (by the scan of the new directory, or by inotify, never both).
        fs::create_dir(dir.join("new")).unwrap();
        fs::File::create(dir.join("new/f")).unwrap();
        assert_eq!(
            until(&mut deep, (Create, "new/f")),
            [
                ev(Write, "sub/inner.txt"),
                ev(Create, "new"),
                ev(Create, "new/f"),
            ]
        );
        fs::write(dir.join("new/f"), "1").unwrap();
        fs::remove_file(dir.join("new/f")).unwrap();
        fs::remove_dir(dir.join("new")).unwrap();
        assert_eq!(
            until(&mut deep, (Remove, "new")),
            [ev(Write, "new/f"), ev(Remove, "new/f"), ev(Remove, "new")]
        );
        assert_eq!(deep.next_timeout(Duration::from_millis(200)).unwrap(), None);
        assert!(!deep.is_finished());

        // Removing the watched directory itself ends the watch.
        fs::remove_dir_all(&dir).unwrap();
        let rest: Vec<FsEvent> = deep.by_ref().map(|e| e.unwrap()).collect();
        assert!(
            rest.iter().all(|e| e.kind == Remove),
            "only removals after the directory went: {rest:?}"
        );
        assert!(deep.is_finished());
        // The watcher's kernel went back to the pool: commands still run.
        assert_eq!(sbx.commands().run("echo ok").unwrap().stdout, "ok\n");
    });
}

#[test]
fn watch_errors_are_typed() {
    deadline(|| {
        let sbx = local();
        sbx.files().write("file.txt", "x").unwrap();
        assert!(matches!(
            sbx.files().watch_dir("missing", false),
            Err(Error::FileNotFound { path }) if path == "missing"
        ));
        assert!(matches!(
            sbx.files().watch_dir("file.txt", true),
            Err(Error::NotADirectory { path }) if path == "file.txt"
        ));
        assert!(matches!(
            sbx.files().watch_dir("../up", false),
            Err(Error::FileNotFound { path }) if path == "/home/up"
        ));
    });
}

/// A reader that falls behind gets the events the queue held, then one `Overflow` counting
/// what was dropped; nothing is dropped silently.
#[test]
fn a_full_queue_gives_a_typed_overflow_event() {
    deadline(|| {
        let sbx = local();
        let dir = root(&sbx).join("o");
        fs::create_dir_all(&dir).unwrap();
        let mut watch = sbx.files().watch("o").capacity(4).start().unwrap();
        for i in 0..14 {
            fs::File::create(dir.join(format!("f{i:02}"))).unwrap();
        }
        while !(watch.queued() == 4 && watch.dropped() == 10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut seen = Vec::new();
        while seen.len() < 5 {
            seen.push(watch.next().unwrap().unwrap());
        }
        let names: Vec<&str> = seen[..4].iter().map(|e| e.path.as_str()).collect();
        assert_eq!(names, ["f00", "f01", "f02", "f03"]);
        assert_eq!(seen[4].kind, FsEventKind::Overflow);
        assert_eq!(seen[4].dropped, Some(10));
        // Room again: later events come through.
        fs::File::create(dir.join("later")).unwrap();
        let next = watch.next().unwrap().unwrap();
        assert_eq!(
            (next.kind, next.path.as_str()),
            (FsEventKind::Create, "later")
        );
    });
}

/// A second handle from another thread sees the command's whole output (from the start, then
/// live) and its exit code; so does one made after a background command's handle dropped.
#[test]
fn connect_follows_a_running_command() {
    deadline(|| {
        let sbx = local();
        let mut job = sbx
            .commands()
            .spawn("for i in 1 2 3 4 5; do echo out $i; sleep 0.1; done; echo bad >&2; exit 3")
            .unwrap();
        let pid = job.pid().unwrap();
        let other = sbx.clone();
        let follower = std::thread::spawn(move || {
            let mut handle = other.commands().connect(pid).unwrap();
            assert_eq!(handle.pid(), Some(pid));
            handle.wait().unwrap()
        });
        let own = job.wait().unwrap();
        let seen = follower.join().unwrap();
        let want = "out 1\nout 2\nout 3\nout 4\nout 5\n";
        assert_eq!((own.stdout.as_str(), own.exit_code), (want, 3));
        assert_eq!(seen, own);
        assert_eq!(seen.stderr, "bad\n");

        let bg = sbx
            .commands()
            .cmd("echo early; read line; echo \"got $line\"; echo late")
            .stdin(true)
            .background(true)
            .spawn()
            .unwrap();
        let pid = bg.pid().unwrap();
        drop(bg);
        let mut handle = sbx.commands().connect(pid).unwrap();
        let first = handle.output().next().unwrap();
        assert_eq!(first.text(), "early\n");
        // A connected handle writes to the stdin of a command started with one.
        handle.send_stdin("hi\n").unwrap();
        let out = handle.wait().unwrap();
        assert_eq!(
            (out.stdout.as_str(), out.exit_code),
            ("early\ngot hi\nlate\n", 0)
        );

        // Dropping a connected handle leaves the command running; kill() on one kills it.
        let job = sbx
            .commands()
            .cmd("sleep 30")
            .timeout(None)
            .spawn()
            .unwrap();
        let pid = job.pid().unwrap();
        drop(sbx.commands().connect(pid).unwrap());
        let listed = |pid| sbx.commands().list().unwrap().iter().any(|p| p.pid == pid);
        assert!(listed(pid));
        let mut again = sbx.commands().connect(pid).unwrap();
        assert!(again.kill().unwrap());
        assert_eq!(again.wait().unwrap().exit_code, -9);
        drop(job);

        assert!(matches!(
            sbx.commands().connect(999_999_999),
            Err(Error::ProcessNotFound { pid: 999_999_999 })
        ));
    });
}

/// On a Jupyter server the sandbox does not own, closing it shuts its kernels down, and the
/// commands they started die with them unless started with `background(true)`.
#[test]
fn closing_a_jupyter_sandbox_kills_its_non_background_commands() {
    deadline(|| {
        let owner = local_tcp();
        let (_proxy, sbx) = through_proxy(&owner, Sandbox::builder());
        let plain = sbx
            .commands()
            .cmd("sleep 60")
            .timeout(None)
            .spawn()
            .unwrap();
        let bg = sbx
            .commands()
            .cmd("sleep 60")
            .timeout(None)
            .background(true)
            .spawn()
            .unwrap();
        let (plain_pid, bg_pid) = (plain.pid().unwrap(), bg.pid().unwrap());
        drop(bg);
        // Closing first: dropping the handle would kill the command itself.
        sbx.kill().unwrap();
        let until = Instant::now() + Duration::from_secs(10);
        while alive(plain_pid) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(plain_pid), "the plain command outlived the sandbox");
        assert!(alive(bg_pid), "the background command is left running");
        assert!(owner.commands().kill(bg_pid).unwrap());
        drop(plain);
    });
}

fn proxied() -> (Sandbox, crate::support::fault_proxy::FaultProxy, Sandbox) {
    init_logs();
    let owner = local_tcp();
    let (proxy, sbx) = through_proxy(
        &owner,
        Sandbox::builder()
            .reconnect(ReconnectPolicy::default().max_elapsed(Duration::from_secs(30))),
    );
    (owner, proxy, sbx)
}

/// Through a proxy cutting every connection after 100–500 ms, numbered lines sent to `cat`
/// come back each exactly once and in order, read by a connected handle on another thread.
#[test]
fn stdin_lines_arrive_exactly_once_under_cuts() {
    deadline(|| {
        let (_owner, proxy, sbx) = proxied();
        let mut cat = sbx
            .commands()
            .cmd("cat")
            .stdin(true)
            .timeout(None)
            .spawn()
            .unwrap();
        let pid = cat.pid().unwrap();
        // Kernels for the follower and then the writer start before the cuts (the writer's
        // goes back to the pool after each write and is reused): a kernel started under cuts
        // this dense may not finish its set-up within the request timeout.
        let mut follower = sbx.commands().connect(pid).unwrap();
        cat.send_stdin("line 0\n").unwrap();
        let reader = std::thread::spawn(move || follower.wait());
        let chaos = proxy.start_random_cuts(
            Duration::from_millis(100),
            Duration::from_millis(500),
            0x5eed,
        );
        let n = 80;
        for i in 1..n {
            cat.send_stdin(format!("line {i}\n"))
                .unwrap_or_else(|e| panic!("line {i}: {e:?}"));
            std::thread::sleep(Duration::from_millis(15));
        }
        cat.close_stdin().unwrap();
        let own = cat.wait().unwrap();
        let followed = reader.join().unwrap().unwrap();
        drop(chaos);
        let want: String = (0..n).map(|i| format!("line {i}\n")).collect();
        assert_eq!(own.stdout, want);
        assert_eq!(followed.stdout, want);
        assert_eq!((own.exit_code, followed.exit_code), (0, 0));
        println!("{} cuts", proxy.cuts());
        assert!(proxy.cuts() >= 3, "only {} cuts", proxy.cuts());
    });
}

/// Through a proxy cutting every connection after 100–500 ms, N files created during the
/// cuts give exactly N Create events, each once, in order.
#[test]
fn watch_events_arrive_exactly_once_under_cuts() {
    deadline(|| {
        let (owner, proxy, sbx) = proxied();
        let dir = root(&owner).join("cut");
        fs::create_dir_all(&dir).unwrap();
        let mut watch = sbx.files().watch_dir("cut", false).unwrap();
        let chaos = proxy.start_random_cuts(
            Duration::from_millis(100),
            Duration::from_millis(500),
            0xface,
        );
        let n = 300;
        let maker = {
            let dir = dir.clone();
            std::thread::spawn(move || make_files(&dir, n))
        };
        let mut creates = Vec::new();
        let mut other = Vec::new();
        while creates.len() < n {
            let e = watch.next().expect("the watch goes on").expect("no error");
            match e.kind {
                FsEventKind::Create => creates.push(e.path),
                _ => other.push(e),
            }
        }
        maker.join().unwrap();
        drop(chaos);
        let want: Vec<String> = (0..n).map(|i| format!("f{i:04}")).collect();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for c in &creates {
            *counts.entry(c).or_default() += 1;
        }
        assert!(counts.values().all(|&c| c == 1), "repeated: {counts:?}");
        assert_eq!(creates, want);
        assert!(other.is_empty(), "{other:?}");
        // Nothing more: no event came twice after the last one either.
        assert_eq!(
            watch.next_timeout(Duration::from_millis(300)).unwrap(),
            None
        );
        println!("{} cuts", proxy.cuts());
        assert!(proxy.cuts() >= 3, "only {} cuts", proxy.cuts());
        watch.stop().unwrap();
    });
}

fn make_files(dir: &Path, n: usize) {
    for i in 0..n {
        fs::File::create(dir.join(format!("f{i:04}"))).unwrap();
        std::thread::sleep(Duration::from_millis(15));
    }
}

/// The parent of a process, from /proc.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A kernel that dies without a word (SIGKILL: no interrupt, no shutdown) takes its
/// non-background command with it: the runner's guard sees its pipe close.
#[test]
fn a_command_dies_with_its_kernel() {
    deadline(|| {
        let sbx = local_tcp();
        let job = sbx
            .commands()
            .cmd("sleep 60")
            .timeout(None)
            .spawn()
            .unwrap();
        let pid = job.pid().unwrap();
        let kernel = parent_of(pid).expect("the command's parent, its kernel");
        let killed = std::process::Command::new("kill")
            .args(["-9", &kernel.to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let until = Instant::now() + Duration::from_secs(10);
        while alive(pid) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(pid), "the command outlived its kernel");
        drop(job);
    });
}
