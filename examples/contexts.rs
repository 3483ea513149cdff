//! Several contexts in one sandbox: separate state, their own working directory and env vars,
//! restart and removal.
//!
//! `cargo run --example contexts`

use e2b_blocking::{ContextOptions, Error, Sandbox};

fn main() -> Result<(), Error> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let sbx = Sandbox::builder().envs([("STAGE", "demo")]).local()?;
    sbx.run_code("import os\nos.makedirs('reports', exist_ok=True)")?;

    let analysis = sbx.create_context(ContextOptions::new())?;
    let reports = sbx.create_context(
        ContextOptions::new()
            .cwd("reports")
            .envs([("REPORT_NAME", "weekly")]),
    )?;

    sbx.run("total = sum(range(10))")
        .context(&analysis)
        .send()?;
    let exec = sbx.run("total").context(&analysis).send()?;
    println!("analysis: total = {}", exec.text().unwrap_or("?"));

    let exec = sbx
        .run("import os\n(os.getcwd(), os.environ['STAGE'], os.environ['REPORT_NAME'], 'total' in globals())")
        .context(&reports)
        .send()?;
    println!("reports: {}", exec.text().unwrap_or("?"));

    let exec = sbx.run("!ls -d $PWD").context(&reports).send()?;
    print!("reports shell: {}", exec.logs.stdout.concat());

    sbx.restart_context(&analysis)?;
    let exec = sbx.run("'total' in globals()").context(&analysis).send()?;
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
