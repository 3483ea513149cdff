//! Makes a matplotlib chart in a local sandbox and saves the PNG here.
//!
//! `cargo run --example chart [out.png]`. The local sandbox installs matplotlib into its
//! managed venv the first time (a minute at most).

use e2b_blocking::{LocalOptions, Report, Sandbox};

// `Report` prints a failed run's error as its message and causes (`Error::report`), not
// as the `Debug` form of `Error`.
fn main() -> Result<(), Report> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "chart.png".into());

    let sbx = Sandbox::builder().local_with(LocalOptions::new().packages(["matplotlib"]))?;
    let exec = sbx.run_code(include_str!("chart.py"))?;
    if let Some(err) = &exec.error {
        eprintln!("the chart code raised {}: {}", err.name, err.value);
        std::process::exit(1);
    }
    let Some(chart) = exec.results.iter().find(|r| r.png.is_some()) else {
        eprintln!("no image came back: {:?}", exec.results);
        std::process::exit(1);
    };
    chart.save_image(&out)?;
    println!("saved {out} (formats: {:?})", chart.formats());
    if let Some(data) = &chart.chart {
        println!("chart data: {}", data.raw());
    }
    Ok(())
}
