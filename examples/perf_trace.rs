//! Investigation aid: three run_code("1") with RUST_LOG=e2b_blocking=trace timestamps.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::builder().format_timestamp_micros().init();
    let quiet = std::env::var("N").is_ok();
    let url = std::env::var("E2B_BENCH_URL")?;
    let token = std::env::var("E2B_BENCH_TOKEN")?;
    let sbx = e2b_blocking::Sandbox::jupyter(&url, token.as_str())?;
    for _ in 0..20 {
        sbx.run_code("1")?;
    }
    for _ in 0..std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
    {
        if !quiet {
            log::info!("---- run_code start");
        }
        let t = std::time::Instant::now();
        sbx.run_code("1")?;
        if !quiet {
            log::info!("---- run_code done in {:?}", t.elapsed());
        }
    }
    Ok(())
}
