//! The sandbox's private helper module (`helper.py`): file operations the contents API of a
//! server with default settings refuses or gets wrong (removing for good instead of moving to
//! the trash, hidden paths, paths outside the root, the root's absolute path), and listing
//! and killing commands.

use base64::Engine;
use serde_json::Value;

use crate::error::Error;
use crate::kernel::fault::SandboxFault;
use crate::kernel::module::PyModule;
use crate::kernel::pool::{self, KernelSource};

const HELPER: PyModule = PyModule {
    name: "__e2b_fs",
    about: "file operation",
    source: include_str!("helper.py"),
};

/// Bytes per request through the kernel: base64 of this stays well under jupyter_server's
/// 10 MiB websocket message limit.
pub(crate) const PIECE: usize = 4 << 20;

/// Runs one operation (`{"op": …, "path": …}`) in a private kernel of `source` and returns its
/// result object, or the typed file error it failed with.
pub(crate) fn call(source: &impl KernelSource, op: Value) -> Result<Value, Error> {
    let out = pool::call(source, &HELPER, "run", std::slice::from_ref(&op))?;
    if let Some(ok) = out.get("ok") {
        return Ok(ok.clone());
    }
    // A batch names the path it failed at.
    let fault = SandboxFault::of(&out, op["path"].as_str().unwrap_or(""));
    let what = op["op"].as_str().unwrap_or("file op");
    Err(fault.to_error(what, |message| Error::Io {
        path: fault.shown_path(),
        source: std::io::Error::other(message.to_string()),
    }))
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
