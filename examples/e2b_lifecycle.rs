//! An E2B sandbox's life cycle: pause and resume with the kernel's state kept, a snapshot and
//! a sandbox started from it, a fork, network rules, a signed download URL, and listing.
//!
//! `E2B_API_KEY=e2b_… cargo run --example e2b_lifecycle`. Without a key it explains and exits.

use std::time::Duration;

use e2b_blocking::e2b::{
    ALL_TRAFFIC, ConnectOptions, E2bClient, FileUrlOptions, ForkOptions, Lifecycle, ListQuery,
    NetworkOptions, NetworkUpdate, OnTimeout, PauseMode, PauseOptions, SnapshotOptions,
};
use e2b_blocking::{E2bConfig, E2bOptions, Report, Sandbox};

// `Report` prints a failed run's error as its message and causes (`Error::report`), not
// as the `Debug` form of `Error`.
fn main() -> Result<(), Report> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if std::env::var_os("E2B_API_KEY").is_none() {
        eprintln!("set E2B_API_KEY to run this example against E2B");
        return Ok(());
    }
    let config = E2bConfig::from_env();
    let options = E2bOptions::default()
        .metadata([("example", "lifecycle")])
        // Paused, not killed, when its lifetime ends; traffic wakes it up again.
        .lifecycle(
            Lifecycle::new()
                .on_timeout(OnTimeout::Pause)
                .pause_mode(PauseMode::Full)
                .auto_resume(true),
        )
        .network(
            NetworkOptions::new()
                .allow_out(["pypi.org"])
                .deny_out([ALL_TRAFFIC]),
        );
    let sbx = Sandbox::builder().e2b_with(&config, &options)?;
    let e2b = sbx.as_e2b().expect("an E2B sandbox");
    let _set = sbx.run_code("counter = 41")?.check()?;

    // Pause: memory and kernel state are kept; the handle fails fast while paused.
    println!("paused now: {}", e2b.pause(&PauseOptions::new())?);
    match e2b.ensure_running() {
        Ok(()) => println!("resumed on use (auto-resume)"),
        Err(e) => println!("while paused: {e}"),
    }
    e2b.resume(&ConnectOptions::new().lifetime(Duration::from_secs(300)))?;
    println!("after resume: {:?}", sbx.run_code("counter + 1")?.text());

    e2b.update_network(&NetworkUpdate::new().allow_internet_access(true))?;
    sbx.files().write("/home/user/report.txt", "ready\n")?;
    let url = e2b.download_url(
        "/home/user/report.txt",
        &FileUrlOptions::new().expires_in(Duration::from_secs(600)),
    )?;
    println!("signed URL for 10 minutes: {} chars", url.len());

    // A snapshot outlives the sandbox; new sandboxes start from it.
    let snapshot = e2b.create_snapshot(&SnapshotOptions::new().name("lifecycle-example"))?;
    println!("snapshot {}", snapshot.snapshot_id);
    let from_snapshot = Sandbox::builder().e2b_with(
        &config,
        &E2bOptions::default().template(&snapshot.snapshot_id),
    )?;
    println!("started from it: {}", from_snapshot.sandbox_id());

    // Two forks from a checkpoint of the running sandbox, kernel state included.
    for fork in
        Sandbox::builder().e2b_fork(&config, sbx.sandbox_id(), &ForkOptions::new().count(2))?
    {
        match fork {
            Ok(f) => println!(
                "fork {}: {:?}",
                f.sandbox_id(),
                f.run_code("counter")?.text()
            ),
            Err(e) => println!("a fork did not start: {e}"),
        }
    }

    let client = E2bClient::new(&config)?;
    for info in client.list_paged(&ListQuery::new().metadata([("example", "lifecycle")])) {
        let info = info?;
        println!("{} is {}", info.sandbox_id, info.state.as_str());
    }
    client.delete_snapshot(&snapshot.snapshot_id)?;
    from_snapshot.close()?;
    Ok(sbx.close()?)
}
