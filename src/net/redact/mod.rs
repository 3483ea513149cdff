//! Secrets kept out of logs and `Debug` output, where ureq and tungstenite would show them.
//!
//! # The guarantee
//!
//! These secrets never appear in a [`log`] record of any target at any level, `trace`
//! included, whether the SDK, ureq, ureq-proto, tungstenite or rustls writes it; nor in the
//! `Debug` output of any SDK type that holds them:
//!
//! - the value of every header an [`Endpoint`](super::Endpoint) carries: a Jupyter server's
//!   token (`Authorization: token …`), E2B's `X-API-KEY`, a sandbox's envd and traffic access
//!   tokens, the headers given to `E2bConfig::header`;
//! - the body of every response read by an [`Http::hiding_bodies`](super::Http::hiding_bodies)
//!   client: E2B's control plane, whose answers carry sandboxes' access tokens;
//! - env var values: in the websocket frames the SDK writes (an execution's metadata, a
//!   kernel's silent set-up cell, a command's request), and in REST request bodies (a
//!   terminal's, E2B's `envVars`);
//! - the payload of every websocket data frame the SDK sends (code, command and terminal input);
//! - the signature of a signed file URL (`E2bSandbox::download_url`, `upload_url`), which is
//!   handed to the caller only: the SDK neither sends nor logs it.
//!
//! Not covered: what a server sends back, which tungstenite logs for every frame it reads and
//! ureq for every response it reads from a client that does not hide bodies (file contents,
//! cell output, and the code of each cell, which a kernel echoes). The README says which
//! targets to keep below `trace` when those can carry keys.
//!
//! # How, crate by crate
//!
//! - ureq (ureq-proto) hex-dumps every request head it writes and every response it reads at
//!   `trace`, and prints each request, headers included, at `debug`. It is handed a random mask
//!   of the same length for each secret header value ([`headers`]); the last transport of the
//!   [`agent`]'s connector chain ([`chain`]), which sees the bytes after ureq has logged them
//!   and before TLS, puts the secrets in place of their masks. With hidden bodies, that transport
//!   takes each response body for itself on its way in and hands ureq as many `*` bytes
//!   ([`bodies`]). ureq logs a request body it sends only when it is chunked; the SDK sends
//!   the bodies that carry env values (JSON) with a known length.
//! - tungstenite's client logs the whole upgrade request at `trace`: the SDK writes it and
//!   reads the answer's head itself ([`upgrade`]).
//! - tungstenite logs every frame it writes at `trace`, payload included: the SDK encodes its
//!   data frames itself, and tungstenite writes only control frames ([`frames`]).
//! - `Debug`: [`Secret`](crate::Secret) prints `***`; endpoints, masked headers, env vars,
//!   configs and options print header and variable names, never values.
//!
//! This depends on ureq's `unversioned` transport API and on what ureq-proto and tungstenite
//! log, neither covered by semver: `Cargo.toml` pins ureq to one minor version and tungstenite
//! (0.x) to one.
//!
//! # The spec
//!
//! `tests/it/apart/secrets_in_logs.rs`, each test in a process of its own whose logger keeps every
//! record of every target at `trace`: with random secrets, it drives a local sandbox through REST,
//! websocket, files, commands and terminal calls across a forced reconnect, over each connector
//! chain (plain TCP, ureq's TLS, the SDK's TLS for a pinned certificate, an isolated sandbox's Unix
//! socket), and an E2B sandbox through its control plane (and asks it for a signed URL), then
//! asserts that no record carries a piece of any secret long enough to identify it, as text or
//! hex-dumped, and that the `Debug` output of what holds them does not either. Each test also
//! checks that ureq and tungstenite did log, so that it cannot pass for want of records.

mod bodies;
mod chain;
mod frames;
mod headers;
pub(crate) mod upgrade;

pub(crate) use bodies::{forget_hidden_body, take_hidden_body};
pub(crate) use chain::agent;
pub(crate) use frames::{DataFrame, Outbox};
pub(crate) use headers::MaskedHeaders;
