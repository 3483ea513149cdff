//! Signed file URLs for a sandbox's envd (E2B's `download_url` and `upload_url`): anyone holding
//! the URL may read or write that one path as that user, until the expiry if there is one,
//! without the sandbox's access token.
//!
//! The scheme is E2B's `v1` (`e2b/sandbox/signature.py`, SDK 2.63): `v1_` followed by the
//! unpadded standard base64 of SHA-256 over `path:operation:user:token`, with `:expiry` (Unix
//! seconds) appended when the URL expires. The user is empty for envd's default user.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::config::Secret;
use crate::error::Error;
use crate::net::encode_component;

use super::models::whole_seconds;

/// envd's files route.
const FILES_ROUTE: &str = "/files";
/// The user envd versions before 0.4.0 need named (they had no default user).
const LEGACY_DEFAULT_USER: &str = "user";
/// The first envd version with a default user.
const DEFAULT_USER_SINCE: (u64, u64, u64) = (0, 4, 0);

/// What a signed URL allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Read,
    Write,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Write => "write",
        }
    }
}

/// Who a file URL acts as and how long it works.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileUrlOptions {
    pub(crate) user: Option<String>,
    pub(crate) expires_in: Option<Duration>,
}

impl FileUrlOptions {
    /// envd's default user, no expiry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The user the file is read or written as (`user`, `root`). Defaults to envd's default
    /// user (`user`).
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// How long the URL works from now (whole seconds, rounded up). Defaults to no expiry:
    /// the URL works as long as the sandbox's access token does.
    pub fn expires_in(mut self, expires_in: Duration) -> Self {
        self.expires_in = Some(expires_in);
        self
    }
}

/// The `v1_…` signature for `path`, `operation` as `user` (empty: envd's default user) with
/// `token`, expiring at `expiration` (Unix seconds) if given.
pub(crate) fn sign(
    path: &str,
    operation: Operation,
    user: &str,
    token: &str,
    expiration: Option<u64>,
) -> String {
    let mut raw = format!("{path}:{}:{user}:{token}", operation.as_str());
    if let Some(expiration) = expiration {
        raw.push_str(&format!(":{expiration}"));
    }
    let digest = Sha256::digest(raw.as_bytes());
    format!(
        "v1_{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    )
}

/// The URL for `path` on the envd at `envd_base`: signed with `token` when the sandbox has one,
/// as E2B's SDK builds it (`path`, `username`, `signature`, `signature_expiration`, each value
/// percent-encoded). `now` is the time the expiry counts from.
pub(crate) fn file_url(
    envd_base: &str,
    envd_version: &str,
    token: Option<&Secret>,
    path: &str,
    operation: Operation,
    options: &FileUrlOptions,
    now: SystemTime,
) -> Result<String, Error> {
    let token = token.map(Secret::expose).filter(|t| !t.is_empty());
    if token.is_none() && options.expires_in.is_some() {
        return Err(Error::InvalidArgument(
            "an expiring file URL needs a secured sandbox (one with an envd access token)".into(),
        ));
    }
    let user = match &options.user {
        Some(user) => Some(user.as_str()),
        None if version(envd_version).is_some_and(|v| v < DEFAULT_USER_SINCE) => {
            Some(LEGACY_DEFAULT_USER)
        }
        None => None,
    };
    let mut query = Vec::new();
    if !path.is_empty() {
        query.push(format!("path={}", encode_component(path)));
    }
    if let Some(user) = user.filter(|u| !u.is_empty()) {
        query.push(format!("username={}", encode_component(user)));
    }
    if let Some(token) = token {
        let expiration = options
            .expires_in
            .map(|d| -> Result<u64, Error> {
                let since_epoch = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                Ok(since_epoch + u64::from(whole_seconds(d, "file URL expiry")?))
            })
            .transpose()?;
        let signature = sign(path, operation, user.unwrap_or(""), token, expiration);
        query.push(format!("signature={}", encode_component(&signature)));
        if let Some(expiration) = expiration {
            query.push(format!("signature_expiration={expiration}"));
        }
    }
    let base = envd_base.trim_end_matches('/');
    Ok(format!(
        "{base}{FILES_ROUTE}{}",
        crate::net::query_string(&query)
    ))
}

/// `0.4.0` → `(0, 4, 0)`; a suffix after the numbers is ignored; `None` when it is no version.
fn version(text: &str) -> Option<(u64, u64, u64)> {
    let mut parts = text.trim().trim_start_matches('v').split('.').map(|p| {
        p.split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse::<u64>().ok())
    });
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from `get_signature` of e2b 2.63.0 (`e2b/sandbox/signature.py`), run on these
    /// arguments with `time.time()` fixed at 1767225600.7.
    #[test]
    fn signatures_match_e2bs_sdk() {
        let cases = [
            (
                "/home/user/a.txt",
                Operation::Read,
                "",
                "tok",
                None,
                "v1_Zkbb3914oLJLvMBzCAHQhm2ydBLxbSx2eQUR/kLdvIY",
            ),
            (
                "/home/user/a.txt",
                Operation::Write,
                "user",
                "tok",
                None,
                "v1_ob71eBd6/B8TZfSyP5Exh8UyCTAstOLxKROv6uPKGeI",
            ),
            (
                "/tmp/dir with space/ü.bin",
                Operation::Read,
                "root",
                "e2b_envd_secret",
                Some(1_767_229_200),
                "v1_9AgXUeylYvjdsP5uCkekAU2wNqScgedCnt3amMXuiUo",
            ),
            (
                "x",
                Operation::Write,
                "",
                "tok",
                Some(1_767_225_600),
                "v1_cd+257CrlGPFS7b28Wx8j1QyWAoT2ifvfprGVdMmrWQ",
            ),
        ];
        for (path, op, user, token, expiration, expected) in cases {
            assert_eq!(sign(path, op, user, token, expiration), expected, "{path}");
        }
    }

    #[test]
    fn urls_carry_the_signature_and_expiry_encoded_as_the_sdk_does() {
        let now = UNIX_EPOCH + Duration::from_millis(1_767_225_600_700);
        let token = Secret::new("e2b_envd_secret");
        let url = file_url(
            "https://49983-sbx.e2b.app",
            "0.6.4",
            Some(&token),
            "/tmp/dir with space/ü.bin",
            Operation::Read,
            &FileUrlOptions::new()
                .user("root")
                .expires_in(Duration::from_secs(3600)),
            now,
        )
        .unwrap();
        assert_eq!(
            url,
            "https://49983-sbx.e2b.app/files?path=%2Ftmp%2Fdir%20with%20space%2F%C3%BC.bin\
             &username=root&signature=v1_9AgXUeylYvjdsP5uCkekAU2wNqScgedCnt3amMXuiUo\
             &signature_expiration=1767229200"
        );
        let url = file_url(
            "http://localhost:49983/",
            "0.6.4",
            Some(&token),
            "/home/user/a.txt",
            Operation::Write,
            &FileUrlOptions::new(),
            now,
        )
        .unwrap();
        assert_eq!(
            url,
            format!(
                "http://localhost:49983/files?path=%2Fhome%2Fuser%2Fa.txt&signature={}",
                encode_component(&sign(
                    "/home/user/a.txt",
                    Operation::Write,
                    "",
                    "e2b_envd_secret",
                    None
                ))
            )
        );
    }

    #[test]
    fn old_envd_names_the_user_and_unsecured_sandboxes_are_unsigned() {
        let now = UNIX_EPOCH;
        let url = file_url(
            "http://e",
            "0.3.9",
            None,
            "a",
            Operation::Read,
            &FileUrlOptions::new(),
            now,
        )
        .unwrap();
        assert_eq!(url, "http://e/files?path=a&username=user");
        assert!(matches!(
            file_url(
                "http://e",
                "0.5.0",
                None,
                "a",
                Operation::Read,
                &FileUrlOptions::new().expires_in(Duration::from_secs(1)),
                now
            ),
            Err(Error::InvalidArgument(_))
        ));
        assert_eq!(version("0.4.0"), Some((0, 4, 0)));
        assert_eq!(version("v1.2"), Some((1, 2, 0)));
        assert_eq!(version("0.10.1-rc1"), Some((0, 10, 1)));
        assert_eq!(version(""), None);
    }
}
