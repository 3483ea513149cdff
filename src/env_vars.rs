//! Env vars as this crate holds them. Their values are often API keys (the reason to hand them
//! to a sandbox), so `Debug` output shows their names and never their values.

use std::fmt;
use std::ops::{Deref, DerefMut};

/// Name-value pairs in the order given; `Debug` hides the values.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct EnvVars(Vec<(String, String)>);

impl Deref for EnvVars {
    type Target = Vec<(String, String)>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for EnvVars {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl From<Vec<(String, String)>> for EnvVars {
    fn from(vars: Vec<(String, String)>) -> Self {
        EnvVars(vars)
    }
}

impl FromIterator<(String, String)> for EnvVars {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(vars: I) -> Self {
        EnvVars(vars.into_iter().collect())
    }
}

impl IntoIterator for EnvVars {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a EnvVars {
    type Item = &'a (String, String);
    type IntoIter = std::slice::Iter<'a, (String, String)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Debug for EnvVars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        names(self.0.iter().map(|(name, _)| name.as_str())).fmt(f)
    }
}

/// Name-value pairs as the builders' `envs(..)` and `metadata(..)` setters take them, owned.
pub(crate) fn owned<I, K, V>(pairs: I) -> impl Iterator<Item = (String, String)>
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<String>,
{
    pairs.into_iter().map(|(k, v)| (k.into(), v.into()))
}

/// A `Debug` view of env vars by name: `{"API_KEY": ***}`.
pub(crate) fn names<'a>(names: impl IntoIterator<Item = &'a str>) -> impl fmt::Debug + 'a {
    struct Hidden;
    impl fmt::Debug for Hidden {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("***")
        }
    }
    struct Names<'a>(Vec<&'a str>);
    impl fmt::Debug for Names<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_map()
                .entries(self.0.iter().map(|name| (name, Hidden)))
                .finish()
        }
    }
    Names(names.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_names_not_values() {
        let vars = EnvVars::from(vec![("API_KEY".to_string(), "sk-live-1".to_string())]);
        assert_eq!(format!("{vars:?}"), r#"{"API_KEY": ***}"#);
    }

    #[test]
    fn no_options_type_shows_an_env_value() {
        let env = [("API_KEY", "sk-live-1")];
        let shown = [
            format!("{:?}", crate::ContextOptions::new().envs(env)),
            format!("{:?}", crate::Sandbox::builder().envs(env)),
            format!("{:?}", crate::E2bOptions::new().envs(env)),
            format!("{:?}", crate::PtyOptions::default().envs(env)),
        ];
        for debug in shown {
            assert!(
                debug.contains("API_KEY") && !debug.contains("sk-live"),
                "{debug}"
            );
        }
    }
}
