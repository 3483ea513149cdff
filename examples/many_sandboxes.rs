//! A process that opens local sandboxes one after another (one per task, say), with a warm
//! spare: every start after the first takes a sandbox that came up in the background while the
//! previous task ran.
//!
//! `cargo run --example many_sandboxes`

use std::time::Instant;

use e2b_blocking::{LocalOptions, Report, Result, Sandbox};

// `Report` prints a failed run's error as its message and causes (`Error::report`), not
// as the `Debug` form of `Error`.
fn main() -> Result<(), Report> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let options = LocalOptions::new().warm_spare(true);
    for task in 0..3 {
        let started = Instant::now();
        let sbx = Sandbox::builder().local_with(options.clone())?;
        let exec = sbx
            .run_code(format!("sum(range({task} * 1000))"))?
            .check()?;
        println!(
            "task {task}: first result {} after {:?}",
            exec.text().unwrap_or("?"),
            started.elapsed()
        );
        // The task's own work; the next spare comes up meanwhile.
        let _ = sbx.run_code("import time; time.sleep(1)")?.check()?;
        sbx.close()?;
    }
    Ok(())
}
