//! Tests that need a process of their own: each reruns itself alone in a child process
//! (`support::own_process`). Three of the four are among the longest tests, and libtest starts
//! tests in the order of their names, so being first under `apart::` starts them first, beside
//! the others, rather than last and alone.

mod lifecycle;
mod output_memory;
mod secrets_in_logs;
mod venv_rebuild;
