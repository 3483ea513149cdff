//! Sandbox paths: resolving a user's path as code in the sandbox would, and how it appears in
//! URLs and errors.

use crate::error::Error;
use crate::net::encode_component;

/// True when a component of `rel` starts with a dot (what jupyter_server calls hidden).
pub(super) fn is_hidden(rel: &str) -> bool {
    rel.split('/').any(|part| part.starts_with('.'))
}

/// How a relative path appears in errors: `.` for the root.
pub(super) fn shown(rel: &str) -> String {
    if rel.is_empty() {
        ".".into()
    } else {
        rel.to_string()
    }
}

pub(super) fn encoded(rel: &str) -> String {
    rel.split('/')
        .map(encode_component)
        .collect::<Vec<_>>()
        .join("/")
}

pub(super) fn api_path(rel: &str) -> String {
    format!("/api/contents/{}", encoded(rel))
}

pub(super) fn files_path(rel: &str) -> String {
    format!("/files/{}", encoded(rel))
}

/// A path of a `files()` call, resolved as code in the sandbox resolves it: relative paths
/// against the sandbox root, `.` and `..` lexically (as E2B's envd does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SandboxPath {
    /// Relative to the root (`""` for the root itself) for a path in the root, which the
    /// contents API serves; absolute for a path elsewhere, which only a kernel reaches.
    pub(crate) rel: String,
    /// The root as code sees it, when resolving the path needed it.
    root: Option<String>,
    /// Whether the caller named an absolute path: errors then name absolute paths too.
    absolute: bool,
}

impl SandboxPath {
    /// True for a path outside the root.
    pub(crate) fn outside(&self) -> bool {
        self.rel.starts_with('/')
    }

    /// True for the root itself or a directory that holds it (`/home`, `/`), which removing
    /// or renaming would take the root with it.
    pub(crate) fn holds_root(&self) -> bool {
        self.rel.is_empty()
            || self.root.as_deref().is_some_and(|root| {
                self.outside() && (self.rel == "/" || root.starts_with(&format!("{}/", self.rel)))
            })
    }

    /// `e` with the paths of file errors in the caller's terms: absolute when the caller
    /// named an absolute path (the root as code sees it, never the host's directory),
    /// relative to the root otherwise.
    pub(crate) fn named(&self, mut e: Error) -> Error {
        if let (Some(root), true) = (self.root.as_deref(), self.absolute)
            && let Some(path) = file_error_path(&mut e)
            && !path.starts_with('/')
        {
            *path = if path.is_empty() || path == "." {
                root.to_string()
            } else {
                format!("{}/{path}", root.trim_end_matches('/'))
            };
        }
        e
    }
}

/// The path a file error names, if `e` is one.
pub(super) fn file_error_path(e: &mut Error) -> Option<&mut String> {
    match e {
        Error::FileNotFound { path }
        | Error::NotADirectory { path }
        | Error::IsADirectory { path }
        | Error::PermissionDenied { path } => Some(path),
        _ => None,
    }
}

/// Resolves a user's path. `roots` gives the root as code sees it (first) and other names of
/// the same directory; it is asked only for an absolute path or one whose `..` climbs above
/// the root.
pub(crate) fn resolve(
    path: &str,
    roots: impl FnOnce() -> Result<Vec<String>, Error>,
) -> Result<SandboxPath, Error> {
    if path.contains('\0') {
        return Err(Error::InvalidArgument(format!(
            "path {path:?} contains a NUL byte"
        )));
    }
    if !path.starts_with('/')
        && let Some(parts) = resolve_relative(path)
    {
        return Ok(SandboxPath {
            rel: parts.join("/"),
            root: None,
            absolute: false,
        });
    }
    let roots = roots()?;
    let Some(root) = roots.first() else {
        return Err(Error::protocol("the sandbox root is not known"));
    };
    let joined;
    let absolute = if path.starts_with('/') {
        path
    } else {
        joined = format!("{root}/{path}");
        &joined
    };
    // "/.." is "/" in POSIX, so an absolute path always resolves.
    let parts = resolve_absolute(absolute);
    let inside = roots.iter().find_map(|r| {
        let r = resolve_absolute(r);
        (parts.len() >= r.len() && parts[..r.len()] == r[..]).then(|| parts[r.len()..].join("/"))
    });
    Ok(SandboxPath {
        rel: inside.unwrap_or_else(|| format!("/{}", parts.join("/"))),
        root: Some(root.clone()),
        absolute: path.starts_with('/'),
    })
}

/// Components of a relative path with `.` and `..` applied; `None` if `..` climbs above it.
fn resolve_relative(path: &str) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts)
}

fn resolve_absolute(path: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> Result<Vec<String>, Error> {
        Ok(vec!["/home/user".into()])
    }

    fn rel(path: &str) -> String {
        resolve(path, home).unwrap().rel
    }

    #[test]
    fn relative_paths_in_the_root_need_no_root() {
        let unknown = || -> Result<Vec<String>, Error> { panic!("root asked for") };
        for (path, want) in [
            ("a/b.txt", "a/b.txt"),
            ("./a//b/../c", "a/c"),
            ("", ""),
            (".", ""),
            ("a/..", ""),
        ] {
            assert_eq!(resolve(path, unknown).unwrap().rel, want, "{path}");
        }
        assert!(matches!(
            resolve("a\0b", unknown),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn absolute_and_climbing_paths_mean_what_code_sees() {
        assert_eq!(rel("/home/user"), "");
        assert_eq!(rel("/home/user/a.txt"), "a.txt");
        assert_eq!(rel("/home/user/x/../y"), "y");
        assert_eq!(rel("/tmp/x"), "/tmp/x");
        assert_eq!(rel("/home/userx/a"), "/home/userx/a");
        assert_eq!(rel("/home/user/../x"), "/home/x");
        assert_eq!(rel("../x"), "/home/x");
        assert_eq!(rel("../user/a"), "a");
        assert_eq!(rel("a/../../../../etc/passwd"), "/etc/passwd");
        assert_eq!(rel("/.."), "/");
        // Another name of the root (the host's path of an unisolated root) is the root too.
        let both = || Ok(vec!["/private/tmp/r".into(), "/tmp/r".into()]);
        assert_eq!(resolve("/tmp/r/a", both).unwrap().rel, "a");
        assert_eq!(resolve("/tmp/s", both).unwrap().rel, "/tmp/s");
    }

    #[test]
    fn the_root_and_its_parents_are_held_apart() {
        for held in ["", "/home/user", "/home", "/", "/home/user/.."] {
            assert!(resolve(held, home).unwrap().holds_root(), "{held}");
        }
        for free in ["a", "/home/user/a", "/home/userx", "/tmp", "/hom"] {
            assert!(!resolve(free, home).unwrap().holds_root(), "{free}");
        }
    }

    #[test]
    fn errors_name_paths_as_the_caller_gave_them() {
        let missing = |p: &str| Error::FileNotFound { path: p.into() };
        let path_of = |e: Error| match e {
            Error::FileNotFound { path } => path,
            other => panic!("{other:?}"),
        };
        let given = resolve("/home/user/a/b", home).unwrap();
        assert_eq!(path_of(given.named(missing("a"))), "/home/user/a");
        assert_eq!(path_of(given.named(missing("."))), "/home/user");
        assert_eq!(path_of(given.named(missing("/tmp/x"))), "/tmp/x");
        let relative = resolve("a/b", home).unwrap();
        assert_eq!(path_of(relative.named(missing("a"))), "a");
        let other = Error::InvalidArgument("x".into());
        assert!(matches!(given.named(other), Error::InvalidArgument(_)));
    }

    #[test]
    fn urls_encode_each_segment() {
        assert_eq!(api_path("a b/c#d.txt"), "/api/contents/a%20b/c%23d.txt");
        assert_eq!(files_path(".env"), "/files/.env");
        assert_eq!(api_path(""), "/api/contents/");
    }
}
