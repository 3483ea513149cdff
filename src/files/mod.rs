//! `sandbox.files()`: files in the sandbox over the Jupyter contents API. See [`Files`].

mod contents;
mod entry;
mod path;
mod transfer;
pub(crate) mod watch;

pub use entry::{EntryInfo, FileType};
pub(crate) use path::normalize;
pub use transfer::{Download, Upload};

use std::io::{Read, Write};
use std::path::Path;

use serde_json::{Value, json};

use crate::error::Error;
use crate::net::{Http, Method};
use crate::sandbox::Sandbox;

use self::contents::*;
use self::entry::*;
use self::path::*;
use self::transfer::*;

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

    pub(crate) fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Watches a directory for changes (recursively or not) until the handle is stopped or
    /// dropped; see [`WatchHandle`](crate::WatchHandle) and, for options,
    /// [`Files::watch`].
    ///
    /// # Errors
    ///
    /// As for [`WatchBuilder::start`](crate::WatchBuilder::start).
    pub fn watch_dir(&self, path: &str, recursive: bool) -> Result<crate::WatchHandle, Error> {
        self.watch(path).recursive(recursive).start()
    }

    /// Describes a directory watch with options (recursive, queue capacity); start it with
    /// [`WatchBuilder::start`](crate::WatchBuilder::start).
    pub fn watch(&self, path: &str) -> crate::WatchBuilder {
        watch::WatchBuilder::new(self.clone(), path)
    }

    pub(crate) fn path(&self, path: &str) -> Result<String, Error> {
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
        crate::kernel::helper::call(&self.sandbox, op)
    }

    fn kernel_model(&self, op: Value) -> Result<Model, Error> {
        serde_json::from_value(self.kernel(op)?)
            .map_err(|e| Error::protocol_from("bad file model from the kernel", e))
    }

    /// Reads a UTF-8 text file. A file that is not valid UTF-8 gives
    /// [`Error::InvalidArgument`]; use [`Files::read_bytes`] for those.
    ///
    /// # Errors
    ///
    /// [`Error::FileNotFound`], [`Error::IsADirectory`]; [`Error::InvalidArgument`] for a file that
    /// is not UTF-8; [`Error::InvalidArgument`] for a path that leaves the sandbox root;
    /// [`Error::Closed`] after [`Sandbox::kill`](crate::Sandbox::kill); [`Error::Http`],
    /// [`Error::Transport`] or [`Error::Timeout`] when the server refuses or cannot be reached.
    pub fn read(&self, path: &str) -> Result<String, Error> {
        let bytes = self.read_bytes(path)?;
        String::from_utf8(bytes).map_err(|_| {
            Error::InvalidArgument(format!(
                "{path} is not valid UTF-8 text; read it with read_bytes"
            ))
        })
    }

    /// Reads a file's bytes.
    ///
    /// # Errors
    ///
    /// [`Error::FileNotFound`], [`Error::IsADirectory`]; [`Error::InvalidArgument`] for a path that
    /// leaves the sandbox root; [`Error::Closed`] after [`Sandbox::kill`](crate::Sandbox::kill);
    /// [`Error::Http`], [`Error::Transport`] or [`Error::Timeout`] when the server refuses or
    /// cannot be reached.
    pub fn read_bytes(&self, path: &str) -> Result<Vec<u8>, Error> {
        self.download(path).to_vec()
    }

    /// Streams a file into `sink`; returns the number of bytes written.
    ///
    /// # Errors
    ///
    /// [`Error::FileNotFound`], [`Error::IsADirectory`]; [`Error::Io`] when `sink` fails;
    /// [`Error::InvalidArgument`] for a path that leaves the sandbox root; [`Error::Closed`] after
    /// [`Sandbox::kill`](crate::Sandbox::kill); [`Error::Http`], [`Error::Transport`] or
    /// [`Error::Timeout`] when the server refuses or cannot be reached.
    pub fn read_to(&self, path: &str, sink: impl Write) -> Result<u64, Error> {
        self.download(path).to_writer(sink)
    }

    /// Writes a file, replacing it if it exists and creating missing parent directories.
    /// Text and bytes alike: `write("a.txt", "hi")`, `write("b.bin", &bytes)`.
    ///
    /// # Errors
    ///
    /// [`Error::NotADirectory`] when a parent is a file; [`Error::IsADirectory`];
    /// [`Error::PermissionDenied`]; [`Error::InvalidArgument`] for a path that leaves the sandbox
    /// root; [`Error::Closed`] after [`Sandbox::kill`](crate::Sandbox::kill); [`Error::Http`],
    /// [`Error::Transport`] or [`Error::Timeout`] when the server refuses or cannot be reached.
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
        let piece = crate::kernel::helper::PIECE;
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
            batch.push(json!({"path": rel, "data": crate::kernel::helper::encode(data)}));
        }
        flush(&mut batch, &mut out)?;
        Ok(out)
    }

    /// Writes a file from a reader, in chunks, without reading it all into memory first.
    ///
    /// # Errors
    ///
    /// as for [`Files::write`]; [`Error::Io`] when `reader` fails; [`Error::InvalidArgument`] for a
    /// path that leaves the sandbox root; [`Error::Closed`] after
    /// [`Sandbox::kill`](crate::Sandbox::kill); [`Error::Http`], [`Error::Transport`] or
    /// [`Error::Timeout`] when the server refuses or cannot be reached.
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
    ///
    /// # Errors
    ///
    /// [`Error::FileNotFound`]; [`Error::NotADirectory`] for a file; [`Error::InvalidArgument`] for
    /// a path that leaves the sandbox root; [`Error::Closed`] after
    /// [`Sandbox::kill`](crate::Sandbox::kill); [`Error::Http`], [`Error::Transport`] or
    /// [`Error::Timeout`] when the server refuses or cannot be reached.
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
    ///
    /// # Errors
    ///
    /// [`Error::FileNotFound`]; [`Error::InvalidArgument`] for a path that leaves the sandbox root;
    /// [`Error::Closed`] after [`Sandbox::kill`](crate::Sandbox::kill); [`Error::Http`],
    /// [`Error::Transport`] or [`Error::Timeout`] when the server refuses or cannot be reached.
    pub fn get_info(&self, path: &str) -> Result<EntryInfo, Error> {
        let rel = self.path(path)?;
        self.model(&rel).map(|m| m.info())
    }

    /// True when a file or directory exists at `path`.
    ///
    /// # Errors
    ///
    /// A missing path is `Ok(false)`, not an error; [`Error::InvalidArgument`] for a path that
    /// leaves the sandbox root; [`Error::Closed`] after [`Sandbox::kill`](crate::Sandbox::kill);
    /// [`Error::Http`], [`Error::Transport`] or [`Error::Timeout`] when the server refuses or
    /// cannot be reached.
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
    ///
    /// # Errors
    ///
    /// A missing path is not an error; [`Error::PermissionDenied`]; [`Error::InvalidArgument`] for
    /// a path that leaves the sandbox root; [`Error::Closed`] after
    /// [`Sandbox::kill`](crate::Sandbox::kill); [`Error::Http`], [`Error::Transport`] or
    /// [`Error::Timeout`] when the server refuses or cannot be reached.
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
    ///
    /// # Errors
    ///
    /// [`Error::FileNotFound`] for a missing source; [`Error::NotADirectory`] when a parent of the
    /// destination is a file; [`Error::InvalidArgument`] for a path that leaves the sandbox root;
    /// [`Error::Closed`] after [`Sandbox::kill`](crate::Sandbox::kill); [`Error::Http`],
    /// [`Error::Transport`] or [`Error::Timeout`] when the server refuses or cannot be reached.
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
    ///
    /// # Errors
    ///
    /// [`Error::NotADirectory`] when the path or a parent is a file; [`Error::InvalidArgument`] for
    /// a path that leaves the sandbox root; [`Error::Closed`] after
    /// [`Sandbox::kill`](crate::Sandbox::kill); [`Error::Http`], [`Error::Transport`] or
    /// [`Error::Timeout`] when the server refuses or cannot be reached.
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
}
