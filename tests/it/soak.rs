//! Executions streaming output while a proxy cuts the connection every 50–250 ms at random
//! points (half of them mid-chunk): every execution completes, every line arrives exactly once
//! and in order, and no call exceeds its deadline.

use std::time::Duration;

use crate::support::{init_logs, local_tcp, through_proxy, within};
use e2b_blocking::{ContextOptions, Continuity, Error, ReconnectPolicy, Sandbox};

const CONTEXTS: usize = 4;
const PER_CONTEXT: usize = 50;
const LINES: usize = 20;

#[test]
fn soak_200_streaming_executions_under_random_cuts() {
    within(Duration::from_secs(900), || {
        init_logs();
        let owner = local_tcp();
        let (proxy, sbx) = through_proxy(
            &owner,
            Sandbox::builder()
                .reconnect(ReconnectPolicy::default().max_elapsed(Duration::from_secs(30))),
        );
        let contexts: Vec<_> = (0..CONTEXTS)
            .map(|_| sbx.create_context(ContextOptions::new()).unwrap())
            .collect();

        let seed = std::env::var("E2B_SOAK_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5eed_u64);
        println!("soak seed {seed}");
        let chaos =
            proxy.start_random_cuts(Duration::from_millis(50), Duration::from_millis(250), seed);
        let recovered = std::thread::scope(|s| {
            let workers: Vec<_> = contexts
                .iter()
                .enumerate()
                .map(|(c, ctx)| {
                    let sbx = &sbx;
                    s.spawn(move || {
                        let mut recovered = 0;
                        for n in 0..PER_CONTEXT {
                            let tag = format!("c{c}e{n}");
                            let code = format!(
                                "import time\nfor i in range({LINES}):\n    print(f'{tag} {{i}}', flush=True)\n    time.sleep(0.02)"
                            );
                            let mut streamed = String::new();
                            let exec = sbx
                                .code(code)
                                .context(ctx)
                                .timeout(Duration::from_secs(60))
                                .on_stdout(|m| streamed.push_str(&m.line))
                                .run()
                                .unwrap_or_else(|e| panic!("{tag}: {e:?}"));
                            let expected: String =
                                (0..LINES).map(|i| format!("{tag} {i}\n")).collect();
                            assert_eq!(exec.logs.stdout.concat(), expected, "{tag}");
                            assert_eq!(streamed, expected, "{tag}: callbacks");
                            assert!(exec.error.is_none(), "{tag}: {:?}", exec.error);
                            assert_ne!(exec.continuity, Continuity::Unverified);
                            if exec.continuity == Continuity::Recovered {
                                recovered += 1;
                            }
                        }
                        recovered
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap())
                .sum::<usize>()
        });
        drop(chaos);
        println!(
            "{} executions, {} cuts, {} connections, {recovered} executions recovered lost output",
            CONTEXTS * PER_CONTEXT,
            proxy.cuts(),
            proxy.connections_accepted()
        );
        assert!(proxy.cuts() >= 100, "only {} cuts", proxy.cuts());
    });
}

/// Resident memory of a process, in bytes (0 once it is gone).
fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// What the server may grow by while it relays a large output under cuts: the output itself
/// buffered once while the client is away, a replay chunk, and the interpreter's own churn.
/// Before chunked, single-outstanding replays it grew by about 200 MB/s without bound.
const SERVER_GROWTH_BOUND: u64 = 512 << 20;

/// 16 MB and 64 MB cells while every connection is cut after 200–600 ms: each comes back exact
/// or as `OutputLost` with what did arrive, within its deadline, and the jupyter_server's
/// memory stays bounded.
#[test]
fn large_output_under_random_cuts_is_exact_or_lost_and_server_memory_stays_bounded() {
    within(Duration::from_secs(600), || {
        init_logs();
        let owner = local_tcp();
        let server = owner.as_local().map(|l| l.pid()).expect("a local server");
        let (proxy, sbx) = through_proxy(
            &owner,
            Sandbox::builder()
                .reconnect(ReconnectPolicy::default().max_elapsed(Duration::from_secs(30))),
        );
        let _ = sbx.run_code("1").unwrap();
        let baseline = rss(server);
        let done = std::sync::atomic::AtomicBool::new(false);
        let peak = std::thread::scope(|s| {
            let sampler = s.spawn(|| {
                let mut peak = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    peak = peak.max(rss(server));
                    std::thread::sleep(Duration::from_millis(20));
                }
                peak
            });
            // Stops the sampler however the cells end, a failed assertion included: the scope
            // waits for it.
            struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
            impl Drop for Stop<'_> {
                fn drop(&mut self) {
                    self.0.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            let stop = Stop(&done);
            let chaos = proxy.start_random_cuts(
                Duration::from_millis(200),
                Duration::from_millis(600),
                0x1a7e,
            );
            for mb in [16usize, 16, 16, 64, 64] {
                // 1 KiB numbered lines, so order and duplicates show.
                let code = format!(
                    "import sys\nfor i in range({}):\n    sys.stdout.write(f'{{i:08d}}' + 'x' * 1015 + '\\n')",
                    mb * 1024
                );
                let line = |i: usize| format!("{i:08}{}\n", "x".repeat(1015));
                let started = std::time::Instant::now();
                // Whole: the test compares every byte (a result keeps 16 MiB by default).
                let outcome = sbx
                    .code(code)
                    .timeout(Duration::from_secs(240))
                    .max_output(usize::MAX)
                    .run();
                let took = started.elapsed();
                match outcome {
                    Ok(exec) => {
                        let got = exec.logs.stdout.concat();
                        let exact = got.len() == mb << 20
                            && got
                                .split_inclusive('\n')
                                .enumerate()
                                .all(|(i, l)| l == line(i));
                        assert!(exact, "{mb} MB: output differs ({} bytes)", got.len());
                        println!("{mb} MB: exact in {took:?} ({:?})", exec.continuity);
                    }
                    Err(Error::OutputLost { missing, partial }) => {
                        // What arrived is the output in order, with holes where it was lost:
                        // each chunk sits at a later place of the expected output than the one
                        // before (found through the number of its first whole line).
                        let expected: String = (0..mb * 1024).map(line).collect();
                        let mut at = 0;
                        for chunk in &partial.logs.stdout {
                            let Some(nl) = chunk.find('\n') else { continue };
                            let Some(n) = chunk
                                .get(nl + 1..nl + 9)
                                .and_then(|d| d.parse::<usize>().ok())
                            else {
                                continue;
                            };
                            let start = (n * 1024)
                                .checked_sub(nl + 1)
                                .expect("a chunk before the output");
                            assert!(start >= at, "{mb} MB: a chunk arrived out of order");
                            assert_eq!(
                                expected.get(start..start + chunk.len()),
                                Some(chunk.as_str()),
                                "{mb} MB: a chunk differs from the output"
                            );
                            at = start + chunk.len();
                        }
                        println!(
                            "{mb} MB: OutputLost ({missing:?} missing) after {took:?}, {} bytes arrived",
                            partial.logs.stdout.iter().map(String::len).sum::<usize>()
                        );
                    }
                    Err(e) => panic!("{mb} MB: {e:?}"),
                }
            }
            drop(chaos);
            drop(stop);
            sampler.join().unwrap()
        });
        let growth = peak.saturating_sub(baseline);
        println!(
            "server RSS {} MiB before, peak {} MiB (+{} MiB); {} cuts",
            baseline >> 20,
            peak >> 20,
            growth >> 20,
            proxy.cuts()
        );
        assert!(
            growth < SERVER_GROWTH_BOUND,
            "server grew by {growth} bytes"
        );
        assert_eq!(sbx.run_code("6 * 7").unwrap().text(), Some("42"));
    });
}

/// Per-execution env vars under 100–500 ms cuts: set-up, cell and restore travel back to back
/// and each is recovered like any execution, so every cell sees exactly its own variable and
/// none outlives its cell.
#[test]
fn per_execution_env_vars_under_random_cuts_never_leak() {
    within(Duration::from_secs(600), || {
        init_logs();
        let owner = local_tcp();
        let (proxy, sbx) = through_proxy(
            &owner,
            Sandbox::builder()
                .reconnect(ReconnectPolicy::default().max_elapsed(Duration::from_secs(30))),
        );
        let chaos =
            proxy.start_random_cuts(Duration::from_millis(100), Duration::from_millis(500), 0xe4);
        let code = "import os, time\ntime.sleep(0.05)\nprint(sorted(k for k in os.environ if k.startswith('E2B_T_')))";
        for i in 0..100 {
            let exec = sbx
                .code(code)
                .envs([(format!("E2B_T_{i}"), i.to_string())])
                .timeout(Duration::from_secs(60))
                .run()
                .unwrap_or_else(|e| panic!("cell {i}: {e:?}"));
            assert_eq!(
                exec.logs.stdout.concat(),
                format!("['E2B_T_{i}']\n"),
                "cell {i}: another cell's variable is still set, or its own is missing"
            );
        }
        drop(chaos);
        let exec = sbx.run_code(code).unwrap();
        assert_eq!(exec.logs.stdout.concat(), "[]\n");
        println!("100 cells with env vars, {} cuts", proxy.cuts());
        assert!(proxy.cuts() > 0);
    });
}
