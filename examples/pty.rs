//! A terminal in a local sandbox: type commands, read what the shell prints, resize, exit.
//!
//! `cargo run --example pty`. Set `RUST_LOG=e2b_blocking=debug` to watch the terminal's
//! connection.

use std::time::{Duration, Instant};

use e2b_blocking::{Error, PtyEnd, PtyEvent, PtySize, Report, Sandbox, Terminal};

/// Prints output until a line ending with `marker` shows up, for at most `limit`.
fn show_until(term: &Terminal, marker: &str, limit: Duration) -> Result<(), Error> {
    let until = Instant::now() + limit;
    let mut seen = String::new();
    while Instant::now() < until {
        match term.recv_timeout(Duration::from_millis(100))? {
            Some(PtyEvent::Output(text)) => {
                print!("{text}");
                seen.push_str(&text);
                if seen
                    .lines()
                    .any(|l| l.trim_end_matches('\r').ends_with(marker))
                {
                    return Ok(());
                }
            }
            Some(PtyEvent::Gap(gap)) => println!("\n[gap: {gap:?}]"),
            Some(PtyEvent::End(end)) => {
                println!("\n[ended: {end:?}]");
                return Ok(());
            }
            Some(_) | None => {}
        }
    }
    println!("\n[no {marker:?} within {limit:?}]");
    Ok(())
}

// `Report` prints a failed run's error as its message and causes (`Error::report`), not
// as the `Debug` form of `Error`.
fn main() -> Result<(), Report> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let sbx = Sandbox::local()?;

    let started = Instant::now();
    let term = sbx.pty().create(PtySize::new(100, 30))?;
    println!("terminal {} open in {:?}", term.name(), started.elapsed());

    // `""` keeps the typed line (echoed by the terminal) from ending with the marker itself.
    term.send_input("echo hel\"\"lo; printf '%s\\n' $((6*7)); echo do\"\"ne\n")?;
    show_until(&term, "done", Duration::from_secs(10))?;

    term.resize(PtySize::new(132, 43))?;
    term.send_input("stty size; echo do\"\"ne\n")?;
    show_until(&term, "done", Duration::from_secs(10))?;

    term.send_input("exit 3\n")?;
    let out = term.wait()?;
    print!("{}", out.output);
    match out.end {
        PtyEnd::Exited { code: Some(code) } => println!("\nthe shell exited with status {code}"),
        end => println!("\nended: {end:?}"),
    }
    Ok(())
}
