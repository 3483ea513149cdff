//! `sandbox.files()`: files in the sandbox over the Jupyter contents API. See [`Files`].

use std::io::{self, Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{Error, TimeoutPhase};
use crate::http::{Http, Method, Response, describe, encode_component};
use crate::sandbox::Sandbox;

/// Default size of one upload chunk.
const DEFAULT_CHUNK: usize = 8 << 20;
/// Size of one read from a download stream.
const READ_BUF: usize = 256 << 10;
/// Largest error or JSON body read into memory.
const SMALL_BODY: u64 = 16 << 20;

/// A progress callback: `(bytes done, total bytes when known)`.
type Progress<'a> = Box<dyn FnMut(u64, Option<u64>) + 'a>;

/// Whether an entry is a file or a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum FileType {
    /// A regular file (notebooks included).
    File,
    /// A directory.
    Dir,
}

/// What the sandbox knows about one file or directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct EntryInfo {
    /// The last path component.
    pub name: String,
    /// The path relative to the sandbox root, `/`-separated.
    pub path: String,
    /// File or directory.
    pub kind: FileType,
    /// Size in bytes; `None` for directories.
    pub size: Option<u64>,
    /// Last modification time, when the server reports one.
    pub modified: Option<SystemTime>,
}

impl EntryInfo {
    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == FileType::Dir
    }
}

/// A model of the contents API, without content (or with a directory listing).
#[derive(Debug, Deserialize)]
struct Model {
    #[serde(default)]
    name: String,
    #[serde(default)]
    path: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    last_modified: Option<String>,
    #[serde(default)]
    content: Value,
}

impl Model {
    fn info(&self) -> EntryInfo {
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

/// Files in the sandbox. Get one with [`Sandbox::files`].
///
/// Paths are relative to the sandbox root (the directory the Jupyter server serves, its
/// `root_dir`; E2B: `/home/user`), the same directory relative paths mean in code, commands and
/// context cwds. `.` and `..` are resolved on the client, and a path that would leave the root
/// is refused with [`Error::InvalidArgument`] before any request is sent. An absolute path is
/// accepted when it lies inside the root (`/home/user/x` on E2B); on servers other than the
/// local one the first absolute path costs a kernel call to learn the root
/// ([`Sandbox::server_root`]).
///
/// # Servers with default contents settings
///
/// Every server but the local sandbox's keeps jupyter_server's defaults (E2B's template does):
/// deletes go to the trash and hidden paths are refused. So on those servers
/// [`Files::remove`] and every operation on a hidden path (`.env`, `.config/x`) run in a
/// private kernel of the sandbox instead (as the kernel's user: root on E2B), in pieces of
/// 4 MiB per request. Still out of reach: paths outside the root (use
/// [`Sandbox::commands`] or code), listing a non-hidden directory shows no hidden entries
/// (the server filters them; list the hidden path itself, or use a command), and Jupyter
/// Kernel Gateway, which has no contents API, supports only what goes through the kernel.
///
/// # Large files
///
/// - **Up**: content that fits in one chunk goes in one `PUT` (written atomically by the
///   server). Anything larger goes in chunks of [`Upload::chunk_size`] (8 MiB by default) with the
///   contents API's chunked protocol: `PUT {"chunk": 1}` creates the file, `2, 3, …` append and
///   `-1` appends the last chunk. At most two chunks and one base64 body are held in memory,
///   whatever the file's size. A failed chunked upload leaves a truncated file behind, and a
///   reader may see the file grow while it is being uploaded.
/// - **Down**: `GET /files/<path>` streams the raw bytes into a [`Write`] sink in 256 KiB
///   pieces; [`Files::read_bytes`] reserves the final size up front, so a download is held in
///   memory once at most.
/// - Each request has the sandbox's request timeout *per read or write on the socket* (and for
///   the server's answer), not for the whole transfer, so a large transfer over a slow link
///   does not time out while data keeps flowing.
///
/// Progress of either direction is reported to a callback on the caller's thread:
///
/// ```no_run
/// # let sbx = e2b_blocking::Sandbox::local()?;
/// let data = vec![7u8; 64 << 20];
/// sbx.files()
///     .upload("data/big.bin")
///     .on_progress(|done, total| eprintln!("{done} of {total:?} bytes"))
///     .bytes(&data)?;
/// let mut local = std::fs::File::create("/tmp/big.bin").expect("local file");
/// sbx.files().download("data/big.bin").to_writer(&mut local)?;
/// # Ok::<(), e2b_blocking::Error>(())
/// ```
///
#[derive(Debug, Clone)]
pub struct Files {
    sandbox: Sandbox,
}

impl Files {
    pub(crate) fn new(sandbox: Sandbox) -> Self {
        Files { sandbox }
    }

    fn http(&self) -> &Http {
        self.sandbox.http()
    }

    fn path(&self, path: &str) -> Result<String, Error> {
        self.sandbox.ensure_open()?;
        let local = self.sandbox.as_local().map(|l| l.root());
        if path.starts_with('/') && local.is_none() {
            // Only an absolute path needs the root's own path, which costs a kernel to learn.
            let root = self.sandbox.server_root()?;
            return normalize(path, Some(Path::new(&root)));
        }
        normalize(path, local)
    }

    /// True when `rel` must go through a kernel: a hidden path on a server whose contents API
    /// keeps jupyter_server's default `allow_hidden=False` (every server but the local one).
    fn via_kernel(&self, rel: &str) -> bool {
        self.sandbox.as_local().is_none() && is_hidden(rel)
    }

    fn kernel(&self, op: Value) -> Result<Value, Error> {
        crate::files_kernel::call(&self.sandbox, op)
    }

    fn kernel_model(&self, op: Value) -> Result<Model, Error> {
        serde_json::from_value(self.kernel(op)?)
            .map_err(|e| Error::protocol_from("bad file model from the kernel", e))
    }

    /// Reads a UTF-8 text file. A file that is not valid UTF-8 gives
    /// [`Error::InvalidArgument`]; use [`Files::read_bytes`] for those.
    pub fn read(&self, path: &str) -> Result<String, Error> {
        let bytes = self.read_bytes(path)?;
        String::from_utf8(bytes).map_err(|_| {
            Error::InvalidArgument(format!(
                "{path} is not valid UTF-8 text; read it with read_bytes"
            ))
        })
    }

    /// Reads a file's bytes.
    pub fn read_bytes(&self, path: &str) -> Result<Vec<u8>, Error> {
        self.download(path).to_vec()
    }

    /// Streams a file into `sink`; returns the number of bytes written.
    pub fn read_to(&self, path: &str, sink: impl Write) -> Result<u64, Error> {
        self.download(path).to_writer(sink)
    }

    /// Writes a file, replacing it if it exists and creating missing parent directories.
    /// Text and bytes alike: `write("a.txt", "hi")`, `write("b.bin", &bytes)`.
    pub fn write(&self, path: &str, data: impl AsRef<[u8]>) -> Result<EntryInfo, Error> {
        self.upload(path).bytes(data.as_ref())
    }

    /// Writes several files, replacing existing ones and creating missing parent directories,
    /// in one round trip: one cell in the sandbox's private files kernel writes them all
    /// (batches of up to 4 MiB; a larger file is written alone, as by [`Files::write`]).
    /// Returns their entries, in the order given. Every path is checked before anything is
    /// written; the writes themselves are not atomic: when one fails, those before it stay.
    ///
    /// ```no_run
    /// # let sbx = e2b_blocking::Sandbox::local()?;
    /// let written = sbx.files().write_many([("a.txt", "A"), ("src/b.py", "print(1)")])?;
    /// assert_eq!(written.len(), 2);
    /// # Ok::<(), e2b_blocking::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a path that climbs above the root (nothing written);
    /// the typed error of the first write that failed, naming its path
    /// ([`Error::IsADirectory`], [`Error::NotADirectory`], [`Error::PermissionDenied`], ...);
    /// connection errors.
    pub fn write_many<I, P, D>(&self, files: I) -> Result<Vec<EntryInfo>, Error>
    where
        I: IntoIterator<Item = (P, D)>,
        P: AsRef<str>,
        D: AsRef<[u8]>,
    {
        let mut checked = Vec::new();
        for (path, data) in files {
            let rel = self.path(path.as_ref())?;
            if rel.is_empty() {
                return Err(Error::IsADirectory { path: shown(&rel) });
            }
            checked.push((path, rel, data));
        }
        let piece = crate::files_kernel::PIECE;
        let mut out = Vec::with_capacity(checked.len());
        let mut batch = Vec::new();
        let mut batch_bytes = 0;
        let flush = |batch: &mut Vec<Value>, out: &mut Vec<EntryInfo>| -> Result<(), Error> {
            if batch.is_empty() {
                return Ok(());
            }
            let done = self.kernel(json!({"op": "write_many", "files": std::mem::take(batch)}))?;
            let models: Vec<Model> = serde_json::from_value(done["entries"].clone())
                .map_err(|e| Error::protocol_from("bad file models from the kernel", e))?;
            out.extend(models.iter().map(Model::info));
            Ok(())
        };
        for (path, rel, data) in &checked {
            let data = data.as_ref();
            if data.len() > piece {
                flush(&mut batch, &mut out)?;
                batch_bytes = 0;
                out.push(self.write(path.as_ref(), data)?);
                continue;
            }
            if batch_bytes + data.len() > piece {
                flush(&mut batch, &mut out)?;
                batch_bytes = 0;
            }
            batch_bytes += data.len();
            batch.push(json!({"path": rel, "data": crate::files_kernel::encode(data)}));
        }
        flush(&mut batch, &mut out)?;
        Ok(out)
    }

    /// Writes a file from a reader, in chunks, without reading it all into memory first.
    pub fn write_from(&self, path: &str, reader: impl Read) -> Result<EntryInfo, Error> {
        self.upload(path).reader(reader)
    }

    /// Starts an upload with options: a progress callback, the chunk size, the source.
    pub fn upload(&self, path: &str) -> Upload<'_> {
        Upload {
            files: self.clone(),
            path: path.to_string(),
            progress: None,
            chunk_size: DEFAULT_CHUNK,
            total: None,
        }
    }

    /// Starts a download with options: a progress callback, the sink.
    pub fn download(&self, path: &str) -> Download<'_> {
        Download {
            files: self.clone(),
            path: path.to_string(),
            progress: None,
        }
    }

    /// Entries of a directory, sorted by name. `""` or `"."` lists the root.
    pub fn list(&self, path: &str) -> Result<Vec<EntryInfo>, Error> {
        let rel = self.path(path)?;
        if self.via_kernel(&rel) {
            let listing = self.kernel(json!({"op": "list", "path": rel}))?;
            let entries: Vec<Model> = serde_json::from_value(listing["entries"].clone())
                .map_err(|e| Error::protocol_from("bad listing from the kernel", e))?;
            return Ok(entries.iter().map(Model::info).collect());
        }
        let resp = self.http().send(
            Method::Get,
            &format!("{}?type=directory&content=1", api_path(&rel)),
            None,
        )?;
        if !resp.is_success() {
            return Err(contents_error(resp, &rel));
        }
        let model: Model = resp.json()?;
        let Value::Array(items) = model.content else {
            return Err(Error::protocol(format!(
                "listing of {} has no entries",
                shown(&rel)
            )));
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let m: Model = serde_json::from_value(item)
                .map_err(|e| Error::protocol_from("bad entry in a directory listing", e))?;
            out.push(m.info());
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Information about one file or directory.
    pub fn get_info(&self, path: &str) -> Result<EntryInfo, Error> {
        let rel = self.path(path)?;
        self.model(&rel).map(|m| m.info())
    }

    /// True when a file or directory exists at `path`.
    pub fn exists(&self, path: &str) -> Result<bool, Error> {
        match self.get_info(path) {
            Ok(_) => Ok(true),
            Err(Error::FileNotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes a file, or a directory with everything in it, for good.
    ///
    /// On every server but the local sandbox's this runs in a private kernel: jupyter_server's
    /// contents API moves deletes to the trash by default (`delete_to_trash=True`, E2B's
    /// setting too), which frees no disk.
    pub fn remove(&self, path: &str) -> Result<(), Error> {
        let rel = self.path(path)?;
        if rel.is_empty() {
            return Err(Error::InvalidArgument(
                "refusing to remove the sandbox root".into(),
            ));
        }
        if self.sandbox.as_local().is_none() {
            return self.kernel(json!({"op": "remove", "path": rel})).map(drop);
        }
        self.remove_rel(&rel)
    }

    fn remove_rel(&self, rel: &str) -> Result<(), Error> {
        let resp = self.http().send(Method::Delete, &api_path(rel), None)?;
        if resp.is_success() {
            return Ok(());
        }
        if resp.status == 400 && resp.message().contains("not empty") {
            // A server without `always_delete_dir` removes empty directories only.
            log::debug!("removing {rel} entry by entry");
            let model = self.model(rel)?;
            if model.kind == "directory" {
                for entry in self.list(rel)? {
                    self.remove_rel(&entry.path)?;
                }
                let resp = self.http().send(Method::Delete, &api_path(rel), None)?;
                if resp.is_success() {
                    return Ok(());
                }
                return Err(contents_error(resp, rel));
            }
        }
        Err(contents_error(resp, rel))
    }

    /// Renames or moves a file or directory, creating missing parent directories of the
    /// destination. Moving onto an existing path fails (HTTP 409 from jupyter_server).
    pub fn rename(&self, from: &str, to: &str) -> Result<EntryInfo, Error> {
        let old = self.path(from)?;
        let new = self.path(to)?;
        if old.is_empty() || new.is_empty() {
            return Err(Error::InvalidArgument(
                "the sandbox root cannot be renamed or replaced".into(),
            ));
        }
        if self.via_kernel(&old) || self.via_kernel(&new) {
            return self
                .kernel_model(json!({"op": "rename", "path": old, "to": new}))
                .map(|m| m.info());
        }
        let body = json!({ "path": new });
        let send = || {
            self.http()
                .send(Method::Patch, &api_path(&old), Some(&body))
        };
        let mut resp = send()?;
        // A missing destination directory shows up as 404 (os.rename's ENOENT) or 500.
        if !resp.is_success()
            && (resp.status == 404 || resp.status >= 500)
            && self.fix_parent(&new)?
        {
            resp = send()?;
        }
        if !resp.is_success() {
            return Err(contents_error(resp, &old));
        }
        Ok(resp.json::<Model>()?.info())
    }

    /// Creates a directory and any missing parents. Returns `false` when it existed already.
    pub fn make_dir(&self, path: &str) -> Result<bool, Error> {
        let rel = self.path(path)?;
        match self.model(&rel) {
            Ok(m) if m.kind == "directory" => Ok(false),
            Ok(_) => Err(Error::NotADirectory { path: rel }),
            Err(Error::FileNotFound { .. }) => {
                self.make_dirs(&rel)?;
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }

    // ----- plumbing -----

    fn model(&self, rel: &str) -> Result<Model, Error> {
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
    fn make_dirs(&self, rel: &str) -> Result<(), Error> {
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
    fn fix_parent(&self, rel: &str) -> Result<bool, Error> {
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
    fn put(&self, rel: &str, body: &str) -> Result<Model, Error> {
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
    fn put_raw(&self, rel: &str, body: &str) -> Result<Response, Error> {
        let http = self.http();
        let path = api_path(rel);
        let endpoint = describe(Method::Put, &path);
        log::trace!("{endpoint} ({} bytes)", body.len());
        let mut req = http.agent().put(http.endpoint().url(&path));
        for (name, value) in http.headers() {
            req = req.header(name, value);
        }
        let t = Some(http.request_timeout());
        let resp = req
            .config()
            .timeout_global(None)
            .timeout_per_write(t)
            .timeout_per_read(t)
            .timeout_recv_response(t)
            .build()
            .header("Content-Type", "application/json")
            .send(body)
            .map_err(|e| http.transport_error(&endpoint, e))?;
        read_small(http, resp, endpoint)
    }

    /// Opens `GET /files/<path>`; errors are classified through the contents API.
    fn open_download(&self, rel: &str) -> Result<ureq::http::Response<ureq::Body>, Error> {
        if rel.is_empty() {
            return Err(Error::IsADirectory { path: shown(rel) });
        }
        let http = self.http();
        let path = files_path(rel);
        let endpoint = describe(Method::Get, &path);
        log::trace!("{endpoint}");
        let mut req = http.agent().get(http.endpoint().url(&path));
        for (name, value) in http.headers() {
            req = req.header(name, value);
        }
        let t = Some(http.request_timeout());
        let resp = req
            .config()
            .timeout_global(None)
            .timeout_per_read(t)
            .timeout_recv_response(t)
            .build()
            .call()
            .map_err(|e| http.transport_error(&endpoint, e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let failed = read_small(http, resp, endpoint)?;
        // /files/ answers 404 HTML pages and 403 for directories: ask the contents API why.
        match self.model(rel) {
            Ok(m) if m.kind == "directory" => Err(Error::IsADirectory { path: shown(rel) }),
            Ok(_) => Err(contents_error(failed, rel)),
            Err(e) => Err(e),
        }
    }
}

/// Options of one upload; finish with [`Upload::bytes`], [`Upload::reader`] or
/// [`Upload::file`].
#[must_use = "nothing is uploaded until .bytes(), .reader() or .file() is called"]
pub struct Upload<'a> {
    files: Files,
    path: String,
    progress: Option<Progress<'a>>,
    chunk_size: usize,
    total: Option<u64>,
}

impl std::fmt::Debug for Upload<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("path", &self.path)
            .field("chunk_size", &self.chunk_size)
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

impl<'a> Upload<'a> {
    /// Called after each chunk the server has stored, with `(bytes done, total)`; the total is
    /// known for [`Upload::bytes`] and [`Upload::file`], and for [`Upload::reader`] when
    /// [`Upload::size`] was given. Runs on the calling thread.
    pub fn on_progress(mut self, f: impl FnMut(u64, Option<u64>) + 'a) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// Bytes per request. Defaults to 8 MiB; content up to this size goes in a single request.
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = bytes.max(1);
        self
    }

    /// The reader's total size, for progress reports only. Defaults to unknown.
    pub fn size(mut self, bytes: u64) -> Self {
        self.total = Some(bytes);
        self
    }

    /// Uploads bytes held in memory (chunked straight from the slice, no copy).
    pub fn bytes(mut self, data: &[u8]) -> Result<EntryInfo, Error> {
        let rel = self.files.path(&self.path)?;
        self.total = Some(data.len() as u64);
        if rel.is_empty() {
            return Err(Error::IsADirectory { path: shown(&rel) });
        }
        if self.files.via_kernel(&rel) {
            return self.through_kernel(&rel, data, "<memory>");
        }
        if data.len() <= self.chunk_size {
            let model = self.files.put(&rel, &body(None, data))?;
            self.report(data.len() as u64)?;
            return Ok(model.info());
        }
        log::debug!(
            "uploading {} ({} bytes) in chunks of {}",
            shown(&rel),
            data.len(),
            self.chunk_size
        );
        let count = data.len().div_ceil(self.chunk_size);
        let mut done = 0u64;
        let mut last = None;
        for (i, piece) in data.chunks(self.chunk_size).enumerate() {
            let number = if i + 1 == count { -1 } else { i as i64 + 1 };
            last = Some(self.files.put(&rel, &body(Some(number), piece))?);
            done += piece.len() as u64;
            self.report(done)?;
        }
        last.map(|m| m.info())
            .ok_or_else(|| Error::protocol("chunked upload sent no chunk"))
    }

    /// Uploads a local file.
    pub fn file(mut self, local: impl AsRef<Path>) -> Result<EntryInfo, Error> {
        let local = local.as_ref();
        let io_err = |source| Error::Io {
            path: local.display().to_string(),
            source,
        };
        let f = std::fs::File::open(local).map_err(io_err)?;
        if let Ok(meta) = f.metadata() {
            self.total = Some(meta.len());
        }
        self.send(f, &local.display().to_string())
    }

    /// Uploads everything `reader` yields, in chunks; at most two chunks are in memory.
    pub fn reader(self, reader: impl Read) -> Result<EntryInfo, Error> {
        self.send(reader, "<reader>")
    }

    fn send(mut self, mut reader: impl Read, source: &str) -> Result<EntryInfo, Error> {
        let rel = self.files.path(&self.path)?;
        if rel.is_empty() {
            return Err(Error::IsADirectory { path: shown(&rel) });
        }
        if self.files.via_kernel(&rel) {
            return self.through_kernel(&rel, reader, source);
        }
        let io_err = |source_err| Error::Io {
            path: source.to_string(),
            source: source_err,
        };
        let files = self.files.clone();
        let chunk = self.chunk_size;
        let mut cur = Vec::new();
        fill(&mut reader, &mut cur, chunk).map_err(io_err)?;
        let mut next = Vec::new();
        if cur.len() == chunk {
            fill(&mut reader, &mut next, chunk).map_err(io_err)?;
        }
        if next.is_empty() {
            // Everything fits in one request: a plain, atomic save.
            let model = files.put(&rel, &body(None, &cur))?;
            self.report(cur.len() as u64)?;
            return Ok(model.info());
        }
        log::debug!("uploading {} in chunks of {chunk} bytes", shown(&rel));
        let mut number: i64 = 1;
        let mut done: u64 = 0;
        loop {
            files.put(&rel, &body(Some(number), &cur))?;
            done += cur.len() as u64;
            self.report(done)?;
            std::mem::swap(&mut cur, &mut next);
            if cur.len() == chunk {
                fill(&mut reader, &mut next, chunk).map_err(io_err)?;
            } else {
                next.clear();
            }
            if next.is_empty() {
                let model = files.put(&rel, &body(Some(-1), &cur))?;
                done += cur.len() as u64;
                self.report(done)?;
                return Ok(model.info());
            }
            number += 1;
        }
    }

    /// Writes through a kernel, in pieces small enough for one websocket message each.
    fn through_kernel(
        mut self,
        rel: &str,
        mut reader: impl Read,
        source: &str,
    ) -> Result<EntryInfo, Error> {
        let mut piece = Vec::new();
        let mut done = 0u64;
        let mut first = true;
        loop {
            fill(&mut reader, &mut piece, crate::files_kernel::PIECE).map_err(|e| Error::Io {
                path: source.to_string(),
                source: e,
            })?;
            if piece.is_empty() && !first {
                return self.files.model(rel).map(|m| m.info());
            }
            let model = self.files.kernel_model(json!({
                "op": "write",
                "path": rel,
                "append": !first,
                "data": crate::files_kernel::encode(&piece),
            }))?;
            done += piece.len() as u64;
            self.report(done)?;
            if piece.len() < crate::files_kernel::PIECE {
                return Ok(model.info());
            }
            first = false;
        }
    }

    fn report(&mut self, done: u64) -> Result<(), Error> {
        let total = self.total;
        call_progress(&mut self.progress, done, total)
    }
}

/// Options of one download; finish with [`Download::to_writer`], [`Download::to_vec`] or
/// [`Download::to_file`].
#[must_use = "nothing is downloaded until .to_writer(), .to_vec() or .to_file() is called"]
pub struct Download<'a> {
    files: Files,
    path: String,
    progress: Option<Progress<'a>>,
}

impl std::fmt::Debug for Download<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl<'a> Download<'a> {
    /// Called as data arrives (every 256 KiB at most), with `(bytes done, total)`; the total is
    /// the server's `Content-Length` when it sent one. Runs on the calling thread.
    pub fn on_progress(mut self, f: impl FnMut(u64, Option<u64>) + 'a) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// Streams the file into `sink`; returns the number of bytes written.
    pub fn to_writer(self, mut sink: impl Write) -> Result<u64, Error> {
        self.stream(&mut sink, "<writer>", |_, _| {})
    }

    /// Reads the whole file into memory, reserving its announced size up front.
    pub fn to_vec(self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.stream(&mut out, "<memory>", |v, total| {
            v.reserve_exact(reserve(total))
        })?;
        Ok(out)
    }

    /// Saves the file to a local path (created or truncated); returns the number of bytes.
    pub fn to_file(self, local: impl AsRef<Path>) -> Result<u64, Error> {
        let local = local.as_ref();
        let f = std::fs::File::create(local).map_err(|source| Error::Io {
            path: local.display().to_string(),
            source,
        })?;
        let mut sink = io::BufWriter::new(f);
        self.stream(&mut sink, &local.display().to_string(), |_, _| {})
    }

    fn stream<W: Write>(
        mut self,
        sink: &mut W,
        sink_name: &str,
        on_total: impl FnOnce(&mut W, Option<u64>),
    ) -> Result<u64, Error> {
        let rel = self.files.path(&self.path)?;
        if self.files.via_kernel(&rel) {
            return self.through_kernel(&rel, sink, sink_name, on_total);
        }
        let http = self.files.http();
        let mut resp = self.files.open_download(&rel)?;
        let total = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        on_total(sink, total);
        let endpoint = describe(Method::Get, &files_path(&rel));
        let sink_err = |source| Error::Io {
            path: sink_name.to_string(),
            source,
        };
        let mut reader = resp.body_mut().as_reader();
        let mut buf = vec![0u8; READ_BUF];
        let mut done: u64 = 0;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Err(Error::Timeout {
                        phase: TimeoutPhase::Request,
                        after: http.request_timeout(),
                    });
                }
                Err(e) => return Err(http.transport_error(&endpoint, ureq::Error::Io(e))),
            };
            if n == 0 {
                break;
            }
            sink.write_all(&buf[..n]).map_err(sink_err)?;
            done += n as u64;
            call_progress(&mut self.progress, done, total)?;
        }
        sink.flush().map_err(sink_err)?;
        if let Some(t) = total
            && t != done
        {
            return Err(Error::protocol(format!(
                "download of {} ended after {done} of {t} bytes",
                shown(&rel)
            )));
        }
        Ok(done)
    }
}

impl Download<'_> {
    /// Reads through a kernel, in pieces small enough for one websocket message each.
    fn through_kernel<W: Write>(
        mut self,
        rel: &str,
        sink: &mut W,
        sink_name: &str,
        on_total: impl FnOnce(&mut W, Option<u64>),
    ) -> Result<u64, Error> {
        let sink_err = |source| Error::Io {
            path: sink_name.to_string(),
            source,
        };
        let mut on_total = Some(on_total);
        let mut done = 0u64;
        loop {
            let piece = self.files.kernel(json!({
                "op": "read",
                "path": rel,
                "offset": done,
                "limit": crate::files_kernel::PIECE,
            }))?;
            let total = piece["size"].as_u64();
            if let Some(f) = on_total.take() {
                f(sink, total);
            }
            let data = crate::files_kernel::decode_data(&piece)?;
            sink.write_all(&data).map_err(sink_err)?;
            done += data.len() as u64;
            call_progress(&mut self.progress, done, total)?;
            if data.len() < crate::files_kernel::PIECE {
                sink.flush().map_err(sink_err)?;
                return Ok(done);
            }
        }
    }
}

/// True when a component of `rel` starts with a dot (what jupyter_server calls hidden).
fn is_hidden(rel: &str) -> bool {
    rel.split('/').any(|part| part.starts_with('.'))
}

/// How much of an announced download size to reserve: all of it up to 4 GiB.
fn reserve(total: Option<u64>) -> usize {
    total.map_or(0, |t| usize::try_from(t.min(4 << 30)).unwrap_or(0))
}

/// Runs a progress callback; a panic in it becomes [`Error::CallbackPanicked`].
fn call_progress(f: &mut Option<Progress<'_>>, done: u64, total: Option<u64>) -> Result<(), Error> {
    let Some(f) = f.as_mut() else {
        return Ok(());
    };
    catch_unwind(AssertUnwindSafe(|| f(done, total))).map_err(|payload| Error::CallbackPanicked {
        callback: "on_progress",
        message: crate::exec::code::panic_message(payload.as_ref()),
    })
}

/// Replaces `buf`'s contents with the next `limit` bytes of `reader` (fewer at its end).
fn fill(reader: &mut impl Read, buf: &mut Vec<u8>, limit: usize) -> io::Result<()> {
    buf.clear();
    reader.take(limit as u64).read_to_end(buf).map(drop)
}

/// The JSON body of a base64 save, built directly (base64 needs no escaping) so the content
/// is encoded once into one buffer.
fn body(chunk: Option<i64>, data: &[u8]) -> String {
    let head = match chunk {
        Some(n) => format!(r#"{{"type":"file","format":"base64","chunk":{n},"content":""#),
        None => r#"{"type":"file","format":"base64","content":""#.to_string(),
    };
    let mut s = String::with_capacity(head.len() + data.len().div_ceil(3) * 4 + 2);
    s.push_str(&head);
    base64::engine::general_purpose::STANDARD.encode_string(data, &mut s);
    s.push_str("\"}");
    s
}

/// Reads a (small) response body into a [`Response`] to judge its status.
fn read_small(
    http: &Http,
    mut resp: ureq::http::Response<ureq::Body>,
    endpoint: String,
) -> Result<Response, Error> {
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header("content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let retry_after = header("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let mut body = Vec::new();
    resp.body_mut()
        .as_reader()
        .take(SMALL_BODY)
        .read_to_end(&mut body)
        .map_err(|e| http.transport_error(&endpoint, ureq::Error::Io(e)))?;
    Ok(Response {
        status,
        body,
        content_type,
        endpoint,
        retry_after,
    })
}

/// Maps a failed contents API response to the typed file errors.
fn contents_error(resp: Response, rel: &str) -> Error {
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

/// How a relative path appears in errors: `.` for the root.
fn shown(rel: &str) -> String {
    if rel.is_empty() {
        ".".into()
    } else {
        rel.to_string()
    }
}

fn encoded(rel: &str) -> String {
    rel.split('/')
        .map(encode_component)
        .collect::<Vec<_>>()
        .join("/")
}

fn api_path(rel: &str) -> String {
    format!("/api/contents/{}", encoded(rel))
}

fn files_path(rel: &str) -> String {
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
fn resolve(path: &str) -> Option<Vec<&str>> {
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

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, as jupyter_server writes `last_modified`.
pub(crate) fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.bytes().all(|b| b.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if s.get(4..5)? != "-" || s.get(7..8)? != "-" || !matches!(s.get(10..11)?, "T" | "t" | " ") {
        return None;
    }
    let mut rest = s.get(19..)?;
    let mut nanos: u32 = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let mut value: u32 = 0;
        for (i, b) in frac.bytes().take(digits).enumerate() {
            if i < 9 {
                value = value * 10 + u32::from(b - b'0');
            }
        }
        for _ in digits..9 {
            value *= 10;
        }
        nanos = value;
        rest = &frac[digits..];
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        tz => {
            let sign = match tz.get(0..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let h: i64 = tz.get(1..3)?.parse().ok()?;
            let m: i64 = tz.get(4..6)?.parse().ok()?;
            sign * (h * 3600 + m * 60)
        }
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(60) - offset;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
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

    #[test]
    fn base64_bodies_are_json() {
        let v: Value = serde_json::from_str(&body(Some(-1), b"\x00\xffhi")).unwrap();
        assert_eq!(v["chunk"], -1);
        assert_eq!(v["content"], "AP9oaQ==");
        let v: Value = serde_json::from_str(&body(None, b"")).unwrap();
        assert!(v.get("chunk").is_none());
        assert_eq!(v["content"], "");
    }

    #[test]
    fn timestamps_parse() {
        let t = parse_rfc3339("2024-02-29T12:34:56.789012Z").unwrap();
        let d = t.duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(d.as_secs(), 1_709_210_096);
        assert_eq!(d.subsec_micros(), 789_012);
        let t2 = parse_rfc3339("2024-02-29T14:34:56.789012+02:00").unwrap();
        assert_eq!(t, t2);
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
        assert!(parse_rfc3339("yesterday").is_none());
    }
}
