//! The control plane's request and response bodies, named as in E2B's OpenAPI spec.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize};

use crate::config::Secret;
use crate::error::Error;
use crate::net::{encode_component, query_string};

use super::lifecycle::{AutoResume, PauseMode};
use super::network::{NetworkBody, NetworkInfo};
use super::options::E2bOptions;

fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Ok(Option::<String>::deserialize(d)?
        .filter(|s| !s.is_empty())
        .map(Secret::new))
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// What the control plane answers when a sandbox is created or connected to (the spec's
/// `Sandbox`): its id and what it takes to reach it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SandboxAccess {
    /// The sandbox's id.
    #[serde(rename = "sandboxID")]
    pub sandbox_id: String,
    /// The template it was created from.
    #[serde(rename = "templateID", default)]
    pub template_id: String,
    /// The template's alias, if it has one.
    #[serde(default)]
    pub alias: Option<String>,
    /// Version of the sandbox's daemon (envd).
    #[serde(default, deserialize_with = "null_as_default")]
    pub envd_version: String,
    /// Token for the sandbox's daemon (envd), sent as `X-Access-Token` when the sandbox is
    /// secure. Jupyter does not need it.
    #[serde(default, deserialize_with = "secret")]
    pub envd_access_token: Option<Secret>,
    /// Token for the sandbox's proxy when its traffic is not public, sent as
    /// `E2B-Traffic-Access-Token`.
    #[serde(default, deserialize_with = "secret")]
    pub traffic_access_token: Option<Secret>,
    /// The domain the sandbox's ports are served under, when it differs from the configured
    /// one.
    #[serde(default)]
    pub domain: Option<String>,
}

impl SandboxAccess {
    /// What debug mode assumes without asking a control plane: an id and nothing else.
    pub(crate) fn debug(sandbox_id: &str) -> SandboxAccess {
        SandboxAccess {
            sandbox_id: sandbox_id.to_string(),
            template_id: String::new(),
            alias: None,
            envd_version: String::new(),
            envd_access_token: None,
            traffic_access_token: None,
            domain: None,
        }
    }
}

/// Whether a sandbox runs or is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum SandboxState {
    /// Running.
    Running,
    /// Paused; `connect` resumes it.
    Paused,
    /// A state this SDK does not know yet.
    #[serde(other)]
    Unknown,
}

impl SandboxState {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxState::Running => "running",
            SandboxState::Paused => "paused",
            SandboxState::Unknown => "unknown",
        }
    }
}

/// What happens to a sandbox when its lifetime ends (the spec's `SandboxLifecycle`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SandboxLifecycle {
    /// Whether traffic to a paused sandbox resumes it.
    #[serde(default)]
    pub auto_resume: bool,
    /// `kill` or `pause`.
    #[serde(default)]
    pub on_timeout: String,
}

/// One sandbox as listed or looked up (the spec's `ListedSandbox` and `SandboxDetail`; fields
/// only the detail has are `None` in a listing).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SandboxInfo {
    /// The sandbox's id.
    #[serde(rename = "sandboxID")]
    pub sandbox_id: String,
    /// The template it was created from.
    #[serde(rename = "templateID", default)]
    pub template_id: String,
    /// The template's alias, if it has one.
    #[serde(default)]
    pub alias: Option<String>,
    /// Running or paused.
    pub state: SandboxState,
    /// When it started (RFC 3339).
    #[serde(default)]
    pub started_at: String,
    /// When it will be killed or paused unless extended (RFC 3339).
    #[serde(default)]
    pub end_at: String,
    /// CPU cores.
    #[serde(default)]
    pub cpu_count: u32,
    /// Memory in MiB.
    #[serde(rename = "memoryMB", default)]
    pub memory_mb: u32,
    /// Disk size in MiB.
    #[serde(rename = "diskSizeMB", default)]
    pub disk_size_mb: u32,
    /// The metadata it was created with.
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: BTreeMap<String, String>,
    /// Version of the sandbox's daemon (envd).
    #[serde(default, deserialize_with = "null_as_default")]
    pub envd_version: String,
    /// The domain its ports are served under (detail only).
    #[serde(default)]
    pub domain: Option<String>,
    /// Token for the sandbox's daemon (detail only).
    #[serde(default, deserialize_with = "secret")]
    pub envd_access_token: Option<Secret>,
    /// Whether internet access was set explicitly at creation (detail only).
    #[serde(default)]
    pub allow_internet_access: Option<bool>,
    /// What happens when its lifetime ends (detail only).
    #[serde(default)]
    pub lifecycle: Option<SandboxLifecycle>,
    /// Its network settings (detail only).
    #[serde(default)]
    pub network: Option<NetworkInfo>,
    /// What its latest pause kept (detail only, once paused).
    #[serde(default)]
    pub pause_mode: Option<PauseMode>,
    /// True when it was paused while its guest agent did not answer: it can only be resumed
    /// with [`OnResume::Reboot`](crate::e2b::OnResume::Reboot).
    #[serde(default, deserialize_with = "null_as_default")]
    pub envd_unresponsive_at_pause: bool,
    /// The volumes mounted in it.
    #[serde(default, deserialize_with = "null_as_default")]
    pub volume_mounts: Vec<VolumeMount>,
}

/// A volume mounted in a sandbox (the spec's `SandboxVolumeMount`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct VolumeMount {
    /// The volume's name.
    pub name: String,
    /// Where it is mounted.
    pub path: String,
}

/// One page of [`E2bClient::list`](super::E2bClient::list).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SandboxPage {
    /// The sandboxes on this page.
    pub sandboxes: Vec<SandboxInfo>,
    /// Pass to [`ListQuery::next_token`] for the next page; `None` on the last page.
    pub next_token: Option<String>,
    /// Running sandboxes matching the filters across all pages, when the server says.
    pub total_running: Option<u32>,
}

/// Filters and paging for listing sandboxes (`GET /v2/sandboxes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) states: Vec<SandboxState>,
    pub(crate) template: Option<String>,
    pub(crate) started_after: Option<SystemTime>,
    pub(crate) order: Option<Order>,
    pub(crate) limit: Option<u32>,
    pub(crate) next_token: Option<String>,
}

/// Which way a listing is sorted by start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Order {
    /// Oldest first.
    Ascending,
    /// Newest first (the API's default).
    Descending,
}

impl ListQuery {
    /// Every sandbox, first page, the server's page size.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only sandboxes whose metadata has all these pairs. Defaults to no filter.
    pub fn metadata<I, K, V>(mut self, metadata: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.metadata.extend(crate::env_vars::owned(metadata));
        self
    }

    /// Only sandboxes in one of these states. Defaults to the server's choice (all).
    /// [`SandboxState::Unknown`] is ignored.
    pub fn states(mut self, states: impl IntoIterator<Item = SandboxState>) -> Self {
        self.states
            .extend(states.into_iter().filter(|s| *s != SandboxState::Unknown));
        self
    }

    /// Only sandboxes of this template id or alias. Defaults to no filter.
    pub fn template(mut self, template: impl Into<String>) -> Self {
        self.template = Some(template.into());
        self
    }

    /// Only sandboxes started at or after `time` (whole seconds). Defaults to no filter.
    pub fn started_after(mut self, time: SystemTime) -> Self {
        self.started_after = Some(time);
        self
    }

    /// Sort by start time, applied to the whole result before paging. Defaults to the API's
    /// (newest first).
    pub fn order(mut self, order: Order) -> Self {
        self.order = Some(order);
        self
    }

    /// Page size, 1 to 100 (clamped). Defaults to the server's (100).
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit.clamp(1, 100));
        self
    }

    /// Continue after a previous page ([`SandboxPage::next_token`]). Defaults to the first
    /// page.
    pub fn next_token(mut self, token: impl Into<String>) -> Self {
        self.next_token = Some(token.into());
        self
    }

    /// The query string, with `?`, or empty. `metadata` is itself a query string
    /// (`k=v&k2=v2`, each part encoded), encoded once more as one value; `state` is a
    /// comma list (form style, not exploded).
    pub(crate) fn to_query(&self) -> String {
        self.page_query(self.next_token.as_deref())
    }

    /// The query string for the page after `token` (the first page when `None`).
    pub(crate) fn page_query(&self, token: Option<&str>) -> String {
        let mut parts = Vec::new();
        if !self.metadata.is_empty() {
            let inner: Vec<String> = self
                .metadata
                .iter()
                .map(|(k, v)| format!("{}={}", encode_twice(k), encode_twice(v)))
                .collect();
            // The API decodes the filter three times (the query, the whole filter, each pair);
            // E2B's SDKs encode each key and value twice and the query once more, so do we.
            parts.push(format!("metadata={}", encode_component(&inner.join("&"))));
        }
        if !self.states.is_empty() {
            let mut names: Vec<&str> = Vec::new();
            for name in self.states.iter().map(|s| s.as_str()) {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            parts.push(format!("state={}", names.join(",")));
        }
        if let Some(t) = &self.template {
            parts.push(format!("template={}", encode_component(t)));
        }
        if let Some(t) = self.started_after {
            parts.push(format!("startedAfter={}", encode_component(&rfc3339(t))));
        }
        if let Some(order) = self.order {
            let order = match order {
                Order::Ascending => "asc",
                Order::Descending => "desc",
            };
            parts.push(format!("order={order}"));
        }
        if let Some(n) = self.limit {
            parts.push(format!("limit={n}"));
        }
        if let Some(t) = token {
            parts.push(format!("nextToken={}", encode_component(t)));
        }
        query_string(&parts)
    }
}

/// `time` as an RFC 3339 UTC date-time in whole seconds; before 1970 as the epoch.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn encode_twice(s: &str) -> String {
    encode_component(&encode_component(s))
}

/// `NewSandboxV2`: `secure` is gone (every sandbox is secured).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NewSandbox<'a> {
    #[serde(rename = "templateID")]
    template_id: &'a str,
    timeout: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    auto_pause: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auto_pause_memory: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auto_resume: Option<AutoResume>,
    // The spec spells this one in snake case.
    #[serde(
        rename = "allow_internet_access",
        skip_serializing_if = "Option::is_none"
    )]
    allow_internet_access: Option<bool>,
    network: NetworkBody<'a>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    metadata: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    env_vars: &'a BTreeMap<String, String>,
}

impl<'a> NewSandbox<'a> {
    pub(crate) fn from_options(options: &'a E2bOptions) -> Result<Self, Error> {
        if options.template.trim().is_empty() {
            return Err(Error::InvalidArgument("the E2B template is empty".into()));
        }
        let lifecycle = options.effective_lifecycle().body()?;
        Ok(NewSandbox {
            template_id: &options.template,
            timeout: whole_seconds(options.lifetime, "sandbox lifetime")?,
            auto_pause: lifecycle.auto_pause,
            auto_pause_memory: lifecycle.auto_pause_memory,
            auto_resume: lifecycle.auto_resume,
            allow_internet_access: options.allow_internet_access,
            network: options.network.body(),
            metadata: &options.metadata,
            env_vars: &options.envs,
        })
    }
}

/// `SandboxTimeoutRequest`.
#[derive(Debug, Serialize)]
pub(crate) struct TimeoutBody {
    pub(crate) timeout: u32,
}

/// `SandboxRefreshRequest`.
#[derive(Debug, Serialize)]
pub(crate) struct RefreshBody {
    pub(crate) duration: u32,
}

/// A duration as the API's whole seconds (int32 ≥ 0), rounded up so that 500 ms does not
/// become "now".
pub(crate) fn whole_seconds(d: Duration, what: &str) -> Result<u32, Error> {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    u32::try_from(secs)
        .ok()
        .filter(|s| *s <= i32::MAX as u32)
        .ok_or_else(|| Error::InvalidArgument(format!("{what} of {d:?} is too long")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_sandbox_uses_spec_names() {
        let options = E2bOptions::new()
            .metadata([("k", "v")])
            .envs([("A", "1")])
            .auto_pause(true)
            .allow_internet_access(false)
            .allow_public_traffic(false)
            .lifetime(Duration::from_millis(1500));
        let body = serde_json::to_value(NewSandbox::from_options(&options).unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "templateID": "code-interpreter-v1",
                "timeout": 2,
                "autoPause": true,
                "allow_internet_access": false,
                "network": {"allowPublicTraffic": false},
                "metadata": {"k": "v"},
                "envVars": {"A": "1"},
            })
        );
        let minimal =
            serde_json::to_value(NewSandbox::from_options(&E2bOptions::new()).unwrap()).unwrap();
        assert_eq!(
            minimal,
            serde_json::json!({"templateID": "code-interpreter-v1", "timeout": 300,
                               "network": {"allowPublicTraffic": false}})
        );
        let public = E2bOptions::new().allow_public_traffic(true);
        let body = serde_json::to_value(NewSandbox::from_options(&public).unwrap()).unwrap();
        assert_eq!(body["network"]["allowPublicTraffic"], true);
        let paused = E2bOptions::new().lifecycle(
            crate::e2b::Lifecycle::new()
                .on_timeout(crate::e2b::OnTimeout::Pause)
                .pause_mode(PauseMode::Full)
                .auto_resume(true),
        );
        let body = serde_json::to_value(NewSandbox::from_options(&paused).unwrap()).unwrap();
        assert_eq!(body["autoPause"], true);
        assert_eq!(body["autoPauseMemory"], true);
        assert_eq!(body["autoResume"], serde_json::json!({"enabled": true}));
        let bad = E2bOptions::new().lifecycle(crate::e2b::Lifecycle::new().auto_resume(true));
        assert!(matches!(
            NewSandbox::from_options(&bad),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn bad_options_are_invalid_arguments() {
        let long = E2bOptions::new().lifetime(Duration::from_secs(u64::from(u32::MAX)));
        assert!(matches!(
            NewSandbox::from_options(&long),
            Err(Error::InvalidArgument(_))
        ));
        let empty = E2bOptions::new().template(" ");
        assert!(matches!(
            NewSandbox::from_options(&empty),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn list_query_encoding() {
        assert_eq!(ListQuery::new().to_query(), "");
        let q = ListQuery::new()
            .metadata([("user", "a b"), ("app", "x&y=z")])
            .states([
                SandboxState::Running,
                SandboxState::Paused,
                SandboxState::Running,
            ])
            .template("code-interpreter-v1")
            .started_after(UNIX_EPOCH + Duration::from_secs(1_767_225_600))
            .order(Order::Ascending)
            .limit(500)
            .next_token("t/1");
        assert_eq!(
            q.to_query(),
            "?metadata=app%3Dx%252526y%25253Dz%26user%3Da%252520b&state=running,paused\
             &template=code-interpreter-v1&startedAfter=2026-01-01T00%3A00%3A00Z&order=asc\
             &limit=100&nextToken=t%2F1"
        );
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_825_599)),
            "2000-02-29T11:59:59Z"
        );
    }

    #[test]
    fn responses_parse_leniently_and_hide_tokens() {
        let access: SandboxAccess = serde_json::from_value(serde_json::json!({
            "sandboxID": "sbx1", "templateID": "t", "clientID": "c", "envdVersion": "0.2",
            "envdAccessToken": "envd-secret", "trafficAccessToken": null, "domain": null,
        }))
        .unwrap();
        assert_eq!(access.sandbox_id, "sbx1");
        assert!(access.traffic_access_token.is_none());
        assert!(!format!("{access:?}").contains("envd-secret"));

        let info: SandboxInfo = serde_json::from_value(serde_json::json!({
            "sandboxID": "sbx1", "templateID": "t", "clientID": "c",
            "startedAt": "2026-01-01T00:00:00Z", "endAt": "2026-01-01T00:05:00Z",
            "cpuCount": 2, "memoryMB": 512, "diskSizeMB": 0, "state": "hibernating",
            "envdVersion": "0.2", "metadata": null, "futureField": [1, 2],
            "lifecycle": {"autoResume": true, "onTimeout": "pause"},
        }))
        .unwrap();
        assert_eq!(info.state, SandboxState::Unknown);
        assert_eq!(info.memory_mb, 512);
        assert!(info.metadata.is_empty());
        assert_eq!(
            info.lifecycle.map(|l| l.on_timeout).as_deref(),
            Some("pause")
        );
    }
}
