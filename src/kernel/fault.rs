//! The one table from the faults the SDK's Python code in the sandbox reports (`{"error":
//! kind, "path": …, "message": …}` from `helper.py` and `watch.py`, `{"kind": …}` in the
//! command runner's error record) to [`Error`].

use serde_json::Value;

use crate::error::Error;

/// A fault reported by code in the sandbox, kept as data so that a handle can rebuild the same
/// error on every wait.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SandboxFault {
    /// What went wrong: `not_found`, `not_a_directory`, `is_a_directory`, `permission_denied`,
    /// `not_a_file`, `exists`, `unsupported`, `stdin_closed`, or anything else.
    pub(crate) kind: String,
    /// The path it happened at, as the caller named it (empty: the root).
    pub(crate) path: String,
    pub(crate) message: String,
}

impl SandboxFault {
    /// The fault in a result object (`error`, `path`, `message`), with `path` when the result
    /// names none.
    pub(crate) fn of(out: &Value, path: &str) -> SandboxFault {
        let text = |key: &str| out[key].as_str().unwrap_or("").to_string();
        SandboxFault {
            kind: text("error"),
            path: out["path"].as_str().unwrap_or(path).to_string(),
            message: text("message"),
        }
    }

    /// The path as errors show it: `.` for the root.
    pub(crate) fn shown_path(&self) -> String {
        if self.path.is_empty() {
            ".".to_string()
        } else {
            self.path.clone()
        }
    }

    /// The error for the fault, in an operation described by `what` (`rename`, `watch`, …);
    /// a kind the table does not know becomes `other(message)`.
    pub(crate) fn to_error(&self, what: &str, other: impl FnOnce(&str) -> Error) -> Error {
        let path = self.shown_path();
        match self.kind.as_str() {
            "not_found" => Error::FileNotFound { path },
            "not_a_directory" => Error::NotADirectory { path },
            "is_a_directory" => Error::IsADirectory { path },
            "permission_denied" => Error::PermissionDenied { path },
            "not_a_file" => Error::InvalidArgument(format!(
                "{path} is not a regular file (a FIFO, socket or device); use a command for it"
            )),
            "exists" => Error::Http {
                status: 409,
                endpoint: format!("{what} in the sandbox"),
                message: format!("{path} already exists"),
            },
            "unsupported" => Error::InvalidArgument(self.message.clone()),
            "stdin_closed" => Error::StdinClosed,
            _ => other(&self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_map_to_errors() {
        let fault =
            |out: Value| SandboxFault::of(&out, "a.txt").to_error("read", |m| Error::protocol(m));
        assert!(matches!(
            fault(json!({"error": "not_found"})),
            Error::FileNotFound { path } if path == "a.txt"
        ));
        assert!(matches!(
            fault(json!({"error": "permission_denied", "path": ""})),
            Error::PermissionDenied { path } if path == "."
        ));
        assert!(matches!(
            fault(json!({"error": "exists", "path": "b"})),
            Error::Http { status: 409, message, .. } if message == "b already exists"
        ));
        assert!(matches!(
            fault(json!({"error": "unsupported", "message": "no inotify"})),
            Error::InvalidArgument(m) if m == "no inotify"
        ));
        assert!(matches!(
            fault(json!({"error": "os", "message": "boom"})),
            Error::Protocol { .. }
        ));
    }
}
