//! What the local server's log (`server.log`, its stdout and stderr) says: its last lines, for
//! an error when it fails to start or dies, and its warnings, for the debug log when it stops
//! (why a kernel's websocket waited, a traceback), since the log goes with its directory.
//! Both are scrubbed of the server's token.

/// The log's file name in the server's directory.
pub(crate) const FILE: &str = "server.log";

/// The last `n` lines of `log`.
pub(crate) fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The records logged at warning level or above (`[W …]`, `[E …]`, `[C …]` in
/// jupyter_server's format), each with the lines that continue it (a traceback), keeping the
/// last `max` lines of them.
pub(crate) fn warnings(log: &str, max: usize) -> String {
    let mut kept = Vec::new();
    let mut keeping = false;
    for line in log.lines() {
        if let Some(level) = record_level(line) {
            keeping = matches!(level, 'W' | 'E' | 'C');
        }
        if keeping {
            kept.push(line);
        }
    }
    kept[kept.len().saturating_sub(max)..].join("\n")
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
