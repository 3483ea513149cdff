//! The JSON options the C functions accept. Unknown keys are errors, so a typo never goes
//! unnoticed.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::error::{E2bErrorCode, FfiError};
use crate::{LocalOptions, Timeouts};

/// Options of `e2b_sandbox_local`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LocalJson {
    /// A Python with jupyter_server and ipykernel.
    pub(crate) python: Option<String>,
    /// Extra PyPI packages to make importable.
    #[serde(default)]
    pub(crate) packages: Vec<String>,
    /// Environment variables of every context.
    #[serde(default)]
    pub(crate) envs: BTreeMap<String, String>,
    /// Call deadlines.
    #[serde(default)]
    pub(crate) timeouts: TimeoutsJson,
}

impl LocalJson {
    pub(crate) fn local_options(&self) -> LocalOptions {
        let mut options = LocalOptions::new().packages(self.packages.iter().cloned());
        if let Some(python) = &self.python {
            options = options.python(python);
        }
        options
    }
}

/// Options of `e2b_sandbox_connect_jupyter`: those of `e2b_sandbox_local` that apply to a
/// server someone else runs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JupyterJson {
    /// Environment variables of every context.
    #[serde(default)]
    pub(crate) envs: BTreeMap<String, String>,
    /// Call deadlines.
    #[serde(default)]
    pub(crate) timeouts: TimeoutsJson,
}

/// Deadlines in milliseconds; an absent key keeps the default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TimeoutsJson {
    connect_ms: Option<u64>,
    request_ms: Option<u64>,
    /// `null` means no deadline.
    #[serde(default, deserialize_with = "present")]
    execution_ms: Option<Option<u64>>,
    start_ms: Option<u64>,
    close_ms: Option<u64>,
}

impl TimeoutsJson {
    pub(crate) fn to_timeouts(&self) -> Timeouts {
        let ms = Duration::from_millis;
        let mut t = Timeouts::default();
        if let Some(v) = self.connect_ms {
            t = t.connect(ms(v));
        }
        if let Some(v) = self.request_ms {
            t = t.request(ms(v));
        }
        if let Some(v) = self.execution_ms {
            t = t.execution(v.map(ms));
        }
        if let Some(v) = self.start_ms {
            t = t.start(ms(v));
        }
        if let Some(v) = self.close_ms {
            t = t.close(ms(v));
        }
        t
    }
}

/// Options of `e2b_run`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunJson {
    /// Deadline in milliseconds; `null` means none; absent keeps the sandbox's default.
    #[serde(default, deserialize_with = "present")]
    pub(crate) timeout_ms: Option<Option<u64>>,
    /// Run in the default context of this language.
    pub(crate) language: Option<String>,
    /// Environment variables of this execution only.
    #[serde(default)]
    pub(crate) envs: BTreeMap<String, String>,
}

/// Options of `e2b_commands_run`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommandJson {
    /// Working directory; absent means the sandbox root.
    pub(crate) cwd: Option<String>,
    /// Environment variables of this command only.
    #[serde(default)]
    pub(crate) envs: BTreeMap<String, String>,
    /// Deadline in milliseconds; `null` means none; absent keeps the default (60 s).
    #[serde(default, deserialize_with = "present")]
    pub(crate) timeout_ms: Option<Option<u64>>,
}

/// Tells a key given as `null` (`Some(None)`) from an absent key (`None`, via `default`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Parses options JSON; NULL (`None`) or an empty string means every default.
pub(crate) fn parse<T: Default + for<'de> Deserialize<'de>>(
    json: Option<&str>,
    what: &str,
) -> Result<T, FfiError> {
    match json {
        None => Ok(T::default()),
        Some(s) if s.trim().is_empty() => Ok(T::default()),
        Some(s) => serde_json::from_str(s).map_err(|e| {
            FfiError::new(
                E2bErrorCode::E2B_ERR_INVALID_ARGUMENT,
                format!("invalid {what} JSON: {e}"),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_null_and_number_timeouts_differ() {
        let r: RunJson = parse(Some(r#"{"timeout_ms": null}"#), "run options").unwrap();
        assert_eq!(r.timeout_ms, Some(None));
        let r: RunJson = parse(Some(r#"{"timeout_ms": 5}"#), "run options").unwrap();
        assert_eq!(r.timeout_ms, Some(Some(5)));
        let r: RunJson = parse(Some("{}"), "run options").unwrap();
        assert_eq!(r.timeout_ms, None);
        let r: RunJson = parse(None, "run options").unwrap();
        assert_eq!(r.timeout_ms, None);
    }

    #[test]
    fn unknown_keys_and_bad_types_are_invalid_arguments() {
        for bad in [
            r#"{"timeout": 5}"#,
            r#"{"timeout_ms": "5"}"#,
            r#"{"envs": {"A": 1}}"#,
            "[1]",
            "{",
        ] {
            let e = parse::<RunJson>(Some(bad), "run options").unwrap_err();
            assert_eq!(e.code, E2bErrorCode::E2B_ERR_INVALID_ARGUMENT, "{bad}");
            assert!(e.message.starts_with("invalid run options JSON"), "{bad}");
        }
        let e = parse::<LocalJson>(Some(r#"{"timeouts": {"exec_ms": 1}}"#), "x").unwrap_err();
        assert!(e.message.contains("exec_ms"), "{}", e.message);
    }

    #[test]
    fn jupyter_options_take_envs_and_timeouts_only() {
        let o: JupyterJson = parse(
            Some(r#"{"timeouts": {"connect_ms": 100}, "envs": {"A": "1"}}"#),
            "jupyter options",
        )
        .unwrap();
        assert_eq!(
            o.timeouts.to_timeouts(),
            Timeouts::default().connect(Duration::from_millis(100))
        );
        assert_eq!(o.envs.len(), 1);
        for bad in [r#"{"python": "/usr/bin/python3"}"#, r#"{"packages": []}"#] {
            let e = parse::<JupyterJson>(Some(bad), "jupyter options").unwrap_err();
            assert_eq!(e.code, E2bErrorCode::E2B_ERR_INVALID_ARGUMENT, "{bad}");
        }
    }

    #[test]
    fn command_options() {
        let c: CommandJson = parse(
            Some(r#"{"cwd": "sub", "envs": {"A": "1"}, "timeout_ms": null}"#),
            "command options",
        )
        .unwrap();
        assert_eq!(c.cwd.as_deref(), Some("sub"));
        assert_eq!(c.timeout_ms, Some(None));
        let c: CommandJson = parse(None, "command options").unwrap();
        assert_eq!((c.cwd, c.timeout_ms), (None, None));
        let e = parse::<CommandJson>(Some(r#"{"language": "python"}"#), "x").unwrap_err();
        assert_eq!(e.code, E2bErrorCode::E2B_ERR_INVALID_ARGUMENT);
    }

    #[test]
    fn local_options_map_to_timeouts() {
        let o: LocalJson = parse(
            Some(r#"{"timeouts": {"execution_ms": null, "close_ms": 250}, "envs": {"A": "1"}}"#),
            "local options",
        )
        .unwrap();
        let expected = Timeouts::default()
            .execution(None)
            .close(Duration::from_millis(250));
        assert_eq!(o.timeouts.to_timeouts(), expected);
        assert_eq!(o.envs.get("A").map(String::as_str), Some("1"));
    }
}
