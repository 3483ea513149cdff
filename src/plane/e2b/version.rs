//! envd versions and the features that need a newer one (the gates of E2B's SDK,
//! `e2b/envd/versions.py`).

use crate::error::Error;

/// envd's version, as the control plane reports it (`envdVersion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct EnvdVersion(u32, u32, u32);

/// Watching a directory recursively.
pub(crate) const RECURSIVE_WATCH: EnvdVersion = EnvdVersion(0, 1, 4);
/// Writing to a command's stdin.
pub(crate) const COMMAND_STDIN: EnvdVersion = EnvdVersion(0, 3, 0);
/// envd picks the user when a request names none (older ones want `user` named).
pub(crate) const DEFAULT_USER: EnvdVersion = EnvdVersion(0, 4, 0);
/// Closing a command's stdin.
pub(crate) const CLOSE_STDIN: EnvdVersion = EnvdVersion(0, 5, 2);
/// Uploads as `application/octet-stream` (older ones take multipart only).
pub(crate) const OCTET_STREAM_UPLOAD: EnvdVersion = EnvdVersion(0, 5, 7);

impl EnvdVersion {
    /// What the SDKs assume when no version is known (debug mode): the newest.
    pub(crate) const NEWEST: EnvdVersion = EnvdVersion(99, 99, 99);

    /// Parses `0.6.4` (a `v` prefix and a pre-release suffix are allowed); anything else, or
    /// nothing, counts as the newest, as in E2B's SDKs.
    pub(crate) fn parse(text: &str) -> EnvdVersion {
        let core = text.trim().trim_start_matches('v');
        let core = core.split(['-', '+']).next().unwrap_or("");
        let mut parts = core.split('.').map(|p| p.parse::<u32>());
        match (parts.next(), parts.next(), parts.next()) {
            (Some(Ok(a)), Some(Ok(b)), Some(Ok(c))) => EnvdVersion(a, b, c),
            _ => EnvdVersion::NEWEST,
        }
    }

    /// `Err(Unsupported)` naming `feature` and both versions when this envd is older than `needs`.
    pub(crate) fn require(&self, needs: EnvdVersion, feature: &'static str) -> Result<(), Error> {
        if *self >= needs {
            return Ok(());
        }
        Err(Error::Unsupported {
            feature,
            needs: format!("envd {needs}"),
            found: format!("envd {self}"),
        })
    }

    /// The user to name in a request: the caller's, else `user` for an envd that does not pick
    /// one itself.
    pub(crate) fn user_for<'a>(&self, user: Option<&'a str>) -> Option<&'a str> {
        match user {
            Some(u) => Some(u),
            None if *self < DEFAULT_USER => Some("user"),
            None => None,
        }
    }
}

impl std::fmt::Display for EnvdVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if *self == EnvdVersion::NEWEST {
            return f.write_str("(unknown, taken as newest)");
        }
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_gates() {
        assert_eq!(EnvdVersion::parse("0.6.4"), EnvdVersion(0, 6, 4));
        assert_eq!(EnvdVersion::parse("v0.2.0-rc1"), EnvdVersion(0, 2, 0));
        assert_eq!(EnvdVersion::parse(""), EnvdVersion::NEWEST);
        let old = EnvdVersion::parse("0.2.0");
        let err = old.require(COMMAND_STDIN, "a command's stdin").unwrap_err();
        assert_eq!(
            err.to_string(),
            "a command's stdin needs envd 0.3.0; the sandbox has envd 0.2.0"
        );
        assert!(
            EnvdVersion::parse("0.3.0")
                .require(COMMAND_STDIN, "x")
                .is_ok()
        );
        assert_eq!(old.user_for(None), Some("user"));
        assert_eq!(EnvdVersion::parse("0.4.0").user_for(None), None);
        assert_eq!(old.user_for(Some("root")), Some("root"));
    }
}
