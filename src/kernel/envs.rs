//! Environment variables set inside a kernel: for the whole sandbox, or for one execution and
//! then restored.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::error::Error;
use crate::jupyter::wire::Outgoing;
use crate::kernel::Kernel;

/// A Python dict literal of strings. JSON string escapes mean the same in Python.
pub(super) fn py_dict(pairs: &[(String, String)]) -> String {
    string_map(pairs).to_string()
}

/// `pairs` as a JSON object of strings.
fn string_map(pairs: &[(String, String)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

pub(super) fn validate(pairs: &[(String, String)]) -> Result<(), Error> {
    for (k, v) in pairs {
        if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
            return Err(Error::InvalidArgument(format!(
                "invalid environment variable name or value: {k:?}"
            )));
        }
    }
    Ok(())
}

/// Sets variables for good (sandbox-level env vars).
pub(crate) fn set(
    kernel: &Arc<Kernel>,
    pairs: &[(String, String)],
    timeout: Duration,
) -> Result<(), Error> {
    if pairs.is_empty() {
        return Ok(());
    }
    validate(pairs)?;
    let code = match kernel.language.as_str() {
        "python" => format!(
            "import os as __e2b_os\n__e2b_os.environ.update({})\ndel __e2b_os",
            py_dict(pairs)
        ),
        "bash" => pairs
            .iter()
            .map(|(k, v)| format!("export {k}={}", sh_quote(v)))
            .collect::<Vec<_>>()
            .join("\n"),
        other => return Err(unsupported(other)),
    };
    kernel.run_silent(&code, timeout).map(drop)
}

/// `request` carrying `pairs` for the kernel's hook (`hook.py`), which sets them for that cell
/// only.
pub(crate) fn in_metadata(
    request: Outgoing,
    pairs: &[(String, String)],
) -> Result<Outgoing, Error> {
    if pairs.is_empty() {
        return Ok(request);
    }
    validate(pairs)?;
    Ok(request.with_metadata("e2b_envs", string_map(pairs)))
}

/// The cells around one execution with its own variables, for kernels without the hook: `setup` saves the previous values
/// and sets the new ones, `restore` puts the previous values back. `restore` can run twice (a
/// resent request) and still leaves the same state.
pub(crate) struct AroundCells {
    pub(crate) setup: String,
    pub(crate) restore: String,
}

/// The cells for variables visible to one execution only; `None` without variables.
pub(crate) fn for_one_execution(
    kernel: &Kernel,
    pairs: &[(String, String)],
) -> Result<Option<AroundCells>, Error> {
    if pairs.is_empty() {
        return Ok(None);
    }
    validate(pairs)?;
    let cells = match kernel.language.as_str() {
        "python" => {
            let keys: Vec<Value> = pairs
                .iter()
                .map(|(k, _)| Value::String(k.clone()))
                .collect();
            AroundCells {
                setup: format!(
                    "import os as __e2b_os\n__e2b_saved_env = {{k: __e2b_os.environ.get(k) for k in {}}}\n__e2b_os.environ.update({})\ndel __e2b_os",
                    Value::Array(keys),
                    py_dict(pairs)
                ),
                restore: include_str!("env_restore.py").to_string(),
            }
        }
        "bash" => {
            let mut setup = Vec::new();
            let mut restore = Vec::new();
            for (i, (k, v)) in pairs.iter().enumerate() {
                setup.push(format!(
                    "__e2b_had_{i}=${{{k}+x}}; __e2b_old_{i}=\"${{{k}-}}\"; export {k}={}",
                    sh_quote(v)
                ));
                // Only while the saved value is there: a second run changes nothing.
                restore.push(format!(
                    "if [ -n \"${{__e2b_had_{i}+x}}\" ]; then if [ -n \"$__e2b_had_{i}\" ]; then export {k}=\"$__e2b_old_{i}\"; else unset {k}; fi; unset __e2b_had_{i} __e2b_old_{i}; fi"
                ));
            }
            AroundCells {
                setup: setup.join("\n"),
                restore: restore.join("\n"),
            }
        }
        other => return Err(unsupported(other)),
    };
    Ok(Some(cells))
}

fn sh_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "'\\''"))
}

fn unsupported(language: &str) -> Error {
    Error::InvalidArgument(format!(
        "environment variables are supported in python and bash contexts, not {language}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dict_literal_escapes() {
        let d = py_dict(&[("A".into(), "x\"y\n'z".into())]);
        assert_eq!(d, r#"{"A":"x\"y\n'z"}"#);
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert!(validate(&[("A=B".into(), "1".into())]).is_err());
    }
}
