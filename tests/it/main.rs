//! The integration tests, in one binary (each binary is ~66 MB of linking, and cargo runs
//! binaries one after another while the tests of one binary run side by side). A test that
//! needs a process of its own (it counts the process's threads, installs the global logger,
//! sets environment variables or measures peak memory) runs itself in a child process through
//! `support::own_process::in_own_process`.

#[path = "../support/mod.rs"]
mod support;

mod apart;
mod commands;
mod contexts;
mod e2b_contract;
mod e2b_local;
mod e2b_official_sdk;
mod e2b_pause;
mod e2b_plane;
mod e2b_plane_commands;
mod e2b_plane_faults;
mod e2b_plane_files;
mod faults;
mod files;
mod files_paths;
mod first_kernel;
mod isolation;
mod jupyter_backend;
mod jupyterhub;
mod kills;
mod local_python;
mod local_server;
mod malformed;
mod nginx;
mod pty;
mod rich;
mod run_code;
mod soak;
mod watch;
