//! What happens to a sandbox over time: what its timeout does (kill or pause), how it is
//! paused, resumed, connected to and forked. Plain settings with [`Default`], checked the way
//! E2B's SDK 2.63 checks them before anything is sent.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;

use super::models::whole_seconds;

/// The most forks one call makes (E2B's SDK's bound; the API's own is higher).
pub const MAX_FORK_COUNT: u32 = 20;

/// What a pause or snapshot keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum PauseMode {
    /// Memory and file system: running processes, kernel state and open connections come back
    /// on resume.
    Full,
    /// The file system only: smaller and faster; resuming cold-boots the sandbox from disk, so
    /// processes and in-memory state (a kernel's variables) are gone.
    Filesystem,
    /// A mode this SDK does not know yet.
    #[serde(other)]
    Unknown,
}

impl PauseMode {
    /// The API's `memory` flag: whether the memory is kept.
    fn memory(self) -> Result<bool, Error> {
        match self {
            PauseMode::Full => Ok(true),
            PauseMode::Filesystem => Ok(false),
            PauseMode::Unknown => Err(Error::InvalidArgument(
                "PauseMode::Unknown cannot be asked for".into(),
            )),
        }
    }
}

/// What the sandbox's timeout does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OnTimeout {
    /// Kill the sandbox (the API's default).
    Kill,
    /// Pause it, to be resumed later; [`Lifecycle::pause_mode`] says what is kept.
    Pause,
}

/// How a paused sandbox comes back (`on_resume` in E2B's SDKs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OnResume {
    /// Restore the memory snapshot: processes and kernel state survive the pause (the default).
    #[default]
    Restore,
    /// Ignore any memory in the snapshot and cold-boot from disk, where writes not flushed
    /// before the pause may be lost: the way back for a sandbox paused while its guest agent
    /// did not answer ([`Error::GuestUnresponsive`]). Refused by a control plane where
    /// file-system-only resume is not enabled.
    Reboot,
}

impl OnResume {
    /// The API's `memory` flag: omitted for a restore (its default), `false` for a reboot.
    pub(crate) fn memory(self) -> Option<bool> {
        match self {
            OnResume::Restore => None,
            OnResume::Reboot => Some(false),
        }
    }
}

/// A sandbox's lifecycle when created (E2B's `lifecycle` option). Everything left unset is the
/// API's choice: today a timeout kills and nothing auto-resumes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lifecycle {
    pub(crate) on_timeout: Option<OnTimeout>,
    pub(crate) pause_mode: Option<PauseMode>,
    pub(crate) auto_resume: Option<bool>,
}

impl Lifecycle {
    /// Everything the API's choice.
    pub fn new() -> Self {
        Self::default()
    }

    /// What the timeout does. Defaults to unset: the API's default, which is to kill.
    pub fn on_timeout(mut self, on_timeout: OnTimeout) -> Self {
        self.on_timeout = Some(on_timeout);
        self
    }

    /// What the timeout's pause keeps; only with [`OnTimeout::Pause`]. Defaults to unset: the
    /// API's default, a full pause.
    pub fn pause_mode(mut self, mode: PauseMode) -> Self {
        self.pause_mode = Some(mode);
        self
    }

    /// Whether traffic to the paused sandbox resumes it: `true` needs [`OnTimeout::Pause`] and
    /// a full pause (a file-system-only one must be resumed explicitly). A handle created with
    /// `true` also resumes its sandbox itself when it finds it paused. Defaults to unset: the
    /// API's choice (off); `false` opts out explicitly.
    pub fn auto_resume(mut self, auto_resume: bool) -> Self {
        self.auto_resume = Some(auto_resume);
        self
    }

    /// True when the sandbox is to resume itself on traffic.
    pub(crate) fn resumes(&self) -> bool {
        self.auto_resume == Some(true)
    }

    /// The create request's `autoPause`, `autoPauseMemory` and `autoResume`, after the same
    /// checks as E2B's SDK.
    pub(crate) fn body(&self) -> Result<LifecycleBody, Error> {
        let pausing = self.on_timeout == Some(OnTimeout::Pause);
        if self.pause_mode.is_some() && !pausing {
            return Err(Error::InvalidArgument(
                "a lifecycle's pause mode needs on_timeout(OnTimeout::Pause)".into(),
            ));
        }
        let memory = self.pause_mode.map(PauseMode::memory).transpose()?;
        if self.resumes() && !pausing {
            return Err(Error::InvalidArgument(
                "auto_resume(true) needs on_timeout(OnTimeout::Pause)".into(),
            ));
        }
        if self.resumes() && memory == Some(false) {
            return Err(Error::InvalidArgument(
                "auto_resume(true) cannot go with PauseMode::Filesystem: a file-system-only \
                 snapshot is not resumed by traffic; resume it with connect"
                    .into(),
            ));
        }
        Ok(LifecycleBody {
            auto_pause: self.on_timeout.map(|t| t == OnTimeout::Pause),
            auto_pause_memory: memory,
            auto_resume: self.auto_resume.map(|enabled| AutoResume { enabled }),
        })
    }
}

/// The lifecycle fields of `NewSandboxV2`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct LifecycleBody {
    pub(crate) auto_pause: Option<bool>,
    pub(crate) auto_pause_memory: Option<bool>,
    pub(crate) auto_resume: Option<AutoResume>,
}

/// `SandboxAutoResumeConfig`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct AutoResume {
    pub(crate) enabled: bool,
}

/// How to pause a sandbox (E2B's `pause`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PauseOptions {
    pub(crate) mode: Option<PauseMode>,
    pub(crate) strict: bool,
}

impl PauseOptions {
    /// A full pause, not strict.
    pub fn new() -> Self {
        Self::default()
    }

    /// What the pause keeps. Defaults to unset: the API's default, a full pause.
    pub fn mode(mut self, mode: PauseMode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Refuse to pause while the sandbox's guest agent does not answer
    /// ([`Error::ServiceBusy`]; the sandbox keeps running), instead of pausing anyway and
    /// leaving a snapshot that only [`OnResume::Reboot`] can resume. Defaults to `false`.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    pub(crate) fn body(&self) -> Result<PauseBody, Error> {
        Ok(PauseBody {
            memory: self.mode.map(PauseMode::memory).transpose()?,
            require_healthy_guest: self.strict.then_some(true),
        })
    }
}

/// `SandboxPauseRequest`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PauseBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    require_healthy_guest: Option<bool>,
}

/// How to connect to a sandbox by id, resuming it if it is paused (E2B's `connect`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectOptions {
    pub(crate) lifetime: Option<Duration>,
    pub(crate) on_resume: OnResume,
}

impl ConnectOptions {
    /// The API's lifetime, restoring memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long the sandbox lives from now at least; a running sandbox's longer remaining
    /// lifetime is kept. Defaults to unset: the API's default (300 s).
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = Some(lifetime);
        self
    }

    /// How a paused sandbox comes back. Defaults to [`OnResume::Restore`]; no effect on a
    /// running sandbox.
    pub fn on_resume(mut self, on_resume: OnResume) -> Self {
        self.on_resume = on_resume;
        self
    }

    pub(crate) fn body(&self) -> Result<ConnectBody, Error> {
        Ok(ConnectBody {
            timeout: self
                .lifetime
                .map(|l| whole_seconds(l, "sandbox lifetime"))
                .transpose()?,
            memory: self.on_resume.memory(),
        })
    }
}

/// `ConnectSandboxV2`.
#[derive(Debug, Serialize)]
pub(crate) struct ConnectBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<bool>,
}

/// How to fork a running sandbox (E2B's `fork`): it is checkpointed in place (briefly paused,
/// its id and lifetime unchanged) and `count` new sandboxes start from that checkpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForkOptions {
    pub(crate) lifetime: Option<Duration>,
    pub(crate) count: Option<u32>,
}

impl ForkOptions {
    /// One fork with the API's lifetime.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long each fork lives. Defaults to unset: the API's default.
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = Some(lifetime);
        self
    }

    /// How many forks, 1 to [`MAX_FORK_COUNT`]; each succeeds or fails on its own. Defaults
    /// to unset: one.
    pub fn count(mut self, count: u32) -> Self {
        self.count = Some(count);
        self
    }

    pub(crate) fn body(&self) -> Result<ForkBody, Error> {
        if let Some(n) = self.count
            && !(1..=MAX_FORK_COUNT).contains(&n)
        {
            return Err(Error::InvalidArgument(format!(
                "a fork count must be 1 to {MAX_FORK_COUNT}, not {n}"
            )));
        }
        Ok(ForkBody {
            timeout: self
                .lifetime
                .map(|l| whole_seconds(l, "fork lifetime"))
                .transpose()?,
            count: self.count,
        })
    }
}

/// `SandboxForkRequest`.
#[derive(Debug, Serialize)]
pub(crate) struct ForkBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u32>,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn json_of(body: impl Serialize) -> Value {
        serde_json::to_value(body).unwrap()
    }

    #[test]
    fn lifecycle_follows_the_sdks_rules() {
        assert_eq!(Lifecycle::new().body().unwrap(), LifecycleBody::default());
        let pause = Lifecycle::new()
            .on_timeout(OnTimeout::Pause)
            .pause_mode(PauseMode::Filesystem)
            .body()
            .unwrap();
        assert_eq!(pause.auto_pause, Some(true));
        assert_eq!(pause.auto_pause_memory, Some(false));
        let kill = Lifecycle::new().on_timeout(OnTimeout::Kill).body().unwrap();
        assert_eq!(
            (kill.auto_pause, kill.auto_pause_memory),
            (Some(false), None)
        );
        let opt_out = Lifecycle::new().auto_resume(false).body().unwrap();
        assert_eq!(opt_out.auto_resume, Some(AutoResume { enabled: false }));
        for bad in [
            Lifecycle::new().pause_mode(PauseMode::Full),
            Lifecycle::new().auto_resume(true),
            Lifecycle::new()
                .on_timeout(OnTimeout::Kill)
                .auto_resume(true),
            Lifecycle::new()
                .on_timeout(OnTimeout::Pause)
                .pause_mode(PauseMode::Filesystem)
                .auto_resume(true),
        ] {
            assert!(
                matches!(bad.body(), Err(Error::InvalidArgument(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn request_bodies_leave_the_apis_defaults_out() {
        assert_eq!(json_of(PauseOptions::new().body().unwrap()), json!({}));
        assert_eq!(
            json_of(
                PauseOptions::new()
                    .mode(PauseMode::Filesystem)
                    .strict(true)
                    .body()
                    .unwrap()
            ),
            json!({"memory": false, "requireHealthyGuest": true})
        );
        assert_eq!(json_of(ConnectOptions::new().body().unwrap()), json!({}));
        assert_eq!(
            json_of(
                ConnectOptions::new()
                    .lifetime(Duration::from_millis(1500))
                    .on_resume(OnResume::Reboot)
                    .body()
                    .unwrap()
            ),
            json!({"timeout": 2, "memory": false})
        );
        assert_eq!(
            json_of(ForkOptions::new().count(20).body().unwrap()),
            json!({"count": 20})
        );
        for n in [0, 21] {
            assert!(matches!(
                ForkOptions::new().count(n).body(),
                Err(Error::InvalidArgument(_))
            ));
        }
    }
}
