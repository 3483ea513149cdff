//! Kernelspecs and languages: which kernelspec serves a language, and the code that changes a
//! kernel's working directory in each language.

use crate::error::Error;
use crate::jupyter::rest::KernelSpecs;
use crate::kernel::SilentError;

/// Normalises the language names E2B accepts.
pub(crate) fn normalize_language(language: &str) -> String {
    match language.trim().to_ascii_lowercase().as_str() {
        "" | "py" | "python3" => "python".into(),
        "js" | "node" | "ts" | "typescript" => "javascript".into(),
        "sh" | "shell" => "bash".into(),
        other => other.to_string(),
    }
}

/// Picks the kernelspec for a language: the server's default if it speaks it, else the first
/// spec that does, else a spec with that exact name.
pub(crate) fn spec_for(specs: &KernelSpecs, language: &str) -> Result<(String, String), Error> {
    let wanted = normalize_language(language);
    let speaks = |name: &str| {
        specs
            .kernelspecs
            .get(name)
            .is_some_and(|s| normalize_language(&s.spec.language) == wanted)
    };
    if speaks(&specs.default) {
        return Ok((specs.default.clone(), wanted));
    }
    if let Some(name) = specs.kernelspecs.keys().find(|n| speaks(n)) {
        return Ok((name.clone(), wanted));
    }
    if let Some(s) = specs.kernelspecs.get(language) {
        return Ok((language.to_string(), normalize_language(&s.spec.language)));
    }
    let available: Vec<String> = specs
        .kernelspecs
        .iter()
        .map(|(name, s)| format!("{name} ({})", s.spec.language))
        .collect();
    Err(Error::InvalidArgument(format!(
        "no kernel for language {language:?} on this server; available: {}",
        available.join(", ")
    )))
}

/// Code that changes the working directory, per language.
pub(crate) fn chdir_code(language: &str, cwd: &str) -> Result<String, Error> {
    let quoted = serde_json::Value::String(cwd.to_string()).to_string();
    Ok(match language {
        "javascript" => format!("process.chdir({quoted})"),
        "r" => format!("setwd({quoted})"),
        "bash" => format!("cd {quoted}"),
        other => {
            return Err(Error::InvalidArgument(format!(
                "cwd is not supported for {other} contexts"
            )));
        }
    })
}

/// The error for a working directory the kernel could not change to. Python names the reason;
/// other kernels' errors are passed on as they are.
pub(crate) fn chdir_error(kernel_id: &str, cwd: &str, e: &SilentError<'_>) -> Error {
    let path = cwd.to_string();
    match e.name {
        "FileNotFoundError" => Error::FileNotFound { path },
        "NotADirectoryError" => Error::NotADirectory { path },
        "PermissionError" => Error::PermissionDenied { path },
        _ => Error::KernelSetup {
            kernel_id: kernel_id.to_string(),
            message: format!("changing to {cwd:?}: {e}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs() -> KernelSpecs {
        serde_json::from_value(serde_json::json!({
            "default": "python3",
            "kernelspecs": {
                "python3": {"spec": {"language": "python"}},
                "ir": {"spec": {"language": "R"}},
            }
        }))
        .unwrap()
    }

    #[test]
    fn languages_map_to_specs() {
        assert_eq!(spec_for(&specs(), "python").unwrap().0, "python3");
        assert_eq!(spec_for(&specs(), "r").unwrap().0, "ir");
        assert_eq!(spec_for(&specs(), "python3").unwrap().0, "python3");
        let err = spec_for(&specs(), "java").unwrap_err().to_string();
        assert!(err.contains("python3 (python)"), "{err}");
    }
}
