//! Sandbox paths: resolving a user's path inside the root, and how it appears in URLs and errors.

use std::path::Path;

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

/// Resolves `.` and `..` in a user's path and returns it relative to the sandbox root,
/// `/`-separated, `""` for the root. Refuses paths that leave the root.
pub(crate) fn normalize(path: &str, root: Option<&Path>) -> Result<String, Error> {
    if path.contains('\0') {
        return Err(Error::InvalidArgument(format!(
            "path {path:?} contains a NUL byte"
        )));
    }
    if !path.starts_with('/') {
        let parts = resolve(path).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "path {path:?} leaves the sandbox root; paths are relative to the root and `..` \
                 may not climb above it"
            ))
        })?;
        return Ok(parts.join("/"));
    }
    let Some(root) = root else {
        return Err(Error::InvalidArgument(format!(
            "absolute path {path:?}: this sandbox's root directory is not known to the client; \
             pass a path relative to the root"
        )));
    };
    // "/.." is "/" in POSIX, so an absolute path always resolves.
    let parts = resolve_absolute(path);
    let mut roots = vec![root.to_path_buf()];
    if let Ok(canonical) = root.canonicalize()
        && canonical != root
    {
        roots.push(canonical);
    }
    for r in &roots {
        let Some(r) = r.to_str() else { continue };
        let root_parts = resolve_absolute(r);
        if parts.len() >= root_parts.len() && parts[..root_parts.len()] == root_parts[..] {
            return Ok(parts[root_parts.len()..].join("/"));
        }
    }
    Err(Error::InvalidArgument(format!(
        "path {path:?} is outside the sandbox root {}",
        root.display()
    )))
}

/// Components of a relative path with `.` and `..` applied; `None` if `..` climbs above it.
pub(super) fn resolve(path: &str) -> Option<Vec<&str>> {
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

pub(super) fn resolve_absolute(path: &str) -> Vec<&str> {
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

    #[test]
    fn relative_paths_resolve_inside_the_root() {
        assert_eq!(normalize("a/b.txt", None).unwrap(), "a/b.txt");
        assert_eq!(normalize("./a//b/../c", None).unwrap(), "a/c");
        assert_eq!(normalize("", None).unwrap(), "");
        assert_eq!(normalize(".", None).unwrap(), "");
        assert_eq!(normalize("a/..", None).unwrap(), "");
        for bad in [
            "..",
            "../x",
            "a/../../x",
            "./../x",
            "a/b/../../../etc/passwd",
        ] {
            let err = normalize(bad, None).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn absolute_paths_must_stay_in_a_known_root() {
        let root = Path::new("/srv/sbx/root");
        assert_eq!(
            normalize("/srv/sbx/root/a.txt", Some(root)).unwrap(),
            "a.txt"
        );
        assert_eq!(normalize("/srv/sbx/root", Some(root)).unwrap(), "");
        assert_eq!(normalize("/srv/sbx/root/x/../y", Some(root)).unwrap(), "y");
        for bad in ["/etc/passwd", "/srv/sbx/root/../x", "/srv/sbx/rootx/a"] {
            assert!(normalize(bad, Some(root)).is_err(), "{bad}");
        }
        assert!(normalize("/srv/sbx/root/a", None).is_err());
        assert!(normalize("a\0b", None).is_err());
    }

    #[test]
    fn urls_encode_each_segment() {
        assert_eq!(api_path("a b/c#d.txt"), "/api/contents/a%20b/c%23d.txt");
        assert_eq!(files_path(".env"), "/files/.env");
        assert_eq!(api_path(""), "/api/contents/");
    }
}
