//! The JSON options the C functions accept. Unknown keys are errors, so a typo never goes
//! unnoticed.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::error::{E2bErrorCode, FfiError};
use e2b_blocking::e2b::{
    ConnectOptions, ForkOptions, Lifecycle, NetworkOptions, OnResume, OnTimeout, PauseMode,
    PauseOptions, SnapshotOptions,
};
use e2b_blocking::{
    E2bConfig, E2bOptions, LocalOptions, PtyOptions, PtySize, SandboxBuilder, Timeouts,
};

/// Options of `e2b_sandbox_local`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LocalJson {
    /// A Python with jupyter_server and ipykernel.
    pub(crate) python: Option<String>,
    /// Extra PyPI packages to make importable.
    #[serde(default)]
    pub(crate) packages: Vec<String>,
    /// Environment variables of every context.
    #[serde(default)]
    pub(crate) envs: BTreeMap<String, String>,
    /// Call deadlines.
    #[serde(default)]
    pub(crate) timeouts: TimeoutsJson,
}

impl LocalJson {
    pub(crate) fn local_options(&self) -> LocalOptions {
        let mut options = LocalOptions::new().packages(self.packages.iter().cloned());
        if let Some(python) = &self.python {
            options = options.python(python);
        }
        options
    }
}

/// Options of `e2b_sandbox_connect_jupyter`: those of `e2b_sandbox_local` that apply to a
/// server someone else runs.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JupyterJson {
    /// Environment variables of every context.
    #[serde(default)]
    pub(crate) envs: BTreeMap<String, String>,
    /// Call deadlines.
    #[serde(default)]
    pub(crate) timeouts: TimeoutsJson,
    /// `false` speaks JSON framing (see `ConnectionConfig::binary_framing`).
    pub(crate) binary_framing: Option<bool>,
}

/// Options of `e2b_sandbox_create`: where the control plane is, what to create, and the
/// sandbox's call deadlines. Absent keys keep the Rust API's defaults.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct E2bJson {
    /// Overrides `$E2B_API_KEY`.
    api_key: Option<String>,
    domain: Option<String>,
    api_url: Option<String>,
    sandbox_url: Option<String>,
    debug: Option<bool>,
    /// Deadline of one control-plane request.
    request_timeout_ms: Option<u64>,
    template: Option<String>,
    /// How long the sandbox lives unless extended.
    lifetime_ms: Option<u64>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    /// The sandbox's own environment variables (the API's `envVars`).
    #[serde(default)]
    sandbox_envs: BTreeMap<String, String>,
    /// Ignored, as E2B's v2 API does: every sandbox is secured.
    secure: Option<bool>,
    auto_pause: Option<bool>,
    allow_internet_access: Option<bool>,
    allow_public_traffic: Option<bool>,
    network: Option<NetworkJson>,
    lifecycle: Option<LifecycleJson>,
    idempotency_key: Option<String>,
    /// How a paused sandbox comes back (`e2b_sandbox_e2b_connect()` only).
    on_resume: Option<OnResumeJson>,
    /// `false` leaves the sandbox running after `e2b_sandbox_destroy()`.
    kill_on_close: Option<bool>,
    /// Environment variables of every context.
    #[serde(default)]
    pub(crate) envs: BTreeMap<String, String>,
    /// Call deadlines.
    #[serde(default)]
    pub(crate) timeouts: TimeoutsJson,
    /// `false` speaks JSON framing (see `ConnectionConfig::binary_framing`).
    pub(crate) binary_framing: Option<bool>,
}

impl E2bJson {
    /// The control-plane config: the environment (`E2B_API_KEY`, `E2B_DOMAIN`, …), then the
    /// keys given.
    pub(crate) fn config(&self) -> E2bConfig {
        let mut c = E2bConfig::from_env();
        if let Some(v) = &self.api_key {
            c = c.api_key(v.as_str());
        }
        if let Some(v) = &self.domain {
            c = c.domain(v);
        }
        if let Some(v) = &self.api_url {
            c = c.api_url(v);
        }
        if let Some(v) = &self.sandbox_url {
            c = c.sandbox_url(v);
        }
        if let Some(v) = self.debug {
            c = c.debug(v);
        }
        if let Some(v) = self.request_timeout_ms {
            c = c.request_timeout(Duration::from_millis(v));
        }
        c
    }

    pub(crate) fn options(&self) -> E2bOptions {
        let mut o = E2bOptions::new()
            .metadata(self.metadata.clone())
            .envs(self.sandbox_envs.clone());
        if let Some(v) = &self.template {
            o = o.template(v);
        }
        if let Some(v) = self.lifetime_ms {
            o = o.lifetime(Duration::from_millis(v));
        }
        if let Some(v) = self.auto_pause {
            o = o.auto_pause(v);
        }
        if let Some(v) = self.allow_internet_access {
            o = o.allow_internet_access(v);
        }
        if let Some(v) = &self.network {
            o = o.network(v.options());
        }
        if let Some(v) = self.allow_public_traffic {
            o = o.allow_public_traffic(v);
        }
        if let Some(v) = &self.lifecycle {
            o = o.lifecycle(v.lifecycle());
        }
        if let Some(v) = &self.idempotency_key {
            o = o.idempotency_key(v);
        }
        o
    }

    /// The options of a connect by id; the keys that only creating takes are refused.
    pub(crate) fn connect_options(&self) -> Result<ConnectOptions, FfiError> {
        let create_only = [
            ("template", self.template.is_some()),
            ("metadata", !self.metadata.is_empty()),
            ("sandbox_envs", !self.sandbox_envs.is_empty()),
            ("secure", self.secure.is_some()),
            ("auto_pause", self.auto_pause.is_some()),
            (
                "allow_internet_access",
                self.allow_internet_access.is_some(),
            ),
            ("allow_public_traffic", self.allow_public_traffic.is_some()),
            ("network", self.network.is_some()),
            ("lifecycle", self.lifecycle.is_some()),
            ("idempotency_key", self.idempotency_key.is_some()),
        ];
        if let Some((key, _)) = create_only.iter().find(|(_, given)| *given) {
            return Err(FfiError::new(
                E2bErrorCode::E2B_ERR_INVALID_ARGUMENT,
                format!("\"{key}\" applies to creating a sandbox, not to connecting to one"),
            ));
        }
        Ok(ResumeJson {
            lifetime_ms: self.lifetime_ms,
            on_resume: self.on_resume,
        }
        .options())
    }

    pub(crate) fn kill_on_close(&self) -> Option<bool> {
        self.kill_on_close
    }
}

/// `"network"` of `e2b_sandbox_create`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NetworkJson {
    allow_out: Option<Vec<String>>,
    deny_out: Option<Vec<String>>,
    dns_servers: Option<Vec<String>>,
    allow_public_traffic: Option<bool>,
    mask_request_host: Option<String>,
    https_ports: Option<Vec<u16>>,
}

impl NetworkJson {
    fn options(&self) -> NetworkOptions {
        let mut n = NetworkOptions::new();
        if let Some(v) = &self.allow_out {
            n = n.allow_out(v.clone());
        }
        if let Some(v) = &self.deny_out {
            n = n.deny_out(v.clone());
        }
        if let Some(v) = &self.dns_servers {
            n = n.dns_servers(v.clone());
        }
        if let Some(v) = self.allow_public_traffic {
            n = n.allow_public_traffic(v);
        }
        if let Some(v) = &self.mask_request_host {
            n = n.mask_request_host(v);
        }
        if let Some(v) = &self.https_ports {
            n = n.https_ports(v.clone());
        }
        n
    }
}

/// `"on_timeout"` of a lifecycle.
#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum OnTimeoutJson {
    Kill,
    Pause,
}

/// `"mode"` of a pause or snapshot, `"pause_mode"` of a lifecycle.
#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ModeJson {
    Full,
    Filesystem,
}

impl From<ModeJson> for PauseMode {
    fn from(m: ModeJson) -> PauseMode {
        match m {
            ModeJson::Full => PauseMode::Full,
            ModeJson::Filesystem => PauseMode::Filesystem,
        }
    }
}

/// `"on_resume"` of a resume or connect.
#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OnResumeJson {
    Restore,
    Reboot,
}

/// `"lifecycle"` of `e2b_sandbox_create`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LifecycleJson {
    on_timeout: Option<OnTimeoutJson>,
    pause_mode: Option<ModeJson>,
    auto_resume: Option<bool>,
}

impl LifecycleJson {
    fn lifecycle(&self) -> Lifecycle {
        let mut l = Lifecycle::new();
        if let Some(t) = self.on_timeout {
            l = l.on_timeout(match t {
                OnTimeoutJson::Kill => OnTimeout::Kill,
                OnTimeoutJson::Pause => OnTimeout::Pause,
            });
        }
        if let Some(m) = self.pause_mode {
            l = l.pause_mode(m.into());
        }
        if let Some(r) = self.auto_resume {
            l = l.auto_resume(r);
        }
        l
    }
}

/// Options of `e2b_sandbox_pause`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PauseJson {
    mode: Option<ModeJson>,
    #[serde(default)]
    strict: bool,
}

impl PauseJson {
    pub(crate) fn options(&self) -> PauseOptions {
        let o = PauseOptions::new().strict(self.strict);
        match self.mode {
            Some(m) => o.mode(m.into()),
            None => o,
        }
    }
}

/// Options of `e2b_sandbox_resume`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResumeJson {
    lifetime_ms: Option<u64>,
    on_resume: Option<OnResumeJson>,
}

impl ResumeJson {
    pub(crate) fn options(&self) -> ConnectOptions {
        let mut o = ConnectOptions::new();
        if let Some(ms) = self.lifetime_ms {
            o = o.lifetime(Duration::from_millis(ms));
        }
        if let Some(OnResumeJson::Reboot) = self.on_resume {
            o = o.on_resume(OnResume::Reboot);
        }
        o
    }
}

/// Options of `e2b_sandbox_snapshot`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SnapshotJson {
    name: Option<String>,
    mode: Option<ModeJson>,
}

impl SnapshotJson {
    pub(crate) fn options(&self) -> SnapshotOptions {
        let mut o = SnapshotOptions::new();
        if let Some(n) = &self.name {
            o = o.name(n);
        }
        if let Some(m) = self.mode {
            o = o.mode(m.into());
        }
        o
    }
}

/// The fork options of `e2b_sandbox_fork`'s JSON (the rest is `e2b_sandbox_create`'s control
/// plane keys).
pub(crate) fn fork_options(opts: &E2bJson, count: u32) -> Result<ForkOptions, FfiError> {
    opts.connect_options()?;
    if opts.on_resume.is_some() {
        return Err(FfiError::new(
            E2bErrorCode::E2B_ERR_INVALID_ARGUMENT,
            "\"on_resume\" applies to connecting, not to forking",
        ));
    }
    let mut o = ForkOptions::new().count(count);
    if let Some(ms) = opts.lifetime_ms {
        o = o.lifetime(Duration::from_millis(ms));
    }
    Ok(o)
}

/// A sandbox builder with the options every constructor takes; `binary_framing` only for
/// servers the library does not start (the local one is patched against the bug it avoids).
pub(crate) fn sandbox_builder(
    envs: &BTreeMap<String, String>,
    timeouts: &TimeoutsJson,
    binary_framing: Option<bool>,
) -> SandboxBuilder {
    let builder = e2b_blocking::Sandbox::builder()
        .timeouts(timeouts.to_timeouts())
        .envs(envs.clone());
    match binary_framing {
        Some(offer) => builder.binary_framing(offer),
        None => builder,
    }
}

/// Deadlines in milliseconds; an absent key keeps the default.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TimeoutsJson {
    connect_ms: Option<u64>,
    kernel_start_ms: Option<u64>,
    request_ms: Option<u64>,
    /// `null` means no deadline.
    #[serde(default, deserialize_with = "present")]
    execution_ms: Option<Option<u64>>,
    sandbox_start_ms: Option<u64>,
    close_ms: Option<u64>,
}

impl TimeoutsJson {
    pub(crate) fn to_timeouts(&self) -> Timeouts {
        let ms = Duration::from_millis;
        let mut t = Timeouts::default();
        if let Some(v) = self.connect_ms {
            t = t.connect(ms(v));
        }
        if let Some(v) = self.kernel_start_ms {
            t = t.kernel_start(ms(v));
        }
        if let Some(v) = self.request_ms {
            t = t.request(ms(v));
        }
        if let Some(v) = self.execution_ms {
            t = t.execution(v.map(ms));
        }
        if let Some(v) = self.sandbox_start_ms {
            t = t.sandbox_start(ms(v));
        }
        if let Some(v) = self.close_ms {
            t = t.close(ms(v));
        }
        t
    }
}

/// Options of `e2b_run`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunJson {
    /// Deadline in milliseconds; `null` means none; absent keeps the sandbox's default.
    #[serde(default, deserialize_with = "present")]
    pub(crate) timeout_ms: Option<Option<u64>>,
    /// Run in the default context of this language.
    pub(crate) language: Option<String>,
    /// Environment variables of this execution only.
    #[serde(default)]
    pub(crate) envs: BTreeMap<String, String>,
    /// The most bytes of each stream (and of rich results) the execution keeps.
    pub(crate) max_output: Option<usize>,
}

/// Options of `e2b_commands_run`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommandJson {
    /// Working directory; absent means the sandbox root.
    pub(crate) cwd: Option<String>,
    /// Environment variables of this command only.
    #[serde(default)]
    pub(crate) envs: BTreeMap<String, String>,
    /// Deadline in milliseconds; `null` means none; absent keeps the default (60 s).
    #[serde(default, deserialize_with = "present")]
    pub(crate) timeout_ms: Option<Option<u64>>,
    /// Text for the command's stdin, closed after it; absent means `/dev/null`.
    pub(crate) stdin: Option<String>,
    /// `false` keeps none of the output in the result.
    pub(crate) retain_output: Option<bool>,
    /// The most bytes of stdout, and of stderr, the result keeps.
    pub(crate) max_output: Option<usize>,
}

/// Options of `e2b_pty_create`; absent keys keep the Rust API's defaults.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PtyJson {
    cols: Option<u16>,
    rows: Option<u16>,
    /// Working directory; absent means the sandbox root.
    cwd: Option<String>,
    /// Environment variables of the shell.
    #[serde(default)]
    envs: BTreeMap<String, String>,
    /// Lifetime in milliseconds; absent means until the shell exits or is killed.
    timeout_ms: Option<u64>,
    /// Whether `e2b_pty_destroy()` kills the terminal.
    kill_on_destroy: Option<bool>,
}

impl PtyJson {
    pub(crate) fn pty_options(self) -> PtyOptions {
        let mut options = PtyOptions::new().envs(self.envs);
        let size = options.size;
        options = options.size(PtySize::new(
            self.cols.unwrap_or(size.cols),
            self.rows.unwrap_or(size.rows),
        ));
        if let Some(cwd) = self.cwd {
            options = options.cwd(cwd);
        }
        if let Some(ms) = self.timeout_ms {
            options = options.timeout(Duration::from_millis(ms));
        }
        if let Some(kill) = self.kill_on_destroy {
            options = options.kill_on_drop(kill);
        }
        options
    }
}

/// Tells a key given as `null` (`Some(None)`) from an absent key (`None`, via `default`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Parses options JSON; NULL (`None`) or an empty string means every default.
pub(crate) fn parse<T: Default + for<'de> Deserialize<'de>>(
    json: Option<&str>,
    what: &str,
) -> Result<T, FfiError> {
    match json {
        None => Ok(T::default()),
        Some(s) if s.trim().is_empty() => Ok(T::default()),
        Some(s) => serde_json::from_str(s).map_err(|e| {
            FfiError::new(
                E2bErrorCode::E2B_ERR_INVALID_ARGUMENT,
                format!("invalid {what} JSON: {e}"),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error of a parse expected to fail (the option structs have no `Debug`: they hold
    /// API keys and env values).
    fn refused<T, E>(parsed: Result<T, E>) -> E {
        match parsed {
            Ok(_) => panic!("parsed what should have been refused"),
            Err(e) => e,
        }
    }

    #[test]
    fn absent_null_and_number_timeouts_differ() {
        let r: RunJson = parse(Some(r#"{"timeout_ms": null}"#), "run options").unwrap();
        assert_eq!(r.timeout_ms, Some(None));
        let r: RunJson = parse(Some(r#"{"timeout_ms": 5}"#), "run options").unwrap();
        assert_eq!(r.timeout_ms, Some(Some(5)));
        let r: RunJson = parse(Some("{}"), "run options").unwrap();
        assert_eq!(r.timeout_ms, None);
        let r: RunJson = parse(None, "run options").unwrap();
        assert_eq!(r.timeout_ms, None);
    }

    #[test]
    fn unknown_keys_and_bad_types_are_invalid_arguments() {
        for bad in [
            r#"{"timeout": 5}"#,
            r#"{"timeout_ms": "5"}"#,
            r#"{"envs": {"A": 1}}"#,
            "[1]",
            "{",
        ] {
            let e = refused(parse::<RunJson>(Some(bad), "run options"));
            assert_eq!(e.code, E2bErrorCode::E2B_ERR_INVALID_ARGUMENT, "{bad}");
            assert!(e.message.starts_with("invalid run options JSON"), "{bad}");
        }
        let e = refused(parse::<LocalJson>(
            Some(r#"{"timeouts": {"exec_ms": 1}}"#),
            "x",
        ));
        assert!(e.message.contains("exec_ms"), "{}", e.message);
    }

    #[test]
    fn jupyter_options_take_envs_and_timeouts_only() {
        let o: JupyterJson = parse(
            Some(r#"{"timeouts": {"connect_ms": 100}, "envs": {"A": "1"}}"#),
            "jupyter options",
        )
        .unwrap();
        assert_eq!(
            o.timeouts.to_timeouts(),
            Timeouts::default().connect(Duration::from_millis(100))
        );
        assert_eq!(o.envs.len(), 1);
        for bad in [r#"{"python": "/usr/bin/python3"}"#, r#"{"packages": []}"#] {
            let e = refused(parse::<JupyterJson>(Some(bad), "jupyter options"));
            assert_eq!(e.code, E2bErrorCode::E2B_ERR_INVALID_ARGUMENT, "{bad}");
        }
    }

    #[test]
    fn e2b_options_override_the_defaults() {
        let o: E2bJson = parse(
            Some(
                r#"{"api_key": "k", "api_url": "http://127.0.0.1:9", "template": "t",
                    "lifetime_ms": 60000, "metadata": {"m": "1"}, "sandbox_envs": {"S": "2"},
                    "secure": false, "kill_on_close": false, "envs": {"A": "3"},
                    "network": {"deny_out": ["0.0.0.0/0"], "https_ports": [3000]},
                    "lifecycle": {"on_timeout": "pause", "pause_mode": "full",
                                  "auto_resume": true},
                    "idempotency_key": "k-1",
                    "timeouts": {"connect_ms": 10}}"#,
            ),
            "E2B options",
        )
        .unwrap();
        let expected = E2bOptions::new()
            .template("t")
            .lifetime(Duration::from_secs(60))
            .metadata([("m", "1")])
            .envs([("S", "2")])
            .network(
                NetworkOptions::new()
                    .deny_out(["0.0.0.0/0"])
                    .https_ports([3000]),
            )
            .lifecycle(
                Lifecycle::new()
                    .on_timeout(OnTimeout::Pause)
                    .pause_mode(PauseMode::Full)
                    .auto_resume(true),
            )
            .idempotency_key("k-1");
        assert_eq!(o.options(), expected);
        assert_eq!(o.kill_on_close(), Some(false));
        let config = o.config();
        assert_eq!(
            config,
            E2bConfig::default()
                .api_key("k")
                .api_url("http://127.0.0.1:9")
        );
        assert!(!format!("{config:?}").contains("\"k\""));
        let o: E2bJson = parse(None, "E2B options").unwrap();
        assert_eq!(o.options(), E2bOptions::default());
        let e = refused(parse::<E2bJson>(Some(r#"{"apikey": "k"}"#), "E2B options"));
        assert_eq!(e.code, E2bErrorCode::E2B_ERR_INVALID_ARGUMENT);
        for bad in [
            r#"{"lifecycle": {"on_timeout": "hibernate"}}"#,
            r#"{"network": {"allowOut": []}}"#,
            r#"{"on_resume": "later"}"#,
        ] {
            let e = refused(parse::<E2bJson>(Some(bad), "E2B options"));
            assert_eq!(e.code, E2bErrorCode::E2B_ERR_INVALID_ARGUMENT, "{bad}");
        }
    }

    #[test]
    fn connect_and_fork_refuse_what_only_creating_takes() {
        let o: E2bJson = parse(
            Some(r#"{"api_key": "k", "lifetime_ms": 1500, "on_resume": "reboot"}"#),
            "E2B options",
        )
        .unwrap();
        assert_eq!(
            o.connect_options().unwrap(),
            ConnectOptions::new()
                .lifetime(Duration::from_millis(1500))
                .on_resume(OnResume::Reboot)
        );
        assert!(fork_options(&o, 2).is_err(), "on_resume is no fork option");
        let o: E2bJson = parse(Some(r#"{"template": "t"}"#), "E2B options").unwrap();
        let e = o.connect_options().unwrap_err();
        assert!(e.message.contains("template"), "{}", e.message);
        let o: E2bJson = parse(Some(r#"{"lifetime_ms": 60000}"#), "E2B options").unwrap();
        assert_eq!(
            fork_options(&o, 3).unwrap(),
            ForkOptions::new()
                .count(3)
                .lifetime(Duration::from_secs(60))
        );
        let p: PauseJson = parse(Some(r#"{"mode": "filesystem", "strict": true}"#), "p").unwrap();
        assert_eq!(
            p.options(),
            PauseOptions::new().mode(PauseMode::Filesystem).strict(true)
        );
        let s: SnapshotJson = parse(Some(r#"{"name": "n", "mode": "full"}"#), "s").unwrap();
        assert_eq!(
            s.options(),
            SnapshotOptions::new().name("n").mode(PauseMode::Full)
        );
    }

    #[test]
    fn command_options() {
        let c: CommandJson = parse(
            Some(r#"{"cwd": "sub", "envs": {"A": "1"}, "timeout_ms": null}"#),
            "command options",
        )
        .unwrap();
        assert_eq!(c.cwd.as_deref(), Some("sub"));
        assert_eq!(c.timeout_ms, Some(None));
        let c: CommandJson = parse(None, "command options").unwrap();
        assert_eq!((c.cwd, c.timeout_ms), (None, None));
        let e = refused(parse::<CommandJson>(Some(r#"{"language": "python"}"#), "x"));
        assert_eq!(e.code, E2bErrorCode::E2B_ERR_INVALID_ARGUMENT);
    }

    #[test]
    fn local_options_map_to_timeouts() {
        let o: LocalJson = parse(
            Some(r#"{"timeouts": {"execution_ms": null, "close_ms": 250}, "envs": {"A": "1"}}"#),
            "local options",
        )
        .unwrap();
        let expected = Timeouts::default()
            .execution(None)
            .close(Duration::from_millis(250));
        assert_eq!(o.timeouts.to_timeouts(), expected);
        assert_eq!(o.envs.get("A").map(String::as_str), Some("1"));
    }
}
