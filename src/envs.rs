//! Environment variables set inside a kernel: for the whole sandbox, or for one execution and
//! then restored.

use std::time::Duration;

use serde_json::Value;

use crate::error::Error;
use crate::kernel::Kernel;

/// A Python dict literal of strings. JSON string escapes mean the same in Python.
fn py_dict(pairs: &[(String, String)]) -> String {
    let map: serde_json::Map<String, Value> = pairs
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    Value::Object(map).to_string()
}

fn validate(pairs: &[(String, String)]) -> Result<(), Error> {
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
    kernel: &Kernel,
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

/// Sets variables for one execution; returns the code that restores the previous values.
pub(crate) fn apply(
    kernel: &Kernel,
    pairs: &[(String, String)],
    timeout: Duration,
) -> Result<Option<String>, Error> {
    if pairs.is_empty() {
        return Ok(None);
    }
    validate(pairs)?;
    let (setup, restore) = match kernel.language.as_str() {
        "python" => {
            let keys: Vec<Value> = pairs
                .iter()
                .map(|(k, _)| Value::String(k.clone()))
                .collect();
            (
                format!(
                    "import os as __e2b_os\n__e2b_saved_env = {{k: __e2b_os.environ.get(k) for k in {}}}\n__e2b_os.environ.update({})",
                    Value::Array(keys),
                    py_dict(pairs)
                ),
                "for __e2b_k, __e2b_v in __e2b_saved_env.items():\n    if __e2b_v is None:\n        __e2b_os.environ.pop(__e2b_k, None)\n    else:\n        __e2b_os.environ[__e2b_k] = __e2b_v\ndel __e2b_saved_env, __e2b_os".to_string(),
            )
        }
        "bash" => {
            let mut setup = Vec::new();
            let mut restore = Vec::new();
            for (i, (k, v)) in pairs.iter().enumerate() {
                setup.push(format!(
                    "__e2b_had_{i}=${{{k}+x}}; __e2b_old_{i}=\"${{{k}-}}\"; export {k}={}",
                    sh_quote(v)
                ));
                restore.push(format!(
                    "if [ -n \"$__e2b_had_{i}\" ]; then export {k}=\"$__e2b_old_{i}\"; else unset {k}; fi; unset __e2b_had_{i} __e2b_old_{i}"
                ));
            }
            (setup.join("\n"), restore.join("\n"))
        }
        other => return Err(unsupported(other)),
    };
    kernel.run_silent(&setup, timeout)?;
    Ok(Some(restore))
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
