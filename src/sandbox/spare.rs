//! The local sandbox's opt-in warm spare ([`LocalOptions::warm_spare`]): a sandbox started in
//! the background with the settings of a start that asked for one, handed to the next start
//! with equal settings, which then starts the next spare behind it.

use std::sync::Mutex;
use std::thread::JoinHandle;

use super::{Sandbox, SandboxBuilder};
use crate::backend::Liveness;
use crate::backend::local::LocalOptions;
use crate::error::Error;
use crate::sync::lock;

/// One spare being started, or ready in its thread's result.
struct Spare {
    builder: SandboxBuilder,
    options: LocalOptions,
    start: JoinHandle<Result<Sandbox, Error>>,
}

/// At most one spare per distinct settings. Not dropped at exit: a spare's server watches the
/// SDK's process and ends with it, and the next SDK process sweeps its directory.
static SPARES: Mutex<Vec<Spare>> = Mutex::new(Vec::new());

/// The spare started with these settings, once it is up (waiting for it if it is still
/// starting: it is ahead of a start begun now); `None` when there is none, or it failed or
/// died meanwhile (then it is torn down).
pub(super) fn take(builder: &SandboxBuilder, options: &LocalOptions) -> Option<Sandbox> {
    let spare = {
        let mut spares = lock(&SPARES);
        let at = spares
            .iter()
            .position(|s| s.builder == *builder && s.options == *options)?;
        spares.swap_remove(at)
    };
    match spare.start.join() {
        Ok(Ok(sandbox)) if sandbox.backend_shared().probe() != Liveness::Gone => {
            log::debug!(
                "took the warm spare {}",
                sandbox.backend_shared().sandbox_id()
            );
            Some(sandbox)
        }
        Ok(Ok(dead)) => {
            log::warn!("the warm spare sandbox died before it was taken; starting another");
            drop(dead);
            None
        }
        Ok(Err(e)) => {
            log::warn!("the warm spare sandbox did not start ({e}); starting another");
            None
        }
        Err(_) => None,
    }
}

/// Starts a spare with these settings in the background, unless one is there already. A spare
/// that cannot get a thread is simply not there.
pub(super) fn replenish(builder: &SandboxBuilder, options: &LocalOptions) {
    let mut spares = lock(&SPARES);
    if spares
        .iter()
        .any(|s| s.builder == *builder && s.options == *options)
    {
        return;
    }
    let (b, o) = (builder.clone(), options.clone());
    let start = std::thread::Builder::new()
        .name("e2b-local-spare".into())
        .spawn(move || b.start_local(&o));
    match start {
        Ok(start) => spares.push(Spare {
            builder: builder.clone(),
            options: options.clone(),
            start,
        }),
        Err(e) => log::warn!("could not start a warm spare sandbox: {e}"),
    }
}
