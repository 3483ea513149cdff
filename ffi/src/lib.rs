//! The C ABI of e2b-blocking: the functions declared in `include/e2b_blocking.h`, built as
//! `libe2b_blocking_ffi.so` / `.a` (`cargo build --release -p e2b-blocking-ffi`).
//!
//! The header is generated from this crate by cbindgen (`tests/header.rs` checks it is up to
//! date), so the doc comments here are the C documentation. The rules every function keeps:
//!
//! - no panic crosses the boundary: each body runs in `error::guard`, which turns a panic
//!   into `E2B_ERR_PANIC`;
//! - NULL, a 0 handle and invalid UTF-8 give error codes, never undefined behaviour;
//! - sandboxes are integer ids in a registry, never pointers, so a destroyed or made-up handle
//!   gives `E2B_ERR_CLOSED` instead of a use-after-free;
//! - every string returned is owned by the caller and freed with `e2b_string_free`, every
//!   byte buffer with `e2b_bytes_free`.

// `cargo doc` (CI denies its warnings): the doc comments are the C documentation too.
#![deny(missing_docs)]
#![warn(rustdoc::broken_intra_doc_links, rustdoc::private_intra_doc_links)]
#![warn(rustdoc::bare_urls, rustdoc::unescaped_backticks)]

// Panics become E2B_ERR_PANIC and callbacks stop runs by unwinding: both need unwinding.
#[cfg(panic = "abort")]
compile_error!("the C ABI needs panic = \"unwind\" (the default)");

// Declared in the order the header presents them (cbindgen follows this order).
mod error;
mod last_error;

mod registry;
mod sandbox;

mod lifecycle;

mod callbacks;
mod run;

mod files;

mod commands;
mod watch;

mod pty;

mod host;

mod args;
mod options;
#[cfg(test)]
mod tests;

pub use callbacks::{E2bOutputFn, E2bRunCallbacks};
pub use commands::*;
pub use error::E2bErrorCode;
pub use files::*;
pub use host::*;
pub use last_error::*;
pub use lifecycle::*;
pub use pty::*;
pub use registry::E2bSandbox;
pub use run::*;
pub use sandbox::*;
pub use watch::*;
