//! The cell-side runner (`runner.py`) and the cell that runs one command with it.

use serde_json::Value;

use crate::kernel::module::PyModule;

/// The runner, installed as the module `__e2b_command`.
const RUNNER: PyModule = PyModule {
    name: "__e2b_command",
    about: "command runner",
    source: include_str!("runner.py"),
};
/// MIME type of the runner's start, exit and error records.
pub(super) const COMMAND_MIME: &str = "application/x-e2b-command+json";

/// The cell that runs one command. The runner is installed as a module on first use in a
/// kernel (again after a restart; see [`PyModule::cell`]).
pub(super) fn command_cell(spec: &Value) -> String {
    cell("run", spec)
}

/// The cell that replays a running command's output from its log and follows it (see
/// `_e2b_follow` in runner.py): `spec` is `{"pid": …}`.
pub(super) fn follow_cell(spec: &Value) -> String {
    cell("follow", spec)
}

fn cell(function: &str, spec: &Value) -> String {
    RUNNER.cell(function, std::slice::from_ref(spec), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn runner_source_is_embedded() {
        assert!(RUNNER.source.contains("def _e2b_command(spec)"));
        assert!(RUNNER.source.contains(COMMAND_MIME));
        let cell = command_cell(&json!({"cmd": "echo 'hi'\n", "envs": {}}));
        assert_eq!(cell.lines().count(), 4, "{cell}");
        assert!(cell.contains(r#"\"cmd\":\"echo 'hi'\\n\""#), "{cell}");
    }
}
