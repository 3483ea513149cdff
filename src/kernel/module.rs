//! The SDK's own Python modules in a kernel (`helper.py`, `watch.py`, the command runner, the
//! stdin writer): each is installed in `sys.modules` on first use in a kernel (again after a
//! restart) and called by function name with its arguments as JSON data, never spliced into
//! Python source.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::error::Error;
use crate::jupyter::wire::Outgoing;
use crate::kernel::driver::Driver;
use crate::kernel::{Kernel, finish_silent};
use crate::sync::lock;

/// One of the SDK's Python modules: its `sys.modules` name and its source, which installs it
/// there when run (each file ends with an `_install()`).
#[derive(Debug)]
pub(crate) struct PyModule {
    pub(crate) name: &'static str,
    /// What its calls do, for errors ("file operation").
    pub(crate) about: &'static str,
    pub(crate) source: &'static str,
}

impl PyModule {
    /// A cell that installs the module if the kernel lacks it, then calls
    /// `function(*args)`, binding what it returns to `bind` when given. The source travels as
    /// one string literal, which IPython's input transformers pass over cheaply, and is
    /// compiled only when the module is missing.
    pub(crate) fn cell(&self, function: &str, args: &[Value], bind: Option<&str>) -> String {
        let name = Value::String(self.name.into());
        let source = Value::String(self.source.into());
        let install = Value::String(format!("{}_install", self.name));
        let args = Value::String(Value::Array(args.to_vec()).to_string());
        let bind = bind.map(|b| format!("{b} = ")).unwrap_or_default();
        format!(
            "import sys as __e2b_sys\n\
             if {name} not in __e2b_sys.modules:\n    \
             exec({source}, {{'__name__': {install}}})\n\
             {bind}__e2b_sys.modules[{name}].{function}(*__import__('json').loads({args}))\n"
        )
    }

    /// The cell for a kernel that has the module already: the call alone.
    fn call_only(&self, function: &str, args: &[Value]) -> String {
        let name = Value::String(self.name.into());
        let args = Value::String(Value::Array(args.to_vec()).to_string());
        format!(
            "__e2b_out = __import__('sys').modules[{name}].{function}(\
             *__import__('json').loads({args}))\n"
        )
    }

    /// Calls `function(*args)` in `kernel` as one silent cell through the execution driver (so
    /// a reply lost in a cut is recovered), installing the module first where the kernel lacks
    /// it. The function returns base64 of a JSON value, read back through
    /// `user_expressions`: no output message, so no IOPub rate limit is involved.
    pub(crate) fn call(
        &self,
        kernel: &Arc<Kernel>,
        function: &str,
        args: &[Value],
        timeout: Duration,
    ) -> Result<Value, Error> {
        let events = kernel.conn.kernel_events();
        let installed = {
            let modules = lock(&kernel.modules);
            modules.0 == events && modules.1.contains(&self.name)
        };
        let code = if installed {
            self.call_only(function, args)
        } else {
            self.cell(function, args, Some("__e2b_out"))
        };
        let mut msg = Outgoing::execute(kernel.conn.session_id(), &code, true);
        msg.content["user_expressions"] = json!({ "out": "__e2b_out" });
        let reply = finish_silent(&mut Driver::send(kernel.clone(), msg)?, timeout)?;
        let out = decode(kernel, self.about, &reply)?;
        if !installed {
            let mut modules = lock(&kernel.modules);
            if modules.0 != events {
                *modules = (events, Vec::new());
            }
            modules.1.push(self.name);
        }
        Ok(out)
    }
}

/// The JSON value a module's function returned, from a silent cell's reply.
fn decode(kernel: &Kernel, about: &str, reply: &Value) -> Result<Value, Error> {
    let bad = |what: &str| Error::KernelSetup {
        kernel_id: kernel.id.clone(),
        message: format!("{about}: {what}"),
    };
    if reply["status"] != "ok" {
        return Err(bad(&format!(
            "{}: {}",
            reply["ename"].as_str().unwrap_or("error"),
            reply["evalue"].as_str().unwrap_or("")
        )));
    }
    let out = &reply["user_expressions"]["out"];
    if out["status"] != "ok" {
        return Err(bad("no result"));
    }
    // The repr of an ASCII-only base64 string: the text between the quotes.
    let repr = out["data"]["text/plain"].as_str().unwrap_or("");
    let b64 = repr.trim_matches(['\'', '"']);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| bad("result is not base64"))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::protocol_from(format!("{about} result"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODULE: PyModule = PyModule {
        name: "__e2b_test",
        about: "test",
        source: "def f(a):\n    return a\n",
    };

    #[test]
    fn arguments_travel_as_json_data() {
        let cell = MODULE.cell("f", &[json!("it's \"quoted\"\n")], Some("__e2b_out"));
        assert_eq!(cell.lines().count(), 4, "{cell}");
        assert!(
            cell.contains("__e2b_out = __e2b_sys.modules[\"__e2b_test\"].f("),
            "{cell}"
        );
        // The argument is inside one JSON string literal: the cell holds no code of the caller.
        assert!(
            cell.contains(r#"loads("[\"it's \\\"quoted\\\"\\n\"]")"#),
            "{cell}"
        );
        let call = MODULE.call_only("f", &[json!(1)]);
        assert_eq!(call.lines().count(), 1, "{call}");
    }
}
