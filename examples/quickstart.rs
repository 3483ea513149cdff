//! Starts a local sandbox, computes a value, streams stdout and shows a rich result.
//!
//! `cargo run --example quickstart` (the first run builds the local Python environment once).
//! Set `RUST_LOG=e2b_blocking=debug` to watch connections come and go.

use std::time::{Duration, Instant};

use e2b_blocking::{Report, Sandbox};

// `Report` prints a failed run's error as its message and causes (`Error::report`), not
// as the `Debug` form of `Error`.
fn main() -> Result<(), Report> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();

    let started = Instant::now();
    let sbx = Sandbox::local()?;
    println!(
        "sandbox {} ready in {:?}",
        sbx.sandbox_id(),
        started.elapsed()
    );

    // State persists across calls.
    let _ = sbx.run_code("x = 40")?;
    let exec = sbx.run_code("x + 2")?;
    println!("x + 2 = {}", exec.text().unwrap_or("?"));

    // Output streams in as it is printed.
    let exec = sbx
        .code("import time\nfor i in range(3):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.2)")
        .on_stdout(|m| print!("  streamed: {}", m.line))
        .timeout(Duration::from_secs(30))
        .run()?;
    println!("{} stdout chunks", exec.logs.stdout.len());

    // Rich results carry every MIME type the kernel sent.
    let exec = sbx.run_code(
        "from IPython.display import HTML, display\ndisplay(HTML('<b>bold</b>'))\n{'answer': 42}",
    )?;
    for r in &exec.results {
        println!(
            "result (main: {}): formats {:?}, html {:?}, text {:?}",
            r.is_main_result,
            r.formats(),
            r.html,
            r.text
        );
    }

    // An exception is data, not an Err.
    let exec = sbx.run_code("1 / 0")?;
    if let Some(err) = &exec.error {
        println!("the cell raised {}: {}", err.name, err.value);
    }

    sbx.close()?;
    Ok(())
}
