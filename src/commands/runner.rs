//! The cell-side runner (`runner.py`) and the cell that runs one command with it.

use serde_json::Value;

/// The runner's source.
const RUNNER: &str = include_str!("runner.py");
/// MIME type of the runner's start, exit and error records.
pub(super) const COMMAND_MIME: &str = "application/x-e2b-command+json";

/// The cell that runs one command. The runner is installed as a module on first use in a
/// kernel (again after a restart); its source travels as one string literal, which IPython's
/// input transformers pass over cheaply, and is compiled only when it is missing.
pub(super) fn command_cell(spec: &Value) -> String {
    cell("run", spec)
}

/// The cell that replays a running command's output from its log and follows it (see
/// `_e2b_follow` in runner.py): `spec` is `{"pid": …}`.
pub(super) fn follow_cell(spec: &Value) -> String {
    cell("follow", spec)
}

fn cell(function: &str, spec: &Value) -> String {
    let source = Value::String(RUNNER.to_string());
    let spec = Value::String(spec.to_string());
    format!(
        "import sys as __e2b_sys\n\
         if '__e2b_command' not in __e2b_sys.modules:\n    \
         exec({source}, {{'__name__': '__e2b_command_install'}})\n\
         __e2b_sys.modules['__e2b_command'].{function}(__import__('json').loads({spec}))\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn runner_source_is_embedded() {
        assert!(RUNNER.contains("def _e2b_command(spec)"));
        assert!(RUNNER.contains(COMMAND_MIME));
        let cell = command_cell(&json!({"cmd": "echo 'hi'\n", "envs": {}}));
        assert_eq!(cell.lines().count(), 4, "{cell}");
        assert!(cell.contains(r#"\"cmd\":\"echo 'hi'\\n\""#), "{cell}");
    }
}
