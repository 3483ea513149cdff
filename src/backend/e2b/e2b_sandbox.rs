//! [`E2bSandbox`]: what only an E2B sandbox has, reached through `Sandbox::as_e2b`.

use std::time::Duration;

use crate::backend::e2b::signature::Operation;
use crate::backend::e2b::{
    ConnectOptions, E2bBackend, FileUrlOptions, MetricsQuery, NetworkUpdate, Paginator,
    PauseOptions, SandboxAccess, SandboxInfo, SandboxMetric, SnapshotInfo, SnapshotOptions,
    SnapshotQuery,
};
use crate::error::Error;

/// The E2B side of a sandbox: its lifetime, pause and resume, snapshots, network rules, signed
/// file URLs, its control-plane record, and whether closing the handle kills it. Get one with
/// [`Sandbox::as_e2b`](crate::Sandbox::as_e2b). Forks are made with
/// [`SandboxBuilder::e2b_fork`](crate::SandboxBuilder::e2b_fork).
///
/// # A handle across pause and resume
///
/// While its sandbox is paused (by [`E2bSandbox::pause`], another client, or the lifecycle's
/// `on_timeout` pause) nothing in it answers, and E2B's proxy says "not found" to every
/// request. A call that needs the sandbox then fails fast with [`Error::SandboxPaused`]
/// (the SDK asks the control plane when a connection is lost, instead of retrying until its
/// reconnect budget ends), unless the handle auto-resumes
/// ([`Lifecycle::auto_resume`](crate::e2b::Lifecycle::auto_resume) at creation, or
/// [`E2bSandbox::set_auto_resume`]): then it resumes the sandbox through connect first.
/// After [`E2bSandbox::resume`] the same handle works again; a full pause keeps kernel state
/// (variables, running processes), a file-system-only one does not.
#[derive(Debug, Clone, Copy)]
pub struct E2bSandbox<'a> {
    backend: &'a E2bBackend,
}

impl<'a> E2bSandbox<'a> {
    pub(crate) fn new(backend: &'a E2bBackend) -> Self {
        E2bSandbox { backend }
    }

    /// Sets how long the sandbox lives from now (E2B's `set_timeout`), apart from the
    /// request deadlines in [`Timeouts`](crate::Timeouts); it can shorten it too.
    ///
    /// # Errors
    ///
    /// [`Error::SandboxNotFound`] when the sandbox is gone; [`Error::Authentication`],
    /// [`Error::RateLimited`], [`Error::ServiceBusy`], [`Error::Http`] or
    /// [`Error::Transport`] from the control plane.
    pub fn set_lifetime(&self, lifetime: Duration) -> Result<(), Error> {
        self.backend.set_lifetime(lifetime)
    }

    /// The sandbox as the control plane sees it now (E2B's `get_info`): state, lifetime,
    /// lifecycle, network, envd version, whether it was paused with an unresponsive guest.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] in debug mode (no control plane); as for
    /// [`E2bSandbox::set_lifetime`].
    pub fn info(&self) -> Result<SandboxInfo, Error> {
        self.backend.info()
    }

    /// Samples of the sandbox's resource use (E2B's `get_metrics`): CPU, memory and disk.
    ///
    /// # Errors
    ///
    /// As for [`E2bSandbox::info`].
    pub fn metrics(&self, query: &MetricsQuery) -> Result<Vec<SandboxMetric>, Error> {
        self.backend.metrics(query)
    }

    /// Pauses the sandbox (E2B's `pause`): `Ok(true)` when this call paused it, `Ok(false)`
    /// when it was paused already. Until [`E2bSandbox::resume`], calls on this handle fail
    /// with [`Error::SandboxPaused`] (or resume it first, with auto-resume on).
    ///
    /// # Errors
    ///
    /// [`Error::ServiceBusy`] for a [strict](PauseOptions::strict) pause whose guest does
    /// not answer (the sandbox keeps running); as for [`E2bSandbox::info`].
    pub fn pause(&self, options: &PauseOptions) -> Result<bool, Error> {
        self.backend.pause(options)
    }

    /// Resumes the sandbox if it is paused (E2B's `connect`), as `options` say, and waits until it
    /// answers again (within [`Timeouts::sandbox_start`](crate::Timeouts::sandbox_start)); on a
    /// running sandbox it only makes sure it lives [`ConnectOptions::lifetime`] more.
    ///
    /// # Errors
    ///
    /// [`Error::GuestUnresponsive`]: resume with
    /// [`OnResume::Reboot`](crate::e2b::OnResume::Reboot); [`Error::Timeout`] (phase
    /// `SandboxStart`) when it does not answer in time; as for [`E2bSandbox::info`].
    pub fn resume(&self, options: &ConnectOptions) -> Result<(), Error> {
        self.backend.resume(options)
    }

    /// Whether this handle resumes its sandbox itself when it finds it paused. Defaults to
    /// the creating options' [`Lifecycle::auto_resume`](crate::e2b::Lifecycle::auto_resume) (off
    /// for a sandbox connected to by id).
    pub fn set_auto_resume(&self, resume: bool) {
        self.backend.set_auto_resume(resume);
    }

    /// [`Error::SandboxPaused`] at once when this handle paused its sandbox, or a resume
    /// first when it auto-resumes; `Ok` otherwise. For code about to use the sandbox after
    /// it may have been paused.
    ///
    /// # Errors
    ///
    /// [`Error::SandboxPaused`]; as for [`E2bSandbox::resume`].
    pub fn ensure_running(&self) -> Result<(), Error> {
        self.backend.ensure_running()
    }

    /// Takes a persistent snapshot of the sandbox (E2B's `create_snapshot`); create sandboxes
    /// from it with [`SnapshotInfo::snapshot_id`] as the template. The sandbox keeps running.
    ///
    /// # Errors
    ///
    /// As for [`E2bSandbox::info`].
    pub fn create_snapshot(&self, options: &SnapshotOptions) -> Result<SnapshotInfo, Error> {
        self.backend.create_snapshot(options)
    }

    /// The snapshots taken of this sandbox (E2B's `list_snapshots`), page after page as they
    /// are iterated; the query's own sandbox filter is replaced by this sandbox.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] in debug mode; the pages' errors come from the iterator.
    pub fn list_snapshots(&self, query: &SnapshotQuery) -> Result<Paginator<SnapshotInfo>, Error> {
        self.backend.list_snapshots(query)
    }

    /// Replaces the sandbox's egress rules (E2B's `update_network`): what `update` leaves
    /// unset is cleared.
    ///
    /// # Errors
    ///
    /// As for [`E2bSandbox::info`].
    pub fn update_network(&self, update: &NetworkUpdate) -> Result<(), Error> {
        self.backend.update_network(update)
    }

    /// A URL that downloads `path` from the sandbox with a plain `GET` (E2B's
    /// `download_url`), signed with the sandbox's access token (E2B's `v1` scheme) so that it
    /// needs no other credentials; it expires when `options` say. Made locally: no request.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for an expiry on a sandbox without an access token.
    pub fn download_url(&self, path: &str, options: &FileUrlOptions) -> Result<String, Error> {
        self.backend.file_url(path, Operation::Read, options)
    }

    /// A URL that uploads `path` to the sandbox with a multipart `POST` (E2B's
    /// `upload_url`); signed as [`E2bSandbox::download_url`] is.
    ///
    /// # Errors
    ///
    /// As for [`E2bSandbox::download_url`].
    pub fn upload_url(&self, path: &str, options: &FileUrlOptions) -> Result<String, Error> {
        self.backend.file_url(path, Operation::Write, options)
    }

    /// Whether closing (or dropping the last clone of) the handle kills the sandbox: `true`
    /// for a created sandbox and `false` for one connected to by id, until changed. `false`
    /// detaches: the sandbox lives on until its lifetime ends, and only the kernels this
    /// handle started are shut down.
    pub fn set_kill_on_close(&self, kill: bool) {
        self.backend.set_kill_on_close(kill);
    }

    /// See [`E2bSandbox::set_kill_on_close`].
    pub fn kills_on_close(&self) -> bool {
        self.backend.kills_on_close()
    }

    /// What the control plane returned when the sandbox was created or connected to (ids,
    /// envd version, tokens as [`Secret`](crate::Secret)s).
    pub fn access(&self) -> &'a SandboxAccess {
        self.backend.access()
    }
}
