//! Secret header values that ureq sends without ever seeing them.
//!
//! At trace level ureq (ureq-proto) hex-dumps every request head it writes, auth headers
//! included, and no option turns that off. So requests carry a random mask of the same length
//! instead of each secret value, and a transport at the end of the agent's connector chain, which
//! sees the bytes after ureq has logged them and before TLS, puts the secrets in place of their
//! masks in the request head.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, DefaultConnector, NextTimeout, Transport,
};

use crate::config::Secret;
use crate::conn::UnixConnector;

/// One header whose value is swapped in on the way out.
struct Swap {
    /// `": <mask>\r\n"`, following the header name in the request head.
    needle: Vec<u8>,
    /// The lowercase header name (ureq writes names in lowercase).
    name: Vec<u8>,
    secret: Secret,
}

/// Headers to send through an agent built by [`agent`]: the names with masked values.
#[derive(Clone, Default)]
pub(crate) struct MaskedHeaders(Vec<(String, String)>);

impl fmt::Debug for MaskedHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(n, _)| n))
            .finish()
    }
}

impl MaskedHeaders {
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// An agent with `config` whose requests may carry `headers` through [`MaskedHeaders`].
pub(crate) fn agent<'a>(
    config: ureq::config::Config,
    headers: impl Iterator<Item = (&'a str, &'a Secret)>,
    unix: Option<&Arc<Path>>,
) -> (ureq::Agent, MaskedHeaders) {
    let mut shown = Vec::new();
    let mut swaps = Vec::new();
    for (name, secret) in headers {
        let mask = mask_for(secret.expose().len());
        swaps.push(Swap {
            needle: format!(": {mask}\r\n").into_bytes(),
            name: name.to_ascii_lowercase().into_bytes(),
            secret: secret.clone(),
        });
        shown.push((name.to_string(), mask));
    }
    let unmask = Unmask(Arc::new(swaps));
    let agent = match unix {
        Some(path) => ureq::Agent::with_parts(
            config,
            UnixConnector(path.clone()).chain(unmask),
            DefaultResolver::default(),
        ),
        None => ureq::Agent::with_parts(
            config,
            DefaultConnector::new().chain(unmask),
            DefaultResolver::default(),
        ),
    };
    (agent, MaskedHeaders(shown))
}

/// Random hex of `len` bytes.
fn mask_for(len: usize) -> String {
    let mut out = String::with_capacity(len + 32);
    while out.len() < len {
        out.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    out.truncate(len);
    out
}

#[derive(Clone)]
struct Unmask(Arc<Vec<Swap>>);

impl fmt::Debug for Unmask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unmask").finish_non_exhaustive()
    }
}

impl Connector<Box<dyn Transport>> for Unmask {
    type Out = Unmasking;

    fn connect(
        &self,
        _: &ConnectionDetails,
        chained: Option<Box<dyn Transport>>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(|inner| Unmasking {
            inner,
            swaps: self.0.clone(),
        }))
    }
}

/// The transport that swaps secrets for masks in what it transmits.
struct Unmasking {
    inner: Box<dyn Transport>,
    swaps: Arc<Vec<Swap>>,
}

impl fmt::Debug for Unmasking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unmasking")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl Transport for Unmasking {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let out = self.inner.buffers().output();
        let end = amount.min(out.len());
        unmask(&mut out[..end], &self.swaps);
        self.inner.transmit_output(amount, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

/// Swaps masks for secrets in place, in a request head only: bytes that do not start with a
/// request line are body bytes, which are sent as they are.
fn unmask(out: &mut [u8], swaps: &[Swap]) {
    if swaps.is_empty() || !starts_with_request_line(out) {
        return;
    }
    let head_end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(out.len(), |at| at + 4);
    let head = &mut out[..head_end];
    for swap in swaps {
        let Some(at) = head
            .windows(swap.needle.len())
            .position(|w| w == swap.needle.as_slice())
        else {
            continue;
        };
        // The mask must be the value of its own header, not any other.
        let line_start = head[..at]
            .windows(2)
            .rposition(|w| w == b"\r\n")
            .map_or(0, |p| p + 2);
        if !head[line_start..at].eq_ignore_ascii_case(&swap.name) {
            continue;
        }
        let value = at + 2;
        let secret = swap.secret.expose().as_bytes();
        head[value..value + secret.len()].copy_from_slice(secret);
    }
}

/// `METHOD SP target SP HTTP/1.x CRLF` at the start of `out`.
fn starts_with_request_line(out: &[u8]) -> bool {
    let Some(eol) = out.windows(2).position(|w| w == b"\r\n") else {
        return false;
    };
    let line = &out[..eol];
    let method_len = line.iter().take_while(|b| b.is_ascii_uppercase()).count();
    method_len > 0
        && line.get(method_len) == Some(&b' ')
        && (line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn swaps(pairs: &[(&str, &str)]) -> (Vec<Swap>, Vec<(String, String)>) {
        let mut out = Vec::new();
        let mut shown = Vec::new();
        for (name, secret) in pairs {
            let mask = mask_for(secret.len());
            out.push(Swap {
                needle: format!(": {mask}\r\n").into_bytes(),
                name: name.to_ascii_lowercase().into_bytes(),
                secret: Secret::new(*secret),
            });
            shown.push((name.to_string(), mask));
        }
        (out, shown)
    }

    #[test]
    fn masks_in_a_request_head_become_the_secrets() {
        let (swaps, shown) = swaps(&[("Authorization", "token abc"), ("X-API-KEY", "k")]);
        let head = format!(
            "GET /api HTTP/1.1\r\nhost: h\r\nauthorization: {}\r\nx-api-key: {}\r\n\r\n",
            shown[0].1, shown[1].1
        );
        let mut bytes = head.into_bytes();
        unmask(&mut bytes, &swaps);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "GET /api HTTP/1.1\r\nhost: h\r\nauthorization: token abc\r\nx-api-key: k\r\n\r\n"
        );
    }

    #[test]
    fn bodies_and_other_headers_are_left_alone() {
        let (swaps, shown) = swaps(&[("X-API-KEY", "k")]);
        let mask = &shown[0].1;
        // The one-byte mask as the value of another header, and in a body chunk.
        let head = format!("POST / HTTP/1.1\r\nx-other: {mask}\r\n\r\n");
        let mut bytes = head.clone().into_bytes();
        unmask(&mut bytes, &swaps);
        assert_eq!(bytes, head.as_bytes());
        let body = format!("x-api-key: {mask}\r\n");
        let mut bytes = body.clone().into_bytes();
        unmask(&mut bytes, &swaps);
        assert_eq!(bytes, body.as_bytes());
    }

    #[test]
    fn masks_have_the_secrets_length_and_differ() {
        for len in [1, 31, 32, 33, 200] {
            assert_eq!(mask_for(len).len(), len);
        }
        assert_ne!(mask_for(64), mask_for(64));
    }
}
