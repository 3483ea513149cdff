//! The `http+unix://` URL form of a server on a Unix socket: the socket's path, percent-encoded,
//! as the host (`http+unix://%2Ftmp%2Fs.sock/prefix`), the convention of requests-unixsocket and
//! other HTTP clients. [`Sandbox::jupyter_url`](crate::Sandbox::jupyter_url) gives an isolated
//! local sandbox's server in this form, and [`Sandbox::jupyter`](crate::Sandbox::jupyter)
//! accepts it, so the one can be handed to the other.

use std::path::{Path, PathBuf};

use crate::error::Error;

/// The scheme, with its separator.
pub(crate) const SCHEME: &str = "http+unix://";

/// `http+unix://{path}{prefix}`, `prefix` empty or starting with `/`.
pub(crate) fn format(path: &Path, prefix: &str) -> String {
    let path = crate::net::encode_bytes(path.as_os_str().as_encoded_bytes());
    format!("{SCHEME}{path}{prefix}")
}

/// The socket path and the path prefix (empty or starting with `/`) of an `http+unix://` URL;
/// `None` when `url` is not of that scheme.
///
/// # Errors
///
/// [`Error::InvalidArgument`] for a malformed escape or a path that is not absolute.
pub(crate) fn parse(url: &str) -> Option<Result<(PathBuf, String), Error>> {
    let rest = url.strip_prefix(SCHEME)?;
    let (host, prefix) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    Some(decode(host).and_then(|path| {
        if !path.is_absolute() {
            return Err(Error::InvalidArgument(format!(
                "{url:?}: the socket path (percent-encoded, `/` as %2F) must be absolute"
            )));
        }
        Ok((path, prefix.trim_end_matches('/').to_string()))
    }))
}

fn decode(host: &str) -> Result<PathBuf, Error> {
    let bad = || Error::InvalidArgument(format!("{host:?}: a malformed percent escape"));
    let bytes = host.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = host.get(i + 1..i + 3).ok_or_else(bad)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    use std::os::unix::ffi::OsStringExt;
    Ok(PathBuf::from(std::ffi::OsString::from_vec(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_it_cannot_read() {
        let path = Path::new("/tmp/e2b local-1/sock/server.sock");
        let url = format(path, "");
        assert_eq!(
            url,
            "http+unix://%2Ftmp%2Fe2b%20local-1%2Fsock%2Fserver.sock"
        );
        let (back, prefix) = parse(&url).unwrap().unwrap();
        assert_eq!((back.as_path(), prefix.as_str()), (path, ""));
        let (_, prefix) = parse(&format!("{url}/jupyter/")).unwrap().unwrap();
        assert_eq!(prefix, "/jupyter");
        assert!(parse("http://localhost").is_none());
        assert!(matches!(
            parse("http+unix://relative.sock"),
            Some(Err(Error::InvalidArgument(_)))
        ));
        assert!(matches!(
            parse("http+unix://%2Ftmp%2"),
            Some(Err(Error::InvalidArgument(_)))
        ));
    }
}
