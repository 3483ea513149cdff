//! The values the SDK hands back: an execution and its results and charts, a command's result
//! and output, file entries, directory-watch events, terminal events. A leaf layer: both data
//! planes build them and the facade returns them, so they live below both.

pub(crate) mod chart;
pub(crate) mod command;
pub(crate) mod entry;
pub(crate) mod execution;
pub(crate) mod fs_event;
pub(crate) mod terminal;
