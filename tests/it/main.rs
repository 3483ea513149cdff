//! The integration tests that can share one process, in one binary (each binary is ~66 MB of
//! linking). Tests that need a process of their own stay apart: `lifecycle` counts the
//! process's threads, `secrets_in_logs` installs the global logger, `isolation` and
//! `local_venv_rebuild` set environment variables, `output_memory` measures the process's peak
//! memory, and `soak` runs long under heavy load.

#[path = "../support/mod.rs"]
mod support;

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
mod watch;
