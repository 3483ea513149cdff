//! Runs code on a Jupyter server you already have: jupyter_server, Jupyter Kernel Gateway, or
//! Enterprise Gateway. The SDK starts its own kernel and shuts down only that one.
//!
//! `cargo run --example jupyter_server -- http://127.0.0.1:8888 <token>`
//! Without arguments it starts a local sandbox and connects to that server, to show the flow:
//! isolated (the default on Linux) its URL is `http+unix://` and its Unix socket's path, which
//! `Sandbox::jupyter` takes as it takes `http://host:port`.

use e2b_blocking::{Report, Sandbox, Secret};

// `Report` prints a failed run's error as its message and causes (`Error::report`), not
// as the `Debug` form of `Error`.
fn main() -> Result<(), Report> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut args = std::env::args().skip(1);
    let (_owner, url, token) = match (args.next(), args.next()) {
        (Some(url), token) => (None, url, Secret::new(token.unwrap_or_default())),
        _ => {
            let owner = Sandbox::local()?;
            let url = owner.jupyter_url().to_string();
            let token = owner
                .jupyter_headers()
                .into_iter()
                .find_map(|(name, value)| {
                    (name == "Authorization")
                        .then(|| Secret::new(value.expose_secret().trim_start_matches("token ")))
                })
                .unwrap_or_default();
            (Some(owner), url, token)
        }
    };

    let sbx = Sandbox::jupyter(&url, token)?;
    let exec = sbx
        .code("import platform\nprint('kernel on', platform.node())\nsum(range(100))")
        .on_stdout(|m| print!("{}", m.line))
        .run()?;
    println!("sum = {}", exec.text().unwrap_or("?"));
    Ok(sbx.close()?)
}
