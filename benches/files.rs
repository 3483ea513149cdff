//! Upload and download throughput of a 50 MiB file through `sandbox.files()`, beside plain
//! `curl` doing the same contents API calls against the same server, in one run.
//!
//! `cargo bench --bench files` prints MB/s (10^6 bytes per second of file content) for:
//! - SDK upload (chunked, 8 MiB base64 chunks) and SDK download (streamed `GET /files/`);
//! - curl uploading the same chunks (one `PUT` per chunk, bodies prepared beforehand), curl
//!   uploading the whole file in one `PUT`, and curl downloading `GET /files/`.
//!
//! The auth header reaches curl on stdin (`-H @-`), never on its command line or in output.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use e2b_blocking::{Isolation, LocalOptions, Sandbox};

const SIZE: usize = 50 << 20;
const CHUNK: usize = 8 << 20;
const RUNS: usize = 3;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let sbx = Sandbox::builder()
        // Unisolated: the peers (and curl) reach the server over TCP.
        .local_with(LocalOptions::new().isolation(Isolation::None))?;
    let files = sbx.files();
    let data = random_bytes(SIZE);
    let mb = SIZE as f64 / 1e6;
    let work = std::env::temp_dir().join(format!("e2b-files-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = (|| -> Res<()> {
        let curl = Curl::new(&sbx)?;

        // Bodies for curl, prepared outside the timed region.
        let whole = work.join("whole.json");
        std::fs::write(&whole, body(None, &data))?;
        let pieces: Vec<&[u8]> = data.chunks(CHUNK).collect();
        let mut chunk_files = Vec::new();
        for (i, piece) in pieces.iter().enumerate() {
            let n = if i + 1 == pieces.len() {
                -1
            } else {
                i as i64 + 1
            };
            let p = work.join(format!("chunk{i}.json"));
            std::fs::write(&p, body(Some(n), piece))?;
            chunk_files.push(p);
        }

        let mut rows = Vec::new();
        rows.push((
            "upload   e2b-blocking (8 MiB chunks)",
            best(|| {
                files.write("bench/sdk.bin", &data)?;
                Ok(())
            })?,
        ));
        rows.push((
            "upload   curl, same 8 MiB chunks",
            best(|| {
                for f in &chunk_files {
                    curl.put("/api/contents/bench/curl-chunks.bin", f)?;
                }
                Ok(())
            })?,
        ));
        rows.push((
            "upload   curl, one PUT",
            best(|| curl.put("/api/contents/bench/curl-whole.bin", &whole))?,
        ));
        for name in ["sdk.bin", "curl-chunks.bin", "curl-whole.bin"] {
            let info = files.get_info(&format!("bench/{name}"))?;
            if info.size != Some(SIZE as u64) {
                return Err(format!("{name}: {:?} bytes after upload", info.size).into());
            }
        }
        let back = files.read_bytes("bench/curl-chunks.bin")?;
        if back != data {
            return Err("curl's chunked upload differs from the data".into());
        }
        drop(back);

        rows.push((
            "download e2b-blocking into a Vec",
            best(|| {
                let v = files.read_bytes("bench/sdk.bin")?;
                if v.len() != SIZE {
                    return Err("short download".into());
                }
                Ok(())
            })?,
        ));
        rows.push((
            "download e2b-blocking into io::sink",
            best(|| {
                files.read_to("bench/sdk.bin", std::io::sink())?;
                Ok(())
            })?,
        ));
        rows.push((
            "download curl GET /files/",
            best(|| curl.get("/files/bench/sdk.bin"))?,
        ));

        println!(
            "50 MiB ({mb:.1} MB) file, best of {RUNS} runs, local jupyter_server on 127.0.0.1:"
        );
        println!("{:<40} {:>9} {:>9}", "transfer", "seconds", "MB/s");
        for (name, d) in &rows {
            let s = d.as_secs_f64();
            println!("{name:<40} {s:>9.3} {:>9.1}", mb / s);
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn best(mut f: impl FnMut() -> Res<()>) -> Res<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..RUNS {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed());
    }
    Ok(best)
}

/// curl with the sandbox's headers fed on stdin.
struct Curl {
    base: String,
    headers: String,
}

impl Curl {
    fn new(sbx: &Sandbox) -> Res<Curl> {
        let headers = sbx
            .jupyter_headers()
            .iter()
            .map(|(name, value)| format!("{name}: {}\n", value.expose_secret()))
            .collect();
        Ok(Curl {
            base: sbx.jupyter_url().to_string(),
            headers,
        })
    }

    fn run(&self, args: &[&str]) -> Res<()> {
        let mut child = Command::new("curl")
            .args(["-sS", "--fail", "-o", "/dev/null", "-H", "@-"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(self.headers.as_bytes())?;
        }
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("curl failed: {status}").into());
        }
        Ok(())
    }

    fn put(&self, path: &str, body: &Path) -> Res<()> {
        let url = format!("{}{path}", self.base);
        let data = format!("@{}", body.display());
        self.run(&[
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &data,
            &url,
        ])
    }

    fn get(&self, path: &str) -> Res<()> {
        let url = format!("{}{path}", self.base);
        self.run(&[&url])
    }
}

fn body(chunk: Option<i64>, data: &[u8]) -> String {
    let content = base64::engine::general_purpose::STANDARD.encode(data);
    match chunk {
        Some(n) => {
            format!(r#"{{"type":"file","format":"base64","chunk":{n},"content":"{content}"}}"#)
        }
        None => format!(r#"{{"type":"file","format":"base64","content":"{content}"}}"#),
    }
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}
