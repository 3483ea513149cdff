//! terminado's websocket messages: JSON arrays in text frames, `["stdin", s]` and
//! `["set_size", rows, cols, ...]` to the server, `["setup", {}]`, `["stdout", s]` and
//! `["disconnect", 1]` from it; and the local sandbox's additions, `e2b_stdin`,
//! `e2b_stdin_seq` and `e2b_exit`.

use serde_json::{Value, json};

use crate::error::Error;

/// A message from terminado.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FromTerm {
    /// Sent first on every connection; the next `stdout`, if any, is the replay of the
    /// terminal's read buffer (see [`crate::pty::replay`]).
    Setup,
    /// Output of the PTY, as terminado decoded it (UTF-8, invalid bytes replaced).
    Stdout(String),
    /// The shell exited; terminado closes the websocket next.
    Disconnect,
    /// How the shell ended, as a shell's `$?` shows it (128 + the signal's number when a
    /// signal ended it): `["e2b_exit", status, signal]`, sent just before `disconnect` by
    /// servers that report it (the local sandbox's).
    Exit(i32),
    /// The highest numbered input the terminal took (`["e2b_stdin_seq", n]`, sent on connect
    /// by servers that take numbered input: the local sandbox's).
    StdinSeq(u64),
    /// A message type this client does not know; ignored.
    Other(String),
}

/// Decodes one text frame.
pub(crate) fn decode(text: &str) -> Result<FromTerm, Error> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Error::protocol_from("terminal message is not JSON", e))?;
    let Some(items) = value.as_array() else {
        return Err(Error::protocol("terminal message is not a JSON array"));
    };
    let kind = items
        .first()
        .and_then(Value::as_str)
        .ok_or_else(|| Error::protocol("terminal message has no type"))?;
    Ok(match kind {
        "setup" => FromTerm::Setup,
        "stdout" => FromTerm::Stdout(
            items
                .get(1)
                .and_then(Value::as_str)
                .ok_or_else(|| Error::protocol("terminal stdout message has no text"))?
                .to_string(),
        ),
        "disconnect" => FromTerm::Disconnect,
        "e2b_exit" => FromTerm::Exit(exit_code(items)?),
        "e2b_stdin_seq" => FromTerm::StdinSeq(
            items
                .get(1)
                .and_then(Value::as_u64)
                .ok_or_else(|| Error::protocol("terminal e2b_stdin_seq message has no number"))?,
        ),
        other => FromTerm::Other(other.to_string()),
    })
}

/// The code of `["e2b_exit", status, signal]`: the status, or 128 + the signal when the
/// status is null.
fn exit_code(items: &[Value]) -> Result<i32, Error> {
    let number = |i: usize| {
        items
            .get(i)
            .and_then(Value::as_i64)
            .and_then(|n| i32::try_from(n).ok())
    };
    match (number(1), number(2)) {
        (Some(status), _) => Ok(status),
        (None, Some(signal)) if (1..=127).contains(&signal) => Ok(128 + signal),
        _ => Err(Error::protocol(
            "terminal e2b_exit message has neither status nor signal",
        )),
    }
}

/// `["stdin", text]`.
pub(crate) fn stdin(text: &str) -> String {
    json!(["stdin", text]).to_string()
}

/// `["e2b_stdin", seq, text]`: input a server that announced `e2b_stdin_seq` takes at most
/// once per number.
pub(crate) fn numbered_stdin(seq: u64, text: &str) -> String {
    json!(["e2b_stdin", seq, text]).to_string()
}

/// `["set_size", rows, cols]`: terminado reads the first two numbers (and sizes the PTY to the
/// smallest of its clients).
pub(crate) fn set_size(rows: u16, cols: u16) -> String {
    json!(["set_size", rows, cols]).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_terminado_sends() {
        assert_eq!(decode(r#"["setup", {}]"#).unwrap(), FromTerm::Setup);
        assert_eq!(
            decode(r#"["stdout", "hi\r\n\u001b[K"]"#).unwrap(),
            FromTerm::Stdout("hi\r\n\u{1b}[K".into())
        );
        assert_eq!(
            decode(r#"["disconnect", 1]"#).unwrap(),
            FromTerm::Disconnect
        );
        assert_eq!(
            decode(r#"["e2b_exit", 3, null]"#).unwrap(),
            FromTerm::Exit(3)
        );
        assert_eq!(
            decode(r#"["e2b_exit", null, 9]"#).unwrap(),
            FromTerm::Exit(137)
        );
        assert_eq!(
            decode(r#"["new", 1]"#).unwrap(),
            FromTerm::Other("new".into())
        );
    }

    #[test]
    fn malformed_messages_are_protocol_errors() {
        for bad in [
            "",
            "{}",
            "[]",
            "[1]",
            r#"["stdout"]"#,
            r#"["stdout", 3]"#,
            r#"["e2b_stdin_seq", -1]"#,
            r#"["e2b_exit"]"#,
            r#"["e2b_exit", null, null]"#,
            r#"["e2b_exit", null, 300]"#,
            r#"["e2b_exit", "3", null]"#,
        ] {
            assert!(
                matches!(decode(bad), Err(Error::Protocol { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn encodes_what_terminado_reads() {
        assert_eq!(stdin("a\"\n"), r#"["stdin","a\"\n"]"#);
        assert_eq!(set_size(24, 80), r#"["set_size",24,80]"#);
        assert_eq!(numbered_stdin(3, "ls\n"), r#"["e2b_stdin",3,"ls\n"]"#);
    }
}
