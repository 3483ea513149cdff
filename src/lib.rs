//! A synchronous SDK for code-interpreter sandboxes: a stateful Jupyter kernel that streams
//! stdout, stderr and rich results, files and commands, with no async runtime. It drives a
//! local sandbox it starts itself, any Jupyter server, and E2B cloud sandboxes, and it is built
//! for connections that break. Not an official E2B SDK.
//!
//! # Quick start
//!
//! ```no_run
//! use e2b_blocking::{Result, Sandbox};
//!
//! fn main() -> Result<()> {
//!     let sbx = Sandbox::local()?; // a jupyter_server child process, torn down with `sbx`
//!     let exec = sbx.run_code("x = 41\nx + 1")?;
//!     assert_eq!(exec.text(), Some("42"));
//!     Ok(())
//! }
//! ```
//!
//! # Run code
//!
//! [`Sandbox::run_code`] runs a cell in the default Python context and returns an
//! [`Execution`]: rich results ([`RichResult`]: text, HTML, PNG, JSON, charts), stdout and
//! stderr, and the exception if the code raised one. An exception is data, not an `Err`;
//! [`Execution::check`] turns it into [`Error::ExecutionFailed`] when that is what you want.
//!
//! # Stream output, set a timeout
//!
//! [`Sandbox::code`] returns a [`CodeBuilder`]; its callbacks run on the calling thread as output
//! arrives, and `.run()` runs the cell:
//!
//! ```no_run
//! # let sbx = e2b_blocking::Sandbox::local()?;
//! let exec = sbx
//!     .code("for i in range(3): print(i)")
//!     .on_stdout(|m| print!("{}", m.line))
//!     .timeout(std::time::Duration::from_secs(10))
//!     .run()?;
//! assert_eq!(exec.logs.stdout.concat(), "0\n1\n2\n");
//! # Ok::<(), e2b_blocking::Error>(())
//! ```
//!
//! The [`Execution`] keeps the last 16 MiB ([`DEFAULT_MAX_OUTPUT`]) of stdout, of stderr and
//! of rich results, so a flood costs the caller bounded memory; the callbacks see every byte,
//! [`Execution::dropped`] counts what was left out, and [`CodeBuilder::max_output`] changes the
//! cap (commands: [`CommandBuilder::max_output`], [`CommandBuilder::retain_output`]).
//!
//! A timeout is a deadline: the kernel is interrupted and the call returns [`Error::Timeout`]
//! once it is idle, or [`Error::InterruptIgnored`] after [`Timeouts::interrupt_grace`] when the
//! code ignores the interrupt (restart the context, or ask for it with
//! [`CodeBuilder::restart_on_timeout`]).
//!
//! # Contexts
//!
//! Each context is a kernel of its own, with its own state, working directory and env vars:
//! [`Sandbox::create_context`], then [`CodeBuilder::context`]. [`Sandbox::default_context`] is
//! the one `run_code` uses; [`Sandbox::restart_context`] clears a context's state.
//!
//! # Files and commands
//!
//! [`Sandbox::files`] reads, writes, lists, renames and removes files, and uploads or downloads
//! large ones in chunks with progress. [`Sandbox::commands`] runs shell commands (stdout and
//! stderr apart, the exit code as data) or spawns them with a [`CommandHandle`] you can wait on
//! or kill, from any thread.
//!
//! # When connections break
//!
//! One background thread per kernel owns its websocket, answers pings and reconnects with the
//! same session, so the server replays what it buffered, and the kernel's hook replays what
//! was lost in the cut itself: output arrives exactly once and in order, or the call fails with
//! [`Error::OutputLost`] carrying what did arrive. [`Sandbox::connection_state`] and
//! [`Sandbox::watch_connection`] show the connection; [`ReconnectPolicy`] bounds each outage.
//!
//! # Errors
//!
//! One [`Error`] with variants a caller can act on: [`Error::SandboxNotFound`] (make a new
//! sandbox), [`Error::Timeout`] (with the [`TimeoutPhase`] that ran out),
//! [`Error::ConnectionLost`] (retry later), [`Error::Authentication`], [`Error::KernelDisrupted`]
//! and more. The cause, where there is one, is in `source()`.
//!
//! # Backends
//!
//! - **Local** ([`Sandbox::local`]): the SDK starts `jupyter server` with a random token and a
//!   fresh root directory. It finds a Python with jupyter_server and ipykernel via
//!   `E2B_LOCAL_PYTHON`, or builds a venv once in the user's cache dir. See [`local`].
//! - **An existing Jupyter server** ([`Sandbox::jupyter`]): jupyter_server, Jupyter Kernel
//!   Gateway or Enterprise Gateway; the sandbox starts its own kernels and shuts only those down.
//! - **E2B** ([`Sandbox::create`], [`SandboxBuilder::e2b_with`]): a cloud sandbox created on
//!   E2B's control plane and reached through its proxy, over E2B's data plane (envd and the
//!   code-interpreter server) or, for templates that still serve it, Jupyter on port 8888
//!   ([`Sandbox::data_plane`] says which; [`E2bConfig::data_plane`] chooses). See
//!   [`e2b`].
//!
//! # Where things are
//!
//! What every backend shares is at the crate root: the [`Sandbox`] and its builder, code
//! ([`Execution`], [`RichResult`]), files, commands, terminals, contexts, connection state,
//! configuration and [`Error`]. What belongs to one backend or one kind of result is in a
//! module of its own: [`e2b`] (the control plane, pause and resume, snapshots, networking),
//! [`local`] (isolation, resource limits, the local sandbox's own calls) and [`chart`] (the
//! charts extracted from matplotlib figures). The options of the backends' constructors,
//! [`LocalOptions`], [`Isolation`], [`E2bConfig`] and [`E2bOptions`], are at the root too.
//!
//! # Threads and handles
//!
//! [`Sandbox`] is a cheap `Clone` handle, `Send + Sync`: clone it into threads; the sandbox is
//! torn down by [`Sandbox::kill`]/[`Sandbox::close`] or when the last clone is dropped.
//! Callbacks never run on the connection threads, so they need not be `Send` (those of a spawned
//! command must be, since its handle can move), and a slow or panicking callback cannot stall a
//! connection.
//!
//! # Logging
//!
//! Through the `log` crate: `debug` for connects, reconnects and closes, `trace` per message,
//! `warn` for handled oddities. When a local sandbox stops, what its jupyter_server logged at
//! warning level or above (a kernel that did not answer, a traceback) is logged at `debug`,
//! since the server's log goes with its directory. Tokens and API keys never appear in logs or
//! `Debug` output.
//!
//! # Platforms
//!
//! Unix only today (Linux is tested; macOS builds): the connection loop waits on raw file
//! descriptors and the local sandbox manages process groups.

// One module needs `unsafe` (backend/local/child.rs: code between fork and exec); it says so.
#![deny(unsafe_code)]
#![deny(missing_docs)]
// `cargo doc` (CI denies its warnings): every intra-doc link resolves, no item's doc is lost.
#![warn(
    rustdoc::broken_intra_doc_links,
    rustdoc::private_intra_doc_links,
    rustdoc::missing_crate_level_docs,
    rustdoc::invalid_codeblock_attributes,
    rustdoc::bare_urls,
    rustdoc::unescaped_backticks
)]
#![warn(missing_debug_implementations)]

#[cfg(not(unix))]
compile_error!("e2b-blocking supports Unix only today (Linux is tested, macOS builds)");

mod backend;
mod commands;
mod config;
mod context;
mod env_vars;
mod error;
mod exec;
mod files;
mod jupyter;
mod kernel;
mod model;
mod net;
mod output;
mod plane;
mod pty;
mod sandbox;
mod sync;

pub use backend::e2b::{E2bConfig, E2bOptions};
pub use backend::jupyterhub::JupyterHubOptions;
pub use backend::local::{Isolation, LocalOptions};
pub use commands::{CommandBuilder, CommandHandle, Commands, OutputIter, ProcessInfo};
pub use config::{ConnectionConfig, Keepalive, ReconnectPolicy, Secret, Timeouts};
pub use context::{Context, ContextOptions};
pub use error::{BoxError, Error, KernelEvent, Report, TimeoutPhase};
pub use exec::code::CodeBuilder;
pub use files::watch::{DEFAULT_WATCH_CAPACITY, WatchBuilder, WatchHandle};
pub use files::{Download, Files, Upload};
pub use jupyter::state::{CloseReason, ConnectionState, ConnectionWatch};
pub use model::command::{CommandOutput, CommandResult};
pub use model::entry::{EntryInfo, FileType};
pub use model::execution::{
    Continuity, Execution, ExecutionError, Logs, OutputMessage, RichResult,
};
pub use model::fs_event::{FsEvent, FsEventKind};
pub use model::terminal::{PtyEnd, PtyEvent, PtyGap};
pub use output::{DEFAULT_MAX_OUTPUT, DroppedOutput};
pub use plane::DataPlane;
pub use pty::{Pty, PtyIter, PtyOptions, PtyResult, PtySize, Terminal};
pub use sandbox::{Host, Sandbox, SandboxBuilder};

/// Charts a kernel extracted from a matplotlib figure ([`RichResult::chart`]), as E2B's
/// code-interpreter models them: a [`Chart`](chart::Chart) of one kind, or a
/// [`SuperChart`](chart::SuperChart) of several.
pub mod chart {
    pub use crate::model::chart::{
        BarChart, BarData, BoxAndWhiskerChart, BoxAndWhiskerData, Chart, ChartValue, PieChart,
        PieData, PointChart, PointData, SuperChart,
    };
}

/// E2B: what only a cloud sandbox has. [`E2bClient`](e2b::E2bClient) for the control plane
/// (list, pause, resume, snapshots, metrics, without a sandbox at hand),
/// [`E2bSandbox`](e2b::E2bSandbox) for one sandbox ([`Sandbox::as_e2b`]), and the options of
/// creating, connecting to, forking, pausing and networking a sandbox. The two every E2B user
/// needs, [`E2bConfig`] and [`E2bOptions`], are also at the crate root.
pub mod e2b {
    pub use crate::backend::e2b::{
        ALL_TRAFFIC, ConnectOptions, DEFAULT_DOMAIN, DEFAULT_LIFETIME, DEFAULT_TEMPLATE, E2bClient,
        E2bConfig, E2bOptions, E2bSandbox, FileUrlOptions, ForkOptions, Lifecycle, ListQuery,
        MAX_FORK_COUNT, MetricsQuery, NetworkInfo, NetworkOptions, NetworkUpdate, OnResume,
        OnTimeout, Order, Paginator, PauseMode, PauseOptions, SandboxAccess, SandboxInfo,
        SandboxLifecycle, SandboxMetric, SandboxPage, SandboxState, SnapshotInfo, SnapshotOptions,
        SnapshotQuery, VolumeMount,
    };
}

/// The local sandbox: [`LocalOptions`] (also at the crate root) with its
/// [`Isolation`] and [`ResourceLimits`](local::ResourceLimits), what only a local sandbox has
/// ([`LocalSandbox`](local::LocalSandbox), from [`Sandbox::as_local`]), and the environment
/// variables it reads.
pub mod local {
    pub use crate::backend::local::{
        CACHE_ENV, Isolation, LocalOptions, LocalSandbox, PYTHON_ENV, ResourceLimits,
    };
}

/// `Result` with this crate's [`Error`] by default, so `fn main() -> Result<()>` works under
/// `use e2b_blocking::*`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The README's Rust blocks, compiled and run as doctests, so that the README keeps working.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
