//! Executions streaming output while a proxy cuts the connection every 100–500 ms at random
//! points (half of them mid-chunk): every execution completes, every line arrives exactly once
//! and in order, and no call exceeds its deadline.

mod support;

use std::time::Duration;

use e2b_blocking::{ContextOptions, Continuity, ReconnectPolicy, Sandbox};
use support::{init_logs, local, through_proxy, within};

const CONTEXTS: usize = 4;
const PER_CONTEXT: usize = 50;
const LINES: usize = 20;

#[test]
fn soak_200_streaming_executions_under_random_cuts() {
    within(Duration::from_secs(900), || {
        init_logs();
        let owner = local();
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
            proxy.start_random_cuts(Duration::from_millis(100), Duration::from_millis(500), seed);
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
                                "import time\nfor i in range({LINES}):\n    print(f'{tag} {{i}}', flush=True)\n    time.sleep(0.05)"
                            );
                            let mut streamed = String::new();
                            let exec = sbx
                                .run(code)
                                .context(ctx)
                                .timeout(Duration::from_secs(60))
                                .on_stdout(|m| streamed.push_str(&m.line))
                                .send()
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
