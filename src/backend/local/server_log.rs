//! What the local server's log (its stdout and stderr, and whatever its kernels and commands
//! write to the descriptors they inherit) says: its last lines, for an error when it fails to
//! start or dies, and its warnings, for the debug log when it stops (why a kernel's websocket
//! waited, a traceback). Both are scrubbed of the server's token.
//!
//! The log is a pipe that a thread of the SDK reads as it comes, keeping only its last
//! [`TAIL_BYTES`] and last [`WARNING_LINES`] warning lines: code in the sandbox can write to it
//! without end, and neither the host's disk nor the SDK's memory may grow with that.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

/// How much of the log's end is kept.
const TAIL_BYTES: usize = 64 << 10;
/// How many warning lines are kept.
pub(crate) const WARNING_LINES: usize = 40;
/// Longest line kept whole; the rest of a longer one is dropped.
const LINE_BYTES: usize = 4 << 10;

/// The bounded memory of a server's log.
#[derive(Debug, Default)]
struct Kept {
    tail: VecDeque<u8>,
    warnings: VecDeque<String>,
    /// The line being read, up to [`LINE_BYTES`].
    line: Vec<u8>,
    /// Whether the record the current line belongs to is a warning or worse.
    warning: bool,
}

impl Kept {
    fn push(&mut self, bytes: &[u8]) {
        self.tail.extend(bytes);
        let over = self.tail.len().saturating_sub(TAIL_BYTES);
        self.tail.drain(..over);
        for part in bytes.split_inclusive(|&b| b == b'\n') {
            let room = LINE_BYTES.saturating_sub(self.line.len());
            let ends = part.ends_with(b"\n");
            let body = part.strip_suffix(b"\n").unwrap_or(part);
            self.line.extend_from_slice(&body[..body.len().min(room)]);
            if ends {
                let line = String::from_utf8_lossy(&self.line).into_owned();
                self.line.clear();
                if let Some(level) = record_level(&line) {
                    self.warning = matches!(level, 'W' | 'E' | 'C');
                }
                if self.warning {
                    self.warnings.push_back(line);
                    if self.warnings.len() > WARNING_LINES {
                        self.warnings.pop_front();
                    }
                }
            }
        }
    }
}

/// A server's log as it is read.
#[derive(Debug, Clone)]
pub(crate) struct ServerLog(Arc<Mutex<Kept>>);

impl ServerLog {
    /// Starts reading a new log; returns it and what the server's stdout and stderr write to.
    pub(crate) fn start(name: &str) -> io::Result<(ServerLog, Stdio, Stdio)> {
        let (mut reader, writer) = io::pipe()?;
        let writer_err = writer.try_clone()?;
        let kept = Arc::new(Mutex::new(Kept::default()));
        let filling = kept.clone();
        // Ends when every writer is gone: the server, its kernels and their children.
        std::thread::Builder::new()
            .name(format!("e2b-log-{name}"))
            .spawn(move || {
                let mut buf = vec![0u8; 16 << 10];
                loop {
                    match reader.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => crate::sync::lock(&filling).push(&buf[..n]),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => return,
                    }
                }
            })?;
        Ok((ServerLog(kept), writer.into(), writer_err.into()))
    }

    /// The last `n` lines kept.
    pub(crate) fn tail(&self, n: usize) -> String {
        let kept = crate::sync::lock(&self.0);
        let (a, b) = kept.tail.as_slices();
        let text = String::from_utf8_lossy(&[a, b].concat()).into_owned();
        tail(&text, n)
    }

    /// The warning lines kept, oldest first.
    pub(crate) fn warnings(&self) -> String {
        let kept = crate::sync::lock(&self.0);
        kept.warnings.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// The last `n` lines of `log`.
fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `text` with every occurrence of `token` replaced: jupyter_server masks its token in the
/// URLs it logs, and no other line may carry it into an error or a log either.
pub(crate) fn scrub(text: String, token: &str) -> String {
    if token.is_empty() {
        text
    } else {
        text.replace(token, "[token]")
    }
}

/// The level letter of a line that starts a record (`[W 2026-12-04 22:37:16.123 ServerApp]`).
fn record_level(line: &str) -> Option<char> {
    let mut chars = line.chars();
    match (chars.next(), chars.next(), chars.next()) {
        (Some('['), Some(level @ ('D' | 'I' | 'W' | 'E' | 'C')), Some(' ')) => Some(level),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The warning lines `Kept` keeps of `log`, the last `max` of them, fed in odd pieces.
    fn warnings(log: &str, max: usize) -> String {
        let mut kept = Kept::default();
        for piece in log.as_bytes().chunks(7) {
            kept.push(piece);
        }
        let lines: Vec<String> = kept.warnings.into_iter().collect();
        lines[lines.len().saturating_sub(max)..].join("\n")
    }

    #[test]
    fn a_flood_keeps_only_the_tail_and_bounded_lines() {
        let mut kept = Kept::default();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..8 {
            kept.push(&chunk);
        }
        kept.push(b"\n[W 2026-12-04 22:37:16.500 ServerApp] last words\n");
        assert_eq!(kept.tail.len(), TAIL_BYTES);
        assert!(kept.line.is_empty());
        let flood =
            String::from_utf8_lossy(&[kept.tail.as_slices().0, kept.tail.as_slices().1].concat())
                .into_owned();
        assert!(flood.ends_with("last words\n"));
        assert_eq!(kept.warnings.len(), 1);
        for _ in 0..100 {
            kept.push(b"[E 2026-12-04 22:37:16.500 ServerApp] again\n");
        }
        assert_eq!(kept.warnings.len(), WARNING_LINES);
    }

    const LOG: &str = "\
[I 2026-12-04 22:37:13.101 ServerApp] Jupyter Server 2.21.1 is running at:
[I 2026-12-04 22:37:13.101 ServerApp] http://127.0.0.1:42635/?token=...
[W 2026-12-04 22:37:16.500 ServerApp] Timeout waiting for kernel_info reply from k1
[I 2026-12-04 22:37:16.600 ServerApp] Connecting to kernel k1.
[E 2026-12-04 22:37:17.000 ServerApp] Uncaught exception GET /api/kernels/k1/channels
    Traceback (most recent call last):
      File \"x.py\", line 1, in <module>
    ValueError: secret-token-123 leaked
[I 2026-12-04 22:37:18.000 ServerApp] Kernel shutdown: k1
";

    #[test]
    fn warnings_keep_their_continuation_lines_and_nothing_else() {
        let said = warnings(LOG, 40);
        assert_eq!(said.lines().count(), 5, "{said}");
        assert!(said.starts_with("[W "));
        assert!(said.contains("Timeout waiting for kernel_info reply"));
        assert!(said.contains("ValueError"));
        assert!(!said.contains("Connecting to kernel"));
        assert!(!said.contains("Kernel shutdown"));
        // Only the last lines past the limit.
        assert_eq!(warnings(LOG, 2).lines().count(), 2);
        assert!(warnings(LOG, 2).ends_with("leaked"));
        assert_eq!(warnings("", 40), "");
        assert_eq!(warnings("no record at all\nat all", 40), "");
    }

    #[test]
    fn the_tail_is_the_last_lines_and_the_token_is_scrubbed() {
        assert!(tail(LOG, 1).starts_with("[I 2026-12-04 22:37:18.000"));
        assert_eq!(tail(LOG, 100).lines().count(), LOG.lines().count());
        let scrubbed = scrub(warnings(LOG, 40), "secret-token-123");
        assert!(!scrubbed.contains("secret-token-123"));
        assert!(scrubbed.contains("[token] leaked"));
        assert_eq!(scrub("a".into(), ""), "a");
    }
}
