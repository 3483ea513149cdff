//! Secret header values that ureq never sees: it is given a random mask of the same length for
//! each, and [`unmask`] puts the secrets in place of their masks in a request head on its way out,
//! below ureq (see [`super::chain`]).

use std::fmt;

use crate::config::Secret;

/// One header whose value is swapped in on the way out.
pub(super) struct Swap {
    /// `": <mask>\r\n"`, following the header name in the request head.
    needle: Vec<u8>,
    /// The lowercase header name (ureq writes names in lowercase).
    name: Vec<u8>,
    secret: Secret,
}

impl Swap {
    /// The swap for header `name` with value `secret`, and the mask to hand ureq instead.
    pub(super) fn new(name: &str, secret: &Secret) -> (Swap, String) {
        let mask = mask_for(secret.expose().len());
        let swap = Swap {
            needle: format!(": {mask}\r\n").into_bytes(),
            name: name.to_ascii_lowercase().into_bytes(),
            secret: secret.clone(),
        };
        (swap, mask)
    }
}

/// Headers to send through an agent built by [`super::agent`]: the names with masked values.
#[derive(Clone, Default)]
pub(crate) struct MaskedHeaders(pub(super) Vec<(String, String)>);

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

/// Random hex of `len` bytes.
fn mask_for(len: usize) -> String {
    let mut out = String::with_capacity(len + 32);
    while out.len() < len {
        out.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    out.truncate(len);
    out
}

/// Swaps masks for secrets in place, in a request head only: bytes that do not start with a
/// request line are body bytes, which are sent as they are.
pub(super) fn unmask(out: &mut [u8], swaps: &[Swap]) {
    if swaps.is_empty() || request_method(out).is_none() {
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

/// The method of the request line (`METHOD SP target SP HTTP/1.x CRLF`) at the start of `out`,
/// if it starts with one.
pub(super) fn request_method(out: &[u8]) -> Option<&[u8]> {
    let eol = out.windows(2).position(|w| w == b"\r\n")?;
    let line = &out[..eol];
    let method_len = line.iter().take_while(|b| b.is_ascii_uppercase()).count();
    (method_len > 0
        && line.get(method_len) == Some(&b' ')
        && (line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0")))
    .then_some(&line[..method_len])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn swaps(pairs: &[(&str, &str)]) -> (Vec<Swap>, Vec<String>) {
        pairs
            .iter()
            .map(|(name, secret)| Swap::new(name, &Secret::new(*secret)))
            .unzip()
    }

    #[test]
    fn masks_in_a_request_head_become_the_secrets() {
        let (swaps, masks) = swaps(&[("Authorization", "token abc"), ("X-API-KEY", "k")]);
        let head = format!(
            "GET /api HTTP/1.1\r\nhost: h\r\nauthorization: {}\r\nx-api-key: {}\r\n\r\n",
            masks[0], masks[1]
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
        let (swaps, masks) = swaps(&[("X-API-KEY", "k")]);
        let mask = &masks[0];
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

    #[test]
    fn masked_headers_debug_shows_names_only() {
        let (_, mask) = Swap::new("X-API-KEY", &Secret::new("sekrit"));
        let shown = MaskedHeaders(vec![("X-API-KEY".into(), mask.clone())]);
        let dbg = format!("{shown:?}");
        assert!(dbg.contains("X-API-KEY") && !dbg.contains(&mask), "{dbg}");
    }
}
