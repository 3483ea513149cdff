//! The sandbox's private helper kernel (`helper.py`): file operations the contents API of a
//! server with default settings refuses or gets wrong (removing for good instead of moving to
//! the trash, hidden paths, paths outside the root, the root's absolute path), and listing
//! and killing commands.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::error::Error;
use crate::exec::driver::Driver;
use crate::jupyter::wire::Outgoing;
use crate::kernel::{Kernel, finish_silent};
use crate::sandbox::Sandbox;

const HELPER: &str = include_str!("helper.py");

/// Bytes per request through the kernel: base64 of this stays well under jupyter_server's
/// 10 MiB websocket message limit.
pub(crate) const PIECE: usize = 4 << 20;

/// Runs one operation (`{"op": …, "path": …}`) and returns its result object, or the typed
/// file error it failed with.
pub(crate) fn call(sandbox: &Sandbox, op: Value) -> Result<Value, Error> {
    let path = op["path"].as_str().unwrap_or("").to_string();
    let pool = sandbox.system_kernels();
    let kernel = pool.acquire(sandbox)?;
    if let Err(e) = sandbox.ensure_prepared(&kernel) {
        pool.release(sandbox, kernel, false);
        return Err(e);
    }
    let outcome = run(&kernel, &op, sandbox.config().timeouts.request);
    // A timed-out or failed call may leave the cell running: do not reuse that kernel.
    pool.release(sandbox, kernel, outcome.is_ok());
    let out = outcome?;
    if let Some(ok) = out.get("ok") {
        return Ok(ok.clone());
    }
    // A batch names the path it failed at.
    let path = out["path"].as_str().map_or(path, str::to_string);
    let shown = if path.is_empty() { ".".into() } else { path };
    Err(match out["error"].as_str().unwrap_or("") {
        "not_found" => Error::FileNotFound { path: shown },
        "not_a_directory" => Error::NotADirectory { path: shown },
        "is_a_directory" => Error::IsADirectory { path: shown },
        "permission_denied" => Error::PermissionDenied { path: shown },
        "not_a_file" => Error::InvalidArgument(format!(
            "{shown} is not a regular file (a FIFO, socket or device); use a command for it"
        )),
        "exists" => Error::Http {
            status: 409,
            endpoint: format!("{} in the sandbox", op["op"].as_str().unwrap_or("file op")),
            message: format!("{} already exists", op["to"].as_str().unwrap_or("")),
        },
        _ => Error::Io {
            path: shown,
            source: std::io::Error::other(out["message"].as_str().unwrap_or("").to_string()),
        },
    })
}

/// Sends the helper and the call as one silent cell through the shared execution driver (so
/// it survives reconnects like any cell), reading the result from `user_expressions`: no output
/// message, so no IOPub rate limit is involved.
fn run(kernel: &Arc<Kernel>, op: &Value, timeout: Duration) -> Result<Value, Error> {
    let literal = Value::String(op.to_string()).to_string();
    let code = format!("{HELPER}\n__e2b_fs_out = __e2b_fs(__import__('json').loads({literal}))");
    let mut msg = Outgoing::execute(kernel.conn.session_id(), &code, true);
    msg.content["user_expressions"] = json!({ "out": "__e2b_fs_out" });
    let reply = finish_silent(&mut Driver::send(kernel.clone(), msg)?, timeout)?;
    decode(kernel, &reply)
}

pub(crate) fn decode(kernel: &Kernel, reply: &Value) -> Result<Value, Error> {
    let bad = |what: &str| Error::KernelSetup {
        kernel_id: kernel.id.clone(),
        message: format!("file operation: {what}"),
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
    serde_json::from_slice(&bytes).map_err(|e| Error::protocol_from("file operation result", e))
}

/// `content` as base64, for a `write` operation.
pub(crate) fn encode(content: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(content)
}

/// Bytes of a `read` operation's `data`.
pub(crate) fn decode_data(result: &Value) -> Result<Vec<u8>, Error> {
    base64::engine::general_purpose::STANDARD
        .decode(result["data"].as_str().unwrap_or(""))
        .map_err(|_| Error::protocol("file content from the kernel is not base64"))
}
