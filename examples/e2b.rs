//! Runs code in an E2B cloud sandbox: the same `Sandbox` API as the local default.
//!
//! `E2B_API_KEY=e2b_… cargo run --example e2b`. Without a key it explains and exits.
//! `E2B_DOMAIN`, `E2B_API_URL`, `E2B_SANDBOX_URL` and `E2B_DEBUG` are honoured.

use std::time::Duration;

use e2b_blocking::e2b::MetricsQuery;
use e2b_blocking::{E2bConfig, E2bOptions, Error, Report, Sandbox};

// `Report` prints a failed run's error as its message and causes (`Error::report`), not
// as the `Debug` form of `Error`.
fn main() -> Result<(), Report> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let config = E2bConfig::from_env();
    if std::env::var_os("E2B_API_KEY").is_none() && std::env::var_os("E2B_DEBUG").is_none() {
        eprintln!("set E2B_API_KEY (or E2B_DEBUG=true for a local E2B stack) to run this example");
        return Ok(());
    }
    let options = E2bOptions::default().lifetime(Duration::from_secs(300));
    let sbx = Sandbox::builder().e2b_with(&config, &options)?;
    // Templates from 0.4.7 on are reached through envd and the code-interpreter server (the
    // E2B plane); older ones through Jupyter on port 8888.
    println!(
        "sandbox {} is up, data plane {:?}",
        sbx.sandbox_id(),
        sbx.data_plane()
    );
    let exec = sbx
        .code("import platform\nprint(platform.platform())\n21 * 2")
        .on_stdout(|m| print!("{}", m.line))
        .run()?;
    println!("result: {}", exec.text().unwrap_or("?"));
    if let Some(e2b) = sbx.as_e2b() {
        e2b.set_lifetime(Duration::from_secs(120))?; // the sandbox's lifetime, from now
        // E2B samples resource use every few seconds; debug mode has no control plane to ask.
        match e2b.metrics(&MetricsQuery::new()) {
            Ok(samples) => {
                if let Some(m) = samples.last() {
                    println!(
                        "cpu {:.1} % of {} cores, memory {} of {} MiB",
                        m.cpu_used_pct,
                        m.cpu_count,
                        m.mem_used >> 20,
                        m.mem_total >> 20
                    );
                }
            }
            Err(Error::InvalidArgument(why)) => println!("no metrics: {why}"),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(sbx.close()?) // kills the sandbox
}
