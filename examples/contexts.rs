//! Several contexts in one sandbox: separate state, their own working directory and env vars,
//! restart and removal.
//!
//! `cargo run --example contexts`

use e2b_blocking::{ContextOptions, Report, Result, Sandbox};

// `Report` prints a failed run's error as its message and causes (`Error::report`), not
// as the `Debug` form of `Error`.
fn main() -> Result<(), Report> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let sbx = Sandbox::builder().envs([("STAGE", "demo")]).local()?;
    // `check` turns an exception in the cell into an Err; the result itself is not needed.
    let _ = sbx
        .run_code("import os\nos.makedirs('reports', exist_ok=True)")?
        .check()?;

    let analysis = sbx.create_context(ContextOptions::new())?;
    let reports = sbx.create_context(
        ContextOptions::new()
            .cwd("reports")
            .envs([("REPORT_NAME", "weekly")]),
    )?;

    let _ = sbx
        .code("total = sum(range(10))")
        .context(&analysis)
        .run()?
        .check()?;
    let exec = sbx.code("total").context(&analysis).run()?;
    println!("analysis: total = {}", exec.text().unwrap_or("?"));

    let exec = sbx
        .code("import os\n(os.getcwd(), os.environ['STAGE'], os.environ['REPORT_NAME'], 'total' in globals())")
        .context(&reports)
        .run()?;
    println!("reports: {}", exec.text().unwrap_or("?"));

    let exec = sbx.code("!ls -d $PWD").context(&reports).run()?;
    print!("reports shell: {}", exec.logs.stdout.concat());

    sbx.restart_context(&analysis)?;
    let exec = sbx.code("'total' in globals()").context(&analysis).run()?;
    println!(
        "after restart, analysis still has total: {}",
        exec.text().unwrap_or("?")
    );

    sbx.remove_context(&reports)?;
    for ctx in sbx.list_contexts()? {
        println!("context {} ({}) cwd {:?}", ctx.id, ctx.language, ctx.cwd);
    }
    Ok(())
}
