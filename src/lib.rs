//! A synchronous SDK for code-interpreter sandboxes: a stateful Jupyter kernel that streams
//! stdout, stderr and rich results, with no async runtime.
//!
//! # Quick start
//!
//! ```no_run
//! use e2b_blocking::Sandbox;
//!
//! let sbx = Sandbox::local()?; // a jupyter_server child process on 127.0.0.1
//! sbx.run_code("x = 41")?;
//! let exec = sbx.run_code("x + 1")?;
//! assert_eq!(exec.text(), Some("42"));
//!
//! let exec = sbx
//!     .run("for i in range(3): print(i)")
//!     .on_stdout(|m| print!("{}", m.line))
//!     .timeout(std::time::Duration::from_secs(10))
//!     .send()?;
//! assert_eq!(exec.logs.stdout.concat(), "0\n1\n2\n");
//! # Ok::<(), e2b_blocking::Error>(())
//! ```
//!
//! A Python exception is not an `Err`: it is [`Execution::error`]. An `Err` means the SDK
//! could not do what was asked (see [`Error`]).
//!
//! # Backends
//!
//! - **Local** ([`Sandbox::local`]): the SDK starts `jupyter server` on 127.0.0.1 with a random
//!   token and a fresh root directory. It finds a Python with jupyter_server and ipykernel via
//!   `E2B_LOCAL_PYTHON`, or builds a venv once in the user's cache dir (`E2B_LOCAL_CACHE`
//!   overrides where). Dropping the sandbox kills the server and its kernels.
//!
//! # Threads
//!
//! Each kernel connection is owned by one background thread that reads, writes, answers
//! pings and reconnects. Calls hand it requests over a channel and wake it at once; replies come
//! back on a channel per request. User callbacks (`on_stdout`, …) run on the calling thread
//! while it waits, never on the worker, so they need not be `Send` and a slow or panicking
//! callback cannot stall the connection.
//!
//! # Logging
//!
//! Through the `log` crate: `debug` for connects, reconnects and closes, `trace` per message,
//! `warn` for handled oddities. Tokens and API keys never appear in logs or `Debug` output.

#![deny(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

mod backend;
mod commands;
mod config;
mod conn;
mod context;
mod driver;
mod envs;
mod error;
mod execution;
#[cfg(feature = "ffi")]
#[allow(unsafe_code)] // the C ABI must take raw pointers and export unmangled symbols
mod ffi;
mod files;
mod http;
mod jupyter;
mod kernel;
mod mask;
mod recovery;
mod retry;
mod run;
mod sandbox;

pub use backend::e2b::{
    DEFAULT_DOMAIN, DEFAULT_LIFETIME, DEFAULT_TEMPLATE, E2bClient, E2bConfig, E2bOptions,
    ListQuery, SandboxAccess, SandboxInfo, SandboxLifecycle, SandboxPage, SandboxState,
};
pub use backend::local::{CACHE_ENV, Isolation, LocalOptions, PYTHON_ENV, ResourceLimits};
pub use commands::{
    CommandBuilder, CommandHandle, CommandOutput, CommandResult, Commands, OutputIter,
};
pub use config::{ConnectionConfig, Keepalive, ReconnectPolicy, Secret, Timeouts};
pub use context::{Context, ContextOptions};
pub use error::{BoxError, Error, KernelEvent, TimeoutPhase};
pub use execution::{Continuity, Execution, ExecutionError, Logs, OutputMessage, Result};
pub use files::{Download, EntryInfo, FileType, Files, Upload};
pub use jupyter::state::{CloseReason, ConnectionState};
pub use run::RunBuilder;
pub use sandbox::{Sandbox, SandboxBuilder};

/// The README's Rust blocks, compiled and run as doctests, so that the README keeps working.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
