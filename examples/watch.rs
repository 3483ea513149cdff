//! Watches a directory of a local sandbox, follows a background command with
//! `commands().connect(pid)`, and measures how long a change takes to reach the handle.
//!
//! `cargo run --release --example watch`. Prints the latency from writing a file (on the host,
//! into the sandbox's root, with `as_local().create`, which refuses links the sandbox could
//! have planted) to its `Create` event, beside a command's round trip for scale.

use std::time::{Duration, Instant};

use e2b_blocking::{Error, FsEventKind, Report, Sandbox};

// `Report` prints a failed run's error as its message and causes (`Error::report`), not
// as the `Debug` form of `Error`.
fn main() -> Result<(), Report> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let sbx = Sandbox::local()?;
    let local = sbx
        .as_local()
        .ok_or_else(|| Error::InvalidArgument("not a local sandbox".into()))?;
    sbx.files().make_dir("watched")?;

    let mut watch = sbx.files().watch_dir("watched", true)?;
    sbx.files().write("watched/hello.txt", "hi")?;
    sbx.files().rename("watched/hello.txt", "watched/bye.txt")?;
    sbx.files().remove("watched/bye.txt")?;
    while let Some(event) = watch.next_timeout(Duration::from_secs(2))? {
        println!("{:?} {}", event.kind, event.path);
        if event.kind == FsEventKind::Remove {
            break;
        }
    }

    // Latency: a file written on the host side until its event arrives.
    let rounds = 50;
    let mut lat = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let name = format!("f{i}");
        let t = Instant::now();
        local.create(&format!("watched/{name}"))?;
        loop {
            match watch.next_timeout(Duration::from_secs(5))? {
                Some(e) if e.kind == FsEventKind::Create && e.path == name => break,
                Some(_) => {}
                None => return Err(Error::InvalidArgument(format!("no event for {name}")).into()),
            }
        }
        lat.push(t.elapsed());
        // Lets the poll in the sandbox go back to waiting, as for a change that comes alone.
        std::thread::sleep(Duration::from_millis(20));
    }
    watch.stop()?;
    let mut rtt = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        let _ = sbx.commands().run("true")?;
        rtt.push(t.elapsed());
    }
    let (l, r) = (percentiles(&mut lat), percentiles(&mut rtt));
    println!(
        "watch latency (write -> event): median {:?}, p95 {:?}",
        l.0, l.1
    );
    println!(
        "commands().run(\"true\") round trip: median {:?}, p95 {:?}",
        r.0, r.1
    );
    println!(
        "ratio watch latency / command round trip (median): {:.2}",
        l.0.as_secs_f64() / r.0.as_secs_f64()
    );

    // A background command keeps running after its handle is dropped; connect() follows it,
    // from what it printed first.
    let job = sbx
        .commands()
        .cmd("for i in 1 2 3; do echo tick $i; sleep 0.2; done")
        .background(true)
        .spawn()?;
    let pid = job.pid().unwrap_or_default();
    drop(job);
    let mut again = sbx.commands().connect(pid)?;
    let out = again.wait()?;
    print!("connected to {pid}:\n{}", out.stdout);
    Ok(sbx.close()?)
}

fn percentiles(v: &mut [Duration]) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[(v.len() * 95 / 100).min(v.len() - 1)])
}
