//! Sandboxes come and go without leaving processes, threads or directories behind, and
//! tearing one down never hangs. It counts the threads of its process, so runs in one of its own.

use std::sync::Arc;
use std::time::Duration;

use crate::support::own_process::in_own_process;
use crate::support::{alive, deadline, descendants, local, thread_count, within};
use e2b_blocking::Error;

#[test]
fn sandboxes_leave_nothing_behind_and_drop_never_hangs() {
    in_own_process(|| {
        deadline(|| {
            // Warm the venv so thread counts are not disturbed by the first build.
            drop(local());
            let threads_before = thread_count();

            // Twenty sandboxes, four at a time: each thread makes, uses and drops one per turn.
            let made: Vec<(Vec<u32>, std::path::PathBuf)> = std::thread::scope(|scope| {
                let workers: Vec<_> = (0..4)
                    .map(|_| {
                        scope.spawn(|| {
                            (0..5)
                                .map(|_| {
                                    let sbx = local();
                                    assert_eq!(sbx.run_code("1 + 1").unwrap().text(), Some("2"));
                                    let local = sbx.as_local().unwrap();
                                    let pid = local.pid();
                                    let mut pids = vec![pid];
                                    pids.extend(descendants(pid));
                                    let dir = local.root().parent().unwrap().to_path_buf();
                                    drop(sbx);
                                    (pids, dir)
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    .flat_map(|w| w.join().unwrap())
                    .collect()
            });
            let pids: Vec<u32> = made.iter().flat_map(|(p, _)| p.iter().copied()).collect();
            let dirs: Vec<std::path::PathBuf> = made.into_iter().map(|(_, d)| d).collect();
            let survivors: Vec<u32> = pids.iter().copied().filter(|&p| alive(p)).collect();
            assert!(survivors.is_empty(), "processes left behind: {survivors:?}");
            for d in &dirs {
                assert!(!d.exists(), "{} left behind", d.display());
            }
            assert_eq!(thread_count(), threads_before, "threads left behind");

            // Kill from another thread while an execution is in flight: it ends at once.
            let sbx = Arc::new(local());
            let runner = {
                let sbx = sbx.clone();
                std::thread::spawn(move || sbx.code("import time\ntime.sleep(60)").run())
            };
            std::thread::sleep(Duration::from_millis(300));
            within(Duration::from_secs(10), {
                let sbx = sbx.clone();
                move || sbx.kill().unwrap()
            });
            let result = within(Duration::from_secs(5), move || runner.join().unwrap());
            assert!(matches!(result, Err(Error::Closed)), "{result:?}");
            drop(sbx);

            // Drop while the kernel is stuck in a cell that ignores interrupts.
            let sbx = local();
            let err = sbx
                .code(
                    "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)",
                )
                .timeout(Duration::from_millis(200))
                .run()
                .unwrap_err();
            assert!(err.is_timeout(), "{err:?}");
            let pid = sbx.as_local().unwrap().pid();
            let kernels = descendants(pid);
            within(Duration::from_secs(10), move || drop(sbx));
            assert!(!alive(pid));
            assert!(kernels.iter().all(|&k| !alive(k)));
        });
    });
}
