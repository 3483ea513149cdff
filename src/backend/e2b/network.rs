//! A sandbox's network rules: who may reach it (public traffic, masked host, HTTPS ports) and
//! where it may go (allow and deny lists, DNS servers), set at creation or replaced while it
//! runs (E2B's `network` option and `update_network`).

use serde::{Deserialize, Serialize};

/// The network settings of a new sandbox (the spec's `SandboxNetworkConfig`). Unset fields are
/// the API's choice, except public traffic, which this SDK keeps off unless asked (see
/// [`NetworkOptions::allow_public_traffic`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkOptions {
    pub(crate) egress: Egress,
    pub(crate) allow_public_traffic: Option<bool>,
    pub(crate) mask_request_host: Option<String>,
    pub(crate) https_ports: Option<Vec<u16>>,
}

/// Where a sandbox may send traffic: shared by creation and `update_network`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Egress {
    #[serde(skip_serializing_if = "Option::is_none")]
    allow_out: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deny_out: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dns_servers: Option<Vec<String>>,
}

impl Egress {
    fn allow_out<I: IntoIterator<Item = S>, S: Into<String>>(&mut self, to: I) {
        self.allow_out = Some(to.into_iter().map(Into::into).collect());
    }

    fn deny_out<I: IntoIterator<Item = S>, S: Into<String>>(&mut self, to: I) {
        self.deny_out = Some(to.into_iter().map(Into::into).collect());
    }

    fn dns_servers<I: IntoIterator<Item = S>, S: Into<String>>(&mut self, servers: I) {
        self.dns_servers = Some(servers.into_iter().map(Into::into).collect());
    }
}

/// Everything outbound, for [`NetworkOptions::deny_out`] (`0.0.0.0/0`).
pub const ALL_TRAFFIC: &str = "0.0.0.0/0";

impl NetworkOptions {
    /// The API's defaults, public traffic off.
    pub fn new() -> Self {
        Self::default()
    }

    /// Destinations the sandbox may reach even when denied: CIDR blocks, IP addresses or
    /// domain names (`example.com`, `*.example.com`). Allowed entries win over denied ones.
    /// Defaults to unset: everything not denied.
    pub fn allow_out<I: IntoIterator<Item = S>, S: Into<String>>(mut self, to: I) -> Self {
        self.egress.allow_out(to);
        self
    }

    /// Destinations the sandbox may not reach: CIDR blocks or IP addresses (no domain names);
    /// [`ALL_TRAFFIC`] denies everything not allowed. Defaults to unset: none.
    pub fn deny_out<I: IntoIterator<Item = S>, S: Into<String>>(mut self, to: I) -> Self {
        self.egress.deny_out(to);
        self
    }

    /// IPv4 DNS servers the sandbox may reach when [`allow_out`](Self::allow_out) names a
    /// domain; empty allows none. It opens the firewall only: the sandbox's
    /// `/etc/resolv.conf` still names 8.8.8.8. Defaults to unset: 8.8.8.8.
    pub fn dns_servers<I: IntoIterator<Item = S>, S: Into<String>>(mut self, servers: I) -> Self {
        self.egress.dns_servers(servers);
        self
    }

    /// Let anyone who knows the sandbox's URLs reach them, without its traffic token. Defaults
    /// to `false` here (E2B's own default is `true`): the Jupyter server of E2B's
    /// code-interpreter template has no token, so public traffic would let anyone with the URL
    /// run code as root. When `false`, the SDK sends the traffic token
    /// (`E2B-Traffic-Access-Token`) with every request to the sandbox.
    pub fn allow_public_traffic(mut self, allow: bool) -> Self {
        self.allow_public_traffic = Some(allow);
        self
    }

    /// The `Host` the proxy sends to the sandbox's services instead of the request's own;
    /// `${PORT}` stands for the port (`${PORT}-myapp.example.com`). Defaults to unset: the
    /// request's host.
    pub fn mask_request_host(mut self, host: impl Into<String>) -> Self {
        self.mask_request_host = Some(host.into());
        self
    }

    /// Ports whose service inside the sandbox speaks HTTPS itself, so that the proxy reaches
    /// it over TLS (its certificate is not checked); not envd's port 49983. The public URL is
    /// HTTPS either way. Defaults to unset: none.
    pub fn https_ports(mut self, ports: impl IntoIterator<Item = u16>) -> Self {
        self.https_ports = Some(ports.into_iter().collect());
        self
    }

    /// The create request's `network`, public traffic off unless set.
    pub(crate) fn body(&self) -> NetworkBody<'_> {
        NetworkBody {
            egress: &self.egress,
            allow_public_traffic: self.allow_public_traffic.unwrap_or(false),
            mask_request_host: self.mask_request_host.as_deref(),
            https_ports: self.https_ports.as_deref(),
        }
    }
}

/// `SandboxNetworkConfig` as sent.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NetworkBody<'a> {
    #[serde(flatten)]
    egress: &'a Egress,
    allow_public_traffic: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    mask_request_host: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    https_ports: Option<&'a [u16]>,
}

/// New egress rules for a running sandbox (E2B's `update_network`, the spec's
/// `SandboxNetworkUpdateConfig`). They **replace** the current ones: a field left unset is
/// cleared on the server (DNS servers back to 8.8.8.8), so repeat what should stay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NetworkUpdate {
    #[serde(flatten)]
    egress: Egress,
    // The spec spells this one in snake case.
    #[serde(skip_serializing_if = "Option::is_none")]
    allow_internet_access: Option<bool>,
}

impl NetworkUpdate {
    /// No rules: everything outbound allowed, default DNS.
    pub fn new() -> Self {
        Self::default()
    }

    /// See [`NetworkOptions::allow_out`]. Defaults to unset (cleared).
    pub fn allow_out<I: IntoIterator<Item = S>, S: Into<String>>(mut self, to: I) -> Self {
        self.egress.allow_out(to);
        self
    }

    /// See [`NetworkOptions::deny_out`]. Defaults to unset (cleared).
    pub fn deny_out<I: IntoIterator<Item = S>, S: Into<String>>(mut self, to: I) -> Self {
        self.egress.deny_out(to);
        self
    }

    /// See [`NetworkOptions::dns_servers`]. Defaults to unset (8.8.8.8).
    pub fn dns_servers<I: IntoIterator<Item = S>, S: Into<String>>(mut self, servers: I) -> Self {
        self.egress.dns_servers(servers);
        self
    }

    /// `false` denies all outbound traffic, like [`deny_out`](Self::deny_out) with
    /// [`ALL_TRAFFIC`]. Defaults to unset.
    pub fn allow_internet_access(mut self, allow: bool) -> Self {
        self.allow_internet_access = Some(allow);
        self
    }
}

/// A sandbox's network settings as the control plane reports them (detail only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[non_exhaustive]
pub struct NetworkInfo {
    /// Destinations allowed even when denied.
    pub allow_out: Option<Vec<String>>,
    /// Destinations denied.
    pub deny_out: Option<Vec<String>>,
    /// DNS servers allowed when `allow_out` names a domain; `None` means 8.8.8.8.
    pub dns_servers: Option<Vec<String>>,
    /// Whether the sandbox's URLs take traffic without its traffic token.
    pub allow_public_traffic: Option<bool>,
    /// The host the proxy sends instead of the request's.
    pub mask_request_host: Option<String>,
    /// Ports reached over HTTPS inside the sandbox, as the API reports them.
    pub https_ports: Option<Vec<i64>>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn bodies_use_the_specs_names_and_leave_unset_fields_out() {
        let options = NetworkOptions::new()
            .allow_out(["api.example.com", "8.8.8.8/32"])
            .deny_out([ALL_TRAFFIC])
            .dns_servers(["1.1.1.1"])
            .mask_request_host("${PORT}-app.example.com")
            .https_ports([3000]);
        assert_eq!(
            serde_json::to_value(options.body()).unwrap(),
            json!({"allowOut": ["api.example.com", "8.8.8.8/32"], "denyOut": ["0.0.0.0/0"],
                   "dnsServers": ["1.1.1.1"], "allowPublicTraffic": false,
                   "maskRequestHost": "${PORT}-app.example.com", "httpsPorts": [3000]})
        );
        assert_eq!(
            serde_json::to_value(NetworkOptions::new().allow_public_traffic(true).body()).unwrap(),
            json!({"allowPublicTraffic": true})
        );
        let update = NetworkUpdate::new()
            .dns_servers(Vec::<String>::new())
            .allow_internet_access(false);
        assert_eq!(
            serde_json::to_value(update).unwrap(),
            json!({"dnsServers": [], "allow_internet_access": false})
        );
        assert_eq!(
            serde_json::to_value(NetworkUpdate::new()).unwrap(),
            json!({})
        );
    }
}
