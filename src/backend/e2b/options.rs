//! What kind of E2B sandbox to create: template, lifetime, metadata, env vars, network,
//! lifecycle, idempotency key.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::Error;

use super::lifecycle::{Lifecycle, OnTimeout};
use super::network::NetworkOptions;

/// The template of E2B's code-interpreter sandboxes (Jupyter on port 8888).
pub const DEFAULT_TEMPLATE: &str = "code-interpreter-v1";

/// How long a new sandbox lives unless extended: 300 s, as in E2B's SDKs.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// Options for creating an E2B sandbox (`POST /v2/sandboxes`). `Debug` shows env var names
/// only.
#[derive(Clone, PartialEq, Eq)]
pub struct E2bOptions {
    pub(crate) template: String,
    pub(crate) lifetime: Duration,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) envs: BTreeMap<String, String>,
    pub(crate) auto_pause: Option<bool>,
    pub(crate) allow_internet_access: Option<bool>,
    pub(crate) network: NetworkOptions,
    pub(crate) lifecycle: Lifecycle,
    pub(crate) idempotency_key: Option<String>,
}

impl Default for E2bOptions {
    fn default() -> Self {
        E2bOptions {
            template: DEFAULT_TEMPLATE.to_string(),
            lifetime: DEFAULT_LIFETIME,
            metadata: BTreeMap::new(),
            envs: BTreeMap::new(),
            auto_pause: None,
            allow_internet_access: None,
            network: NetworkOptions::default(),
            lifecycle: Lifecycle::default(),
            idempotency_key: None,
        }
    }
}

impl std::fmt::Debug for E2bOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E2bOptions")
            .field("template", &self.template)
            .field("lifetime", &self.lifetime)
            .field("metadata", &self.metadata)
            .field(
                "envs",
                &crate::env_vars::names(self.envs.keys().map(String::as_str)),
            )
            .field("allow_internet_access", &self.allow_internet_access)
            .field("network", &self.network)
            .field("lifecycle", &self.effective_lifecycle())
            .field("idempotency_key", &self.idempotency_key)
            .finish()
    }
}

impl E2bOptions {
    /// Options with every default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Template id or alias, or a snapshot's id ([`SnapshotInfo::snapshot_id`]) to start from
    /// a snapshot. It must run a Jupyter server on port 8888, as E2B's code-interpreter
    /// template does. Defaults to `code-interpreter-v1`.
    ///
    /// [`SnapshotInfo::snapshot_id`]: crate::e2b::SnapshotInfo::snapshot_id
    pub fn template(mut self, template: impl Into<String>) -> Self {
        self.template = template.into();
        self
    }

    /// How long the sandbox lives before E2B kills it (the API's `timeout`, whole seconds,
    /// rounded up), unless extended with `set_lifetime`. Defaults to 300 s; the account's tier
    /// caps it (1 h on Hobby, 24 h on Pro).
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Key-value pairs stored with the sandbox, for listing and filtering. Defaults to none.
    pub fn metadata<I, K, V>(mut self, metadata: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.metadata.extend(crate::env_vars::owned(metadata));
        self
    }

    /// Environment variables of the sandbox: sent as the API's `envVars` (seen by processes
    /// E2B's daemon starts) and set by the SDK in every kernel it starts (contexts and the
    /// kernels that run commands), since the template's Jupyter server predates the sandbox.
    /// Defaults to none.
    pub fn envs<I, K, V>(mut self, envs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.envs.extend(crate::env_vars::owned(envs));
        self
    }

    /// Kept for E2B's older API: every sandbox is secured now (the v2 API has no such
    /// field), so this does nothing.
    pub fn secure(self, _secure: bool) -> Self {
        self
    }

    /// Pause the sandbox instead of killing it when its lifetime ends: a shorthand for
    /// [`Lifecycle::on_timeout`] with [`OnTimeout::Pause`] (`true`) or [`OnTimeout::Kill`]
    /// (`false`), used when [`lifecycle`](Self::lifecycle) does not say. Defaults to the
    /// API's default (kill). A handle that kills on close still kills.
    pub fn auto_pause(mut self, auto_pause: bool) -> Self {
        self.auto_pause = Some(auto_pause);
        self
    }

    /// What the sandbox's timeout does, and whether traffic resumes it once paused (see
    /// [`Lifecycle`]). Defaults to the API's choice (kill, no auto-resume).
    pub fn lifecycle(mut self, lifecycle: Lifecycle) -> Self {
        self.lifecycle = lifecycle;
        self
    }

    /// Let the sandbox reach the internet; `false` is the same as denying
    /// [`ALL_TRAFFIC`](crate::e2b::ALL_TRAFFIC) outbound. Defaults to the API's default (allowed).
    pub fn allow_internet_access(mut self, allow: bool) -> Self {
        self.allow_internet_access = Some(allow);
        self
    }

    /// Network rules: outbound allow and deny lists, DNS servers, public traffic, masked
    /// host, HTTPS ports (see [`NetworkOptions`]). Defaults to the API's, public traffic off.
    pub fn network(mut self, network: NetworkOptions) -> Self {
        self.network = network;
        self
    }

    /// Let anyone who knows the sandbox's URLs reach them: a shorthand for
    /// [`NetworkOptions::allow_public_traffic`]. Defaults to `false`.
    pub fn allow_public_traffic(mut self, allow: bool) -> Self {
        self.network = self.network.allow_public_traffic(allow);
        self
    }

    /// The `Idempotency-Key` of the create request: a second create with the same key returns
    /// the same sandbox instead of a new one. 1 to 255 lowercase ASCII letters, digits or
    /// hyphens (a lowercase UUID), else creating fails with [`Error::InvalidArgument`].
    /// Defaults to a new random key for every create, which its own retries reuse.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// The lifecycle with [`auto_pause`](Self::auto_pause) applied where it does not say.
    pub(crate) fn effective_lifecycle(&self) -> Lifecycle {
        match (self.lifecycle.on_timeout, self.auto_pause) {
            (None, Some(pause)) => self.lifecycle.on_timeout(if pause {
                OnTimeout::Pause
            } else {
                OnTimeout::Kill
            }),
            _ => self.lifecycle,
        }
    }

    /// The key for one create: the caller's, checked, or a new random one.
    pub(crate) fn create_key(&self) -> Result<String, Error> {
        match &self.idempotency_key {
            None => Ok(uuid::Uuid::new_v4().to_string()),
            Some(key) => {
                let valid = (1..=255).contains(&key.len())
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if valid {
                    Ok(key.clone())
                } else {
                    Err(Error::InvalidArgument(format!(
                        "an idempotency key is 1 to 255 lowercase letters, digits or hyphens, \
                         not {key:?}"
                    )))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_checked_or_made_up() {
        let a = E2bOptions::new().create_key().unwrap();
        let b = E2bOptions::new().create_key().unwrap();
        assert_ne!(a, b);
        assert!(E2bOptions::new().idempotency_key(&a).create_key().is_ok());
        for bad in ["", "ABC", "a_b", "ü", &"a".repeat(256)] {
            assert!(matches!(
                E2bOptions::new().idempotency_key(bad).create_key(),
                Err(Error::InvalidArgument(_))
            ));
        }
    }
}
