//! A dead server or kernel ends in-flight calls at once with a precise, typed error.

use std::sync::mpsc;
use std::time::Duration;

use crate::support::{alive, deadline, descendants, local};
use e2b_blocking::{Error, KernelEvent};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn sigkill(pid: u32) {
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("kill");
}

fn kernel_pids(server: u32) -> Vec<u32> {
    descendants(server)
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.contains("ipykernel_launcher"))
        })
        .collect()
}

#[test]
fn killing_the_server_mid_execution_is_sandbox_not_found_within_a_second() {
    deadline(|| {
        let sbx = local();
        let pid = sbx.as_local().unwrap().pid();
        let kernels = kernel_pids(pid);
        assert!(!kernels.is_empty());
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                let r = sbx
                    .code("import time\nprint('started', flush=True)\ntime.sleep(60)")
                    .on_stdout(|_| {
                        let _ = tx.send(None);
                    })
                    .run();
                let _ = tx.send(Some(r));
            });
            assert!(matches!(rx.recv_timeout(Duration::from_secs(30)), Ok(None)));
            sigkill(pid);
            let result = rx
                .recv_timeout(Duration::from_secs(1))
                .expect("the call ends within a second of the kill")
                .expect("a result");
            match result {
                Err(Error::SandboxNotFound { sandbox_id }) => {
                    assert_eq!(sandbox_id, sbx.sandbox_id())
                }
                other => panic!("expected SandboxNotFound, got {other:?}"),
            }
        });
        // Later calls fail the same way at once.
        assert!(matches!(
            sbx.run_code("1"),
            Err(Error::SandboxNotFound { .. })
        ));
        drop(sbx);
        // Orphaned kernels notice their server is gone and exit by themselves.
        for _ in 0..100 {
            if kernels.iter().all(|&k| !alive(k)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            kernels.iter().all(|&k| !alive(k)),
            "kernels outlived the server"
        );
    });
}

#[test]
fn killing_the_kernel_is_a_kernel_error_and_the_next_call_works() {
    deadline(|| {
        let sbx = local();
        let _ = sbx.run_code("state = 1").unwrap();
        let pid = sbx.as_local().unwrap().pid();
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                let r = sbx
                    .code("import time\nprint('started', flush=True)\ntime.sleep(60)")
                    .on_stdout(|_| {
                        let _ = tx.send(None);
                    })
                    .run();
                let _ = tx.send(Some(r));
            });
            assert!(matches!(rx.recv_timeout(Duration::from_secs(30)), Ok(None)));
            for k in kernel_pids(pid) {
                sigkill(k);
            }
            // The server polls kernel liveness (every 0.5 s on the local sandbox).
            let result = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("the call ends promptly")
                .expect("a result");
            assert!(
                matches!(
                    result,
                    Err(Error::KernelDisrupted {
                        event: KernelEvent::Restarting,
                        ..
                    })
                ),
                "{result:?}"
            );
        });
        // The server restarted the kernel: state is gone, calls work.
        let exec = sbx.run_code("'state' in globals()").unwrap();
        assert_eq!(exec.text(), Some("False"));
        let exec = sbx
            .code("print('again')")
            .timeout(Duration::from_secs(30))
            .run()
            .unwrap();
        assert_eq!(exec.logs.stdout.concat(), "again\n");
    });
}

/// `Sandbox` is a cheap handle: clones used from 8 threads and dropped in any order keep the
/// sandbox alive until the last one goes, and the server dies with it.
#[test]
fn the_sandbox_lives_until_its_last_clone_is_dropped() {
    deadline(|| {
        let sbx = local();
        let pid = sbx.as_local().unwrap().pid();
        let workers: Vec<_> = (0..8)
            .map(|i| {
                let sbx = sbx.clone();
                let (release, gate) = std::sync::mpsc::channel::<()>();
                let worker = std::thread::spawn(move || {
                    let exec = sbx.run_code(format!("{i} * 2")).unwrap();
                    assert_eq!(exec.text(), Some((i * 2).to_string().as_str()));
                    // Each clone is dropped when the test lets its thread go.
                    let _ = gate.recv();
                    drop(sbx);
                });
                (release, worker)
            })
            .collect();
        drop(sbx);
        // Dropped in an order unrelated to creation: odd threads first, then even ones.
        let (odd, even): (Vec<_>, Vec<_>) = workers
            .into_iter()
            .enumerate()
            .partition(|(i, _)| i % 2 == 1);
        for (_, (release, worker)) in odd.into_iter().chain(even) {
            assert!(alive(pid), "the server died before its last handle");
            release.send(()).unwrap();
            worker.join().unwrap();
        }
        // The last clone's drop killed the server.
        assert!(!alive(pid), "the server outlived every handle");
    });
}

/// `is_running` is true while the sandbox lives and false, not an error, once it is gone:
/// killed from another clone, or its server died.
#[test]
fn is_running_turns_false_when_the_sandbox_is_gone() {
    deadline(|| {
        let until_false = |sbx: &e2b_blocking::Sandbox| {
            let until = std::time::Instant::now() + Duration::from_secs(10);
            while sbx.is_running() {
                assert!(std::time::Instant::now() < until, "still running");
                std::thread::sleep(Duration::from_millis(50));
            }
        };

        let sbx = local();
        assert!(sbx.is_running());
        let clone = sbx.clone();
        clone.kill().unwrap();
        assert!(!sbx.is_running());

        let sbx = crate::support::local_tcp();
        // A Jupyter-server sandbox on the same server asks `GET /api`.
        let remote = e2b_blocking::Sandbox::jupyter(
            sbx.jupyter_url(),
            crate::support::token_of(&sbx).as_str(),
        )
        .unwrap();
        assert!(sbx.is_running());
        assert!(remote.is_running());
        sigkill(sbx.as_local().unwrap().pid());
        until_false(&sbx);
        until_false(&remote);
    });
}
