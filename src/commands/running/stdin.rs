//! A command's stdin: writes and the close, each one cell in another private kernel (the
//! command's own is busy running it) calling `stdin.py`.

use serde_json::json;

use super::Running;
use crate::error::Error;
use crate::kernel::fault::SandboxFault;
use crate::kernel::module::PyModule;
use crate::kernel::pool;

const STDIN: PyModule = PyModule {
    name: "__e2b_stdin",
    about: "writing to stdin",
    source: include_str!("stdin.py"),
};

impl Running<'_> {
    pub(in crate::commands) fn send_stdin(&mut self, data: &[u8]) -> Result<(), Error> {
        let dir = self.stdin_target()?;
        if !self.stdin_open || self.ending.is_some() {
            return Err(Error::StdinClosed);
        }
        for piece in data.chunks(crate::kernel::helper::PIECE) {
            match self.stdin_cell(&format!("{dir}/in"), piece) {
                Ok(()) => {}
                Err(Error::StdinClosed) => {
                    self.stdin_open = false;
                    return Err(Error::StdinClosed);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub(in crate::commands) fn close_stdin(&mut self) -> Result<(), Error> {
        let dir = self.stdin_target()?;
        if !self.stdin_open || self.ending.is_some() {
            return Ok(());
        }
        match self.stdin_cell(&format!("{dir}/ctl"), b"c") {
            Ok(()) | Err(Error::StdinClosed) => {
                self.stdin_open = false;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The FIFO directory, or why there is none.
    fn stdin_target(&self) -> Result<String, Error> {
        if !self.wants_stdin {
            return Err(Error::InvalidArgument(
                "the command was not started with stdin(true)".into(),
            ));
        }
        self.stdin_dir
            .clone()
            .ok_or_else(|| Error::protocol("the command runner reported no stdin FIFO"))
    }

    /// Writes `data` to the FIFO at `path` from another private kernel (this command's kernel
    /// is busy running it). A FIFO without a reader, or one removed, means the command is gone.
    fn stdin_cell(&self, path: &str, data: &[u8]) -> Result<(), Error> {
        let args = [json!(path), json!(crate::kernel::helper::encode(data))];
        let out = pool::call(&self.sandbox, &STDIN, "write", &args)?;
        if out.get("ok").is_some() {
            return Ok(());
        }
        Err(
            SandboxFault::of(&out, path).to_error("writing to stdin", |message| {
                Error::protocol(format!("writing to stdin: {message}"))
            }),
        )
    }
}
