//! Contexts: each one is its own kernel, with its own state, working directory and connection.

/// A handle on one kernel of the sandbox, as returned by `create_context`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Context {
    /// The kernel id.
    pub id: String,
    /// The language the kernel runs (`python`, `javascript`, …).
    pub language: String,
    /// The working directory it was created with, if one was given.
    pub cwd: Option<String>,
}

/// Options for `Sandbox::create_context`.
#[derive(Debug, Clone, Default)]
pub struct ContextOptions {
    pub(crate) language: Option<String>,
    pub(crate) cwd: Option<String>,
    pub(crate) envs: crate::env_vars::EnvVars,
}

impl ContextOptions {
    /// Options with every default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Kernel language (`python`, `javascript`, `r`, `bash`, `java`) or a kernelspec name.
    /// Defaults to `python`.
    pub fn language(mut self, language: impl Into<String>) -> Self {
        self.language = Some(language.into());
        self
    }

    /// Working directory of the kernel, relative to the sandbox root or absolute.
    /// Defaults to the server's root directory.
    pub fn cwd(mut self, cwd: impl Into<String>) -> Self {
        self.cwd = Some(cwd.into());
        self
    }

    /// Environment variables set in this context for its whole life (after the sandbox's own).
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
}
