//! The contents API plumbing under [`Files`]: models, `mkdir -p`, PUTs with per-socket
//! deadlines, downloads, and the typed errors of failed responses.

use serde_json::json;

use crate::error::Error;
use crate::net::{Http, Method, Response, describe};

use super::path::*;
use crate::model::entry::{EntryInfo, FileType, parse_rfc3339};
use serde::Deserialize;
use serde_json::Value;

use super::Files;

/// Largest error or JSON body read into memory.
pub(super) const SMALL_BODY: u64 = 16 << 20;

impl Files {
    pub(super) fn model(&self, rel: &str) -> Result<Model, Error> {
        if self.via_kernel(rel) {
            return self.kernel_model(json!({"op": "stat", "path": rel}));
        }
        let resp = self
            .http()
            .send(Method::Get, &format!("{}?content=0", api_path(rel)), None)?;
        if !resp.is_success() {
            return Err(contents_error(resp, rel));
        }
        resp.json()
    }

    /// `mkdir -p`: every component in turn (creating an existing directory is a no-op).
    pub(super) fn make_dirs(&self, rel: &str) -> Result<(), Error> {
        if self.via_kernel(rel) {
            return self.kernel(json!({"op": "mkdir", "path": rel})).map(drop);
        }
        let body = json!({ "type": "directory" });
        let mut prefix = String::new();
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            let resp = self
                .http()
                .send(Method::Put, &api_path(&prefix), Some(&body))?;
            if !resp.is_success() {
                return Err(contents_error(resp, &prefix));
            }
        }
        Ok(())
    }

    /// After a write to `rel` failed: creates its parent directory if that is what was missing.
    /// Returns true when it did (the write is worth retrying).
    pub(super) fn fix_parent(&self, rel: &str) -> Result<bool, Error> {
        let Some((parent, _)) = rel.rsplit_once('/') else {
            return Ok(false);
        };
        match self.model(parent) {
            Ok(m) if m.kind == "directory" => Ok(false),
            Ok(_) => Err(Error::NotADirectory {
                path: parent.to_string(),
            }),
            Err(Error::FileNotFound { .. }) => {
                log::debug!("creating missing directory {parent}");
                self.make_dirs(parent)?;
                Ok(true)
            }
            // A parent that is a file shows up as "not a directory" on the way down.
            Err(Error::NotADirectory { path }) => Err(Error::NotADirectory { path }),
            Err(e) => {
                log::debug!("could not check {parent}: {e}");
                Ok(false)
            }
        }
    }

    /// PUTs a prepared JSON body; retries once after creating missing parents.
    pub(super) fn put(&self, rel: &str, body: &str) -> Result<Model, Error> {
        let mut resp = self.put_raw(rel, body)?;
        if !resp.is_success() && resp.status >= 500 && self.fix_parent(rel)? {
            resp = self.put_raw(rel, body)?;
        }
        if !resp.is_success() {
            return Err(contents_error(resp, rel));
        }
        resp.json()
    }

    /// One PUT with a body that may be large: the deadline applies per socket read or write,
    /// not to the whole request.
    pub(super) fn put_raw(&self, rel: &str, body: &str) -> Result<Response, Error> {
        let http = self.http();
        let path = api_path(rel);
        let endpoint = describe(Method::Put, &path);
        log::trace!("{endpoint} ({} bytes)", body.len());
        let resp = per_io_deadlines(http, http.agent().put(http.endpoint().url(&path)))
            .header("Content-Type", "application/json")
            .send(body)
            .map_err(|e| http.transport_error(&endpoint, e))?;
        read_small(http, resp, endpoint)
    }

    /// Opens `GET /files/<path>`; errors are classified through the contents API. `None`
    /// when the server will not serve the file by name though it exists: a symbolic link
    /// that leads out of the root (or to what is not a regular file), which `/files/`
    /// (tornado's static file handler) refuses with a 403 and a kernel reads as code would.
    pub(super) fn open_download(
        &self,
        rel: &str,
    ) -> Result<Option<ureq::http::Response<ureq::Body>>, Error> {
        if rel.is_empty() {
            return Err(Error::IsADirectory { path: shown(rel) });
        }
        let http = self.http();
        let path = files_path(rel);
        let endpoint = describe(Method::Get, &path);
        log::trace!("{endpoint}");
        let resp = per_io_deadlines(http, http.agent().get(http.endpoint().url(&path)))
            .call()
            .map_err(|e| http.transport_error(&endpoint, e))?;
        if resp.status().is_success() {
            return Ok(Some(resp));
        }
        let failed = read_small(http, resp, endpoint)?;
        // /files/ answers 404 HTML pages, 403 for directories and a redirect to its login
        // page for a token it does not take: ask the contents API why, which says 403 to a
        // bad token.
        match self.model(rel) {
            Ok(m) if m.kind == "directory" => Err(Error::IsADirectory { path: shown(rel) }),
            Ok(_) if refused_by_name(&failed) => {
                log::debug!(
                    "{} is not served by name; reading it through a kernel",
                    shown(rel)
                );
                Ok(None)
            }
            // The token just worked for the contents API: this 403 refuses the path.
            Ok(_) if failed.status == 403 => Err(Error::PermissionDenied { path: shown(rel) }),
            Ok(_) => Err(contents_error(failed, rel)),
            Err(e) => Err(e),
        }
    }
}

/// Whether a failed `/files/` answer is tornado's refusal of the path itself, not of the
/// token: a 403 whose page says the resolved file is outside the root or not a regular file.
/// (A bad token gets a redirect to the login page there, and a 403 from the contents API.)
fn refused_by_name(resp: &Response) -> bool {
    let body = String::from_utf8_lossy(&resp.body);
    resp.status == 403
        && (body.contains("is not in root static directory") || body.contains("is not a file"))
}

/// `req` with the sandbox's headers and its request timeout per socket read or write (and for
/// the answer) instead of for the whole request, so a large transfer over a slow link does not
/// time out while data keeps flowing.
fn per_io_deadlines<B>(http: &Http, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
    let t = Some(http.request_timeout());
    http.headed(req)
        .config()
        // A redirect here is jupyter_server sending a bad token to its login page, whose
        // HTML must not be taken for the file.
        .max_redirects(0)
        .timeout_global(None)
        .timeout_per_write(t)
        .timeout_per_read(t)
        .timeout_recv_response(t)
        .build()
}

/// Reads a (small) response body into a [`Response`] to judge its status.
pub(super) fn read_small(
    http: &Http,
    resp: ureq::http::Response<ureq::Body>,
    endpoint: String,
) -> Result<Response, Error> {
    http.read_response(resp, &endpoint, SMALL_BODY)
}

/// Maps a failed contents API response to the typed file errors.
pub(super) fn contents_error(resp: Response, rel: &str) -> Error {
    let message = resp.message().to_ascii_lowercase();
    let path = shown(rel);
    match resp.status {
        404 => Error::FileNotFound { path },
        403 if message.contains("permission denied") => Error::PermissionDenied { path },
        400 if message.contains("not a directory") => Error::NotADirectory { path },
        400 if message.contains("non-file") => Error::IsADirectory { path },
        500 if message.contains("not a directory") => Error::NotADirectory { path },
        500 if message.contains("is a directory") => Error::IsADirectory { path },
        500 if message.contains("permission denied") => Error::PermissionDenied { path },
        _ => resp.into_error(),
    }
}

/// A model of the contents API, without content (or with a directory listing).
#[derive(Debug, Deserialize)]
pub(super) struct Model {
    #[serde(default)]
    pub(super) name: String,
    #[serde(default)]
    pub(super) path: String,
    #[serde(rename = "type", default)]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) size: Option<u64>,
    #[serde(default)]
    pub(super) last_modified: Option<String>,
    #[serde(default)]
    pub(super) content: Value,
}

impl Model {
    pub(super) fn info(&self) -> EntryInfo {
        let kind = if self.kind == "directory" {
            FileType::Dir
        } else {
            FileType::File
        };
        EntryInfo {
            name: self.name.clone(),
            path: self.path.clone(),
            kind,
            size: if kind == FileType::Dir {
                None
            } else {
                self.size
            },
            modified: self.last_modified.as_deref().and_then(parse_rfc3339),
        }
    }
}
