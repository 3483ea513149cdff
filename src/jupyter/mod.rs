//! Everything Jupyter-specific: REST calls, message framing, and the connection worker.

pub(crate) mod accumulate;
pub(crate) mod connection;
pub(crate) mod delivery;
pub(crate) mod link;
pub(crate) mod liveness;
pub(crate) mod rest;
pub(crate) mod routes;
pub(crate) mod state;
pub(crate) mod websocket;
pub(crate) mod wire;
pub(crate) mod worker;

#[cfg(test)]
mod faults_tests;
