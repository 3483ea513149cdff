//! A kernel's set-up: what it needs before user code runs, and again after every restart. In a
//! Python kernel it is one silent cell (one round trip) that may safely run twice, since until
//! the output hook it installs is in, a reply lost in a cut cannot be asked for again: install
//! the hook, set the env vars, change to the working directory (relative to where the kernel
//! started, recorded by the hook, so running it again changes nothing).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;

use crate::error::Error;
use crate::jupyter::wire::Outgoing;
use crate::kernel::driver::Driver;
use crate::kernel::envs;
use crate::kernel::recovery::install_code;
use crate::kernel::spec::{chdir_code, chdir_error};
use crate::kernel::{Kernel, SilentError, finish_silent};

impl Kernel {
    /// Sets the kernel up with `envs` and its own cwd, and records that set-up ran.
    pub(crate) fn set_up(
        self: &Arc<Self>,
        envs: &[(String, String)],
        timeout: Duration,
    ) -> Result<(), Error> {
        let events = self.conn.kernel_events();
        let reply = if self.language == "python" {
            let cell = python_cell(envs, self.cwd.as_deref())?;
            let request = Outgoing::execute(self.conn.session_id(), &cell, true);
            finish_silent(
                &mut Driver::send_idempotent(self.clone(), request)?,
                timeout,
            )?
        } else {
            envs::set(self, envs, timeout)?;
            match self.cwd.as_deref() {
                Some(cwd) => self.run_silent_reply(&chdir_code(&self.language, cwd)?, timeout)?,
                None => Value::Null,
            }
        };
        if let Some(e) = SilentError::of(&reply) {
            return Err(match self.cwd.as_deref() {
                Some(cwd) if is_path_error(e.name) => chdir_error(&self.id, cwd, &e),
                _ => Error::KernelSetup {
                    kernel_id: self.id.clone(),
                    message: e.to_string(),
                },
            });
        }
        self.hooked
            .store(self.language == "python", Ordering::SeqCst);
        self.prepared_at.store(events, Ordering::SeqCst);
        Ok(())
    }
}

/// The exceptions `os.chdir` raises for a path that cannot be entered.
fn is_path_error(name: &str) -> bool {
    matches!(
        name,
        "FileNotFoundError" | "NotADirectoryError" | "PermissionError"
    )
}

/// The Python set-up cell.
fn python_cell(env: &[(String, String)], cwd: Option<&str>) -> Result<String, Error> {
    let mut cell = install_code();
    cell.push_str("\nimport os as __e2b_os\n");
    if !env.is_empty() {
        envs::validate(env)?;
        cell.push_str(&format!(
            "__e2b_os.environ.update({})\n",
            envs::py_dict(env)
        ));
    }
    if let Some(cwd) = cwd {
        let quoted = Value::String(cwd.to_string());
        cell.push_str(&format!(
            "__e2b_os.chdir(__e2b_os.path.join(__import__('__e2b_hook').root, {quoted}))\n"
        ));
    }
    cell.push_str("del __e2b_os");
    Ok(cell)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_python_cell_installs_sets_and_changes_directory() {
        let cell = python_cell(&[("A".into(), "1".into())], Some("work")).unwrap();
        assert!(cell.starts_with("exec("), "{cell}");
        assert!(cell.contains(r#"environ.update({"A":"1"})"#), "{cell}");
        assert!(cell.contains(r#".root, "work"))"#), "{cell}");
        assert!(python_cell(&[("A=B".into(), "1".into())], None).is_err());
    }
}
