//! Files through envd: contents over HTTP `/files` (streamed both ways, so memory stays bounded
//! whatever the size), everything else over `filesystem.Filesystem`.
//!
//! Paths are E2B's: absolute, or relative to the user's home (`/home/user` for `user`), which
//! envd resolves. Entries carry absolute paths.

use serde_json::{Value, json};
use std::io::{self, Read, Write};

use super::E2bPlane;
use super::connect::{Failure, RpcError};
use super::version::{OCTET_STREAM_UPLOAD, RECURSIVE_WATCH};
use crate::error::{Error, TimeoutPhase};
use crate::model::entry::{EntryInfo, FileType};
use crate::model::fs_event::{FsEvent, FsEventKind};
use crate::net::{Response, encode_component};

/// Size of one read from a download.
const READ_BUF: usize = 256 * 1024;
/// Files written together in one multipart request by `write_many`, in bytes.
const BATCH: usize = 8 << 20;

/// Who acts on files, and how: the user (`None`: envd's default, `user`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct E2bFiles<'a> {
    pub(crate) plane: &'a E2bPlane,
    pub(crate) user: Option<&'a str>,
}

/// A download's progress callback: bytes so far and the total, when known.
pub(crate) type Progress<'p> = &'p mut dyn FnMut(u64, Option<u64>) -> Result<(), Error>;

/// A download as the facade asks for it.
pub(crate) struct E2bDownload<'p> {
    pub(crate) progress: Progress<'p>,
}

/// A directory watch in envd (its polling watcher, as E2B's sync SDK uses).
#[derive(Debug)]
pub(crate) struct E2bWatch {
    id: String,
}

impl E2bFiles<'_> {
    fn user_query(&self) -> String {
        self.plane
            .version
            .user_for(self.user)
            .map(|u| format!("&username={}", encode_component(u)))
            .unwrap_or_default()
    }

    fn files_url(&self, path: &str) -> String {
        let http = &self.plane.envd;
        http.endpoint().url(&format!(
            "/files?path={}{}",
            encode_component(path),
            self.user_query()
        ))
    }

    /// Streams a file into `sink`; the number of bytes. A download whose link broke before a
    /// byte reached the sink is asked for again under the reconnect policy; one that broke
    /// later fails (the sink holds a prefix of the file).
    pub(crate) fn download(
        &self,
        path: &str,
        sink: &mut dyn Write,
        sink_name: &str,
        mut download: E2bDownload<'_>,
    ) -> Result<u64, Error> {
        let mut retry = crate::net::Attempts::new(&self.plane.reconnect);
        loop {
            match self.download_once(path, sink, sink_name, &mut download) {
                Ok(n) => return Ok(n),
                Err((e, 0)) if super::link_failure(&e) => match retry.failed() {
                    Some(next) => {
                        log::debug!("GET /files failed ({e}); asking again");
                        std::thread::sleep(
                            next.saturating_duration_since(std::time::Instant::now()),
                        );
                    }
                    None => return Err(self.linked(e)),
                },
                Err((e, _)) => return Err(self.linked(e)),
            }
        }
    }

    /// One attempt of [`E2bFiles::download`]; its error comes with the bytes already written.
    fn download_once(
        &self,
        path: &str,
        sink: &mut dyn Write,
        sink_name: &str,
        download: &mut E2bDownload<'_>,
    ) -> Result<u64, (Error, u64)> {
        let http = &self.plane.envd;
        let endpoint = "GET /files".to_string();
        let t = Some(http.request_timeout());
        let resp = http
            .headed(http.agent().get(self.files_url(path)))
            .config()
            .timeout_global(None)
            .timeout_per_read(t)
            .timeout_recv_response(t)
            .build()
            .call()
            .map_err(|e| (http.transport_error(&endpoint, e), 0))?;
        if !resp.status().is_success() {
            let resp = http
                .read_response(resp, &endpoint, 1 << 20)
                .map_err(|e| (e, 0))?;
            return Err((http_error(resp, path), 0));
        }
        let total = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let mut reader = resp.into_body().into_reader();
        let mut buf = vec![0u8; READ_BUF];
        let mut done = 0u64;
        let sink_err = |source, done| {
            (
                Error::Io {
                    path: sink_name.to_string(),
                    source,
                },
                done,
            )
        };
        loop {
            let n = match reader.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Err((
                        Error::Timeout {
                            phase: TimeoutPhase::Request,
                            after: http.request_timeout(),
                        },
                        done,
                    ));
                }
                Err(e) => {
                    return Err((http.transport_error(&endpoint, ureq::Error::Io(e)), done));
                }
            };
            if n == 0 {
                break;
            }
            sink.write_all(&buf[..n]).map_err(|e| sink_err(e, done))?;
            done += n as u64;
            (download.progress)(done, total).map_err(|e| (e, done))?;
        }
        sink.flush().map_err(|e| sink_err(e, done))?;
        if let Some(t) = total
            && t != done
        {
            return Err((
                Error::protocol(format!(
                    "download of {path} ended after {done} of {t} bytes"
                )),
                done,
            ));
        }
        Ok(done)
    }

    /// Uploads what `reader` yields to `path` (parents created, replacing a file), streamed:
    /// at most one read buffer is in memory. `progress` hears of each piece sent.
    pub(crate) fn upload(
        &self,
        path: &str,
        reader: &mut dyn Read,
        source: &str,
        progress: Progress<'_>,
    ) -> Result<EntryInfo, Error> {
        let http = &self.plane.envd;
        let endpoint = "POST /files".to_string();
        let mut counted = Counted {
            inner: reader,
            source,
            done: 0,
            progress,
            failed: None,
        };
        let t = Some(http.request_timeout());
        let req = http
            .headed(http.agent().post(self.files_url(path)))
            .config()
            .timeout_global(None)
            .timeout_per_write(t)
            .timeout_per_read(t)
            .timeout_recv_response(t)
            .build();
        let boundary = format!("e2b-blocking-{}", uuid::Uuid::new_v4().simple());
        let sent = if self.plane.version >= OCTET_STREAM_UPLOAD {
            req.header("Content-Type", "application/octet-stream")
                .send(ureq::SendBody::from_reader(&mut counted))
        } else {
            let (head, tail) = multipart_frame(&boundary, path);
            let mut body = io::Cursor::new(head)
                .chain(&mut counted)
                .chain(io::Cursor::new(tail));
            req.header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .send(ureq::SendBody::from_reader(&mut body))
        };
        if let Some(e) = counted.failed.take() {
            return Err(e);
        }
        let resp = sent.map_err(|e| self.linked(http.transport_error(&endpoint, e)))?;
        let resp = http.read_response(resp, &endpoint, 1 << 20)?;
        if !resp.is_success() {
            return Err(http_error(resp, path));
        }
        let entries: Vec<Value> = resp.json()?;
        let written = entries
            .first()
            .ok_or_else(|| Error::protocol("envd's upload answer names no file"))?;
        Ok(EntryInfo {
            name: written["name"].as_str().unwrap_or_default().to_string(),
            path: written["path"].as_str().unwrap_or(path).to_string(),
            kind: FileType::File,
            size: Some(counted.done),
            modified: None,
        })
    }

    /// Writes several files in one multipart request per batch of up to 8 MiB (a larger file
    /// goes alone, streamed); their entries in the order given.
    pub(crate) fn write_many(&self, files: &[(&str, &[u8])]) -> Result<Vec<EntryInfo>, Error> {
        let mut out = Vec::with_capacity(files.len());
        let mut batch: Vec<(&str, &[u8])> = Vec::new();
        let mut size = 0;
        for &(path, data) in files {
            if data.len() > BATCH {
                self.send_batch(&mut batch, &mut out)?;
                size = 0;
                out.push(self.upload(path, &mut &data[..], "<memory>", &mut |_, _| Ok(()))?);
                continue;
            }
            if size + data.len() > BATCH {
                self.send_batch(&mut batch, &mut out)?;
                size = 0;
            }
            size += data.len();
            batch.push((path, data));
        }
        self.send_batch(&mut batch, &mut out)?;
        Ok(out)
    }

    fn send_batch(
        &self,
        batch: &mut Vec<(&str, &[u8])>,
        out: &mut Vec<EntryInfo>,
    ) -> Result<(), Error> {
        if batch.is_empty() {
            return Ok(());
        }
        let http = &self.plane.envd;
        let endpoint = "POST /files".to_string();
        let boundary = format!("e2b-blocking-{}", uuid::Uuid::new_v4().simple());
        let mut body = Vec::new();
        for (path, data) in batch.iter() {
            let (head, _) = multipart_frame(&boundary, path);
            body.extend_from_slice(&head);
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let url = http.endpoint().url(&format!(
            "/files?{}",
            self.user_query().trim_start_matches('&')
        ));
        let resp = http
            .headed(http.agent().post(url))
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .send(&body[..])
            .map_err(|e| self.linked(http.transport_error(&endpoint, e)))?;
        let resp = http.read_response(resp, &endpoint, 1 << 20)?;
        if !resp.is_success() {
            return Err(http_error(resp, batch[0].0));
        }
        let entries: Vec<Value> = resp.json()?;
        for ((path, data), written) in batch
            .iter()
            .zip(entries.iter().chain(std::iter::repeat(&Value::Null)))
        {
            out.push(EntryInfo {
                name: written["name"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| path.rsplit('/').next().unwrap_or_default().to_string()),
                path: written["path"].as_str().unwrap_or(path).to_string(),
                kind: FileType::File,
                size: Some(data.len() as u64),
                modified: None,
            });
        }
        batch.clear();
        Ok(())
    }

    fn rpc(&self, method: &str, body: Value, path: &str) -> Result<Value, Error> {
        self.plane
            .call(method, self.user, &body)
            .map_err(|f| self.file_error(f, path))
    }

    /// Entries of a directory down to `depth` levels (1: its own entries), sorted by path.
    pub(crate) fn list(&self, path: &str, depth: u32) -> Result<Vec<EntryInfo>, Error> {
        if depth == 0 {
            return Err(Error::InvalidArgument(
                "list depth must be at least 1".into(),
            ));
        }
        let answer = self.rpc(
            "filesystem.Filesystem/ListDir",
            json!({"path": path, "depth": depth}),
            path,
        )?;
        let mut entries: Vec<EntryInfo> = answer["entries"]
            .as_array()
            .map(|a| a.iter().map(entry_of).collect())
            .unwrap_or_default();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    pub(crate) fn get_info(&self, path: &str) -> Result<EntryInfo, Error> {
        let answer = self.rpc("filesystem.Filesystem/Stat", json!({"path": path}), path)?;
        Ok(entry_of(&answer["entry"]))
    }

    /// Removes a file or a directory with everything in it; a missing path is not an error.
    pub(crate) fn remove(&self, path: &str) -> Result<(), Error> {
        match self.rpc("filesystem.Filesystem/Remove", json!({"path": path}), path) {
            Ok(_) | Err(Error::FileNotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn rename(&self, from: &str, to: &str) -> Result<EntryInfo, Error> {
        let answer = self.rpc(
            "filesystem.Filesystem/Move",
            json!({"source": from, "destination": to}),
            from,
        )?;
        Ok(entry_of(&answer["entry"]))
    }

    /// Creates a directory and its parents; `false` when it existed.
    pub(crate) fn make_dir(&self, path: &str) -> Result<bool, Error> {
        match self.plane.call(
            "filesystem.Filesystem/MakeDir",
            self.user,
            &json!({"path": path}),
        ) {
            Ok(_) => Ok(true),
            Err(Failure::Rpc(r)) if r.code == "already_exists" => match self.get_info(path)?.kind {
                FileType::Dir => Ok(false),
                _ => Err(Error::NotADirectory {
                    path: path.to_string(),
                }),
            },
            Err(f) => Err(self.file_error(f, path)),
        }
    }

    /// Starts envd's polling watcher on a directory.
    pub(crate) fn watch(&self, path: &str, recursive: bool) -> Result<E2bWatch, Error> {
        if recursive {
            self.plane
                .version
                .require(RECURSIVE_WATCH, "a recursive directory watch")?;
        }
        let answer = self.rpc(
            "filesystem.Filesystem/CreateWatcher",
            json!({"path": path, "recursive": recursive}),
            path,
        )?;
        let id = answer["watcherId"]
            .as_str()
            .ok_or_else(|| Error::protocol("CreateWatcher answered no watcher id"))?;
        Ok(E2bWatch { id: id.to_string() })
    }

    /// Events since the last poll.
    pub(crate) fn poll(&self, watch: &E2bWatch) -> Result<Vec<FsEvent>, Error> {
        let answer = self.rpc(
            "filesystem.Filesystem/GetWatcherEvents",
            json!({"watcherId": watch.id}),
            &watch.id,
        )?;
        Ok(answer["events"]
            .as_array()
            .map(|events| events.iter().filter_map(event_of).collect())
            .unwrap_or_default())
    }

    pub(crate) fn unwatch(&self, watch: &E2bWatch) -> Result<(), Error> {
        self.rpc(
            "filesystem.Filesystem/RemoveWatcher",
            json!({"watcherId": watch.id}),
            &watch.id,
        )
        .map(drop)
    }

    /// A link error, or `SandboxNotFound` when the sandbox is gone.
    fn linked(&self, e: Error) -> Error {
        match self.plane.typed(Failure::Other(e)) {
            Failure::Other(e) => e,
            Failure::Rpc(r) => rpc_file_error(r, ""),
        }
    }

    fn file_error(&self, failure: Failure, path: &str) -> Error {
        match failure {
            Failure::Rpc(r) => rpc_file_error(r, path),
            Failure::Other(e) => e,
        }
    }
}

/// A Connect error of a filesystem call as the typed file error it is.
fn rpc_file_error(r: RpcError, path: &str) -> Error {
    let message = r.message.to_ascii_lowercase();
    let path = path.to_string();
    match r.code.as_str() {
        "not_found" => Error::FileNotFound { path },
        "permission_denied" => Error::PermissionDenied { path },
        "invalid_argument" | "failed_precondition" if message.contains("not a directory") => {
            Error::NotADirectory { path }
        }
        "invalid_argument" | "failed_precondition" if message.contains("is a directory") => {
            Error::IsADirectory { path }
        }
        _ => super::rpc_error(r, &format!("envd, {path}")),
    }
}

/// An HTTP error of `/files` as the typed file error it is.
fn http_error(resp: Response, path: &str) -> Error {
    let message = resp.message().to_ascii_lowercase();
    let path = path.to_string();
    match resp.status {
        404 => Error::FileNotFound { path },
        400 if message.contains("is a directory") => Error::IsADirectory { path },
        400 if message.contains("not a directory") => Error::NotADirectory { path },
        400 => Error::InvalidArgument(format!("{path}: {}", resp.message())),
        401 if message.contains("permission denied") => Error::PermissionDenied { path },
        401 if message.contains("user") => Error::InvalidArgument(resp.message()),
        507 => Error::Http {
            status: 507,
            endpoint: "POST /files".into(),
            message: "not enough disk space in the sandbox".into(),
        },
        _ => resp.into_error(),
    }
}

/// The opening of a multipart part named `path`, and the closing of the body.
fn multipart_frame(boundary: &str, path: &str) -> (Vec<u8>, Vec<u8>) {
    let name = path.replace(['"', '\r', '\n'], "_");
    (
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .into_bytes(),
        format!("\r\n--{boundary}--\r\n").into_bytes(),
    )
}

/// An `EntryInfo` of filesystem.proto in its JSON form.
fn entry_of(v: &Value) -> EntryInfo {
    let kind = match v["type"].as_str() {
        Some("FILE_TYPE_DIRECTORY") => FileType::Dir,
        _ => FileType::File,
    };
    let size = match &v["size"] {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => Some(0),
    };
    EntryInfo {
        name: v["name"].as_str().unwrap_or_default().to_string(),
        path: v["path"].as_str().unwrap_or_default().to_string(),
        kind,
        size: if kind == FileType::Dir { None } else { size },
        modified: v["modifiedTime"]
            .as_str()
            .and_then(crate::model::entry::parse_rfc3339),
    }
}

fn event_of(v: &Value) -> Option<FsEvent> {
    let kind = match v["type"].as_str()? {
        "EVENT_TYPE_CREATE" => FsEventKind::Create,
        "EVENT_TYPE_WRITE" => FsEventKind::Write,
        "EVENT_TYPE_REMOVE" => FsEventKind::Remove,
        "EVENT_TYPE_RENAME" => FsEventKind::Rename,
        "EVENT_TYPE_CHMOD" => FsEventKind::Chmod,
        _ => return None,
    };
    Some(FsEvent::new(kind, v["name"].as_str().unwrap_or_default()))
}

/// A reader that counts what it hands on and reports progress; a progress callback's error
/// ends the upload and is kept for the caller.
struct Counted<'a, 'p> {
    inner: &'a mut dyn Read,
    /// The reader's name in errors.
    source: &'a str,
    done: u64,
    progress: Progress<'p>,
    failed: Option<Error>,
}

impl Read for Counted<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|e| {
            self.failed = Some(Error::Io {
                path: self.source.to_string(),
                source: io::Error::new(e.kind(), e.to_string()),
            });
        })?;
        self.done += n as u64;
        if n > 0
            && let Err(e) = (self.progress)(self.done, None)
        {
            self.failed = Some(e);
            return Err(io::Error::other("upload stopped by its progress callback"));
        }
        Ok(n)
    }
}
