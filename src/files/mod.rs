//! `sandbox.files()`: files in the sandbox, over the Jupyter contents API in the root and
//! through a private kernel elsewhere. See [`Files`].

mod contents;
mod path;
mod transfer;
pub(crate) mod watch;

use crate::model::entry::EntryInfo;
pub use transfer::{Download, Upload};

use std::io::{Read, Write};

use serde_json::{Value, json};

use crate::error::Error;
use crate::net::{Http, Method};
use crate::plane::Plane;
use crate::plane::e2b::E2bFiles;
use crate::sandbox::Sandbox;

use self::contents::*;
use self::path::*;
use self::transfer::*;

/// Files in the sandbox. Get one with [`Sandbox::files`].
///
/// # Paths
///
/// A path means what it means to code in the sandbox, as with E2B's `files`: a relative path
/// is relative to the sandbox root (the directory the Jupyter server serves, and the cwd of
/// code, commands and contexts: `/home/user` on E2B and in the isolated local sandbox, see
/// [`Sandbox::server_root`]); an absolute path is the one code would open, in the root
/// (`/home/user/data.csv`) or anywhere else the sandbox's user may reach (`/tmp/x`). `.` and
/// `..` are resolved on the client, lexically, as E2B's envd does.
///
/// Paths in the root go through the Jupyter contents API (streamed, chunked); paths elsewhere,
/// and links in the root that lead out of it (which the server's `/files/` will not follow),
/// through a private kernel of the sandbox, in 4 MiB pieces. The kernel sees the file system
/// as code does and acts as the sandbox's user, as E2B's envd does: in the isolated local
/// sandbox that is the sandbox's own `/tmp` and read-only system directories, never the
/// host's, so no path given here reaches further than code could. The server stays rooted at
/// the root rather than at `/`: its checks of hidden files and links keep their meaning, and
/// an unisolated server does not serve the whole host. Without isolation
/// ([`Isolation::None`](crate::Isolation::None)) code runs on the host as your user, and an
/// absolute path there is the host's: `files().read("/tmp/x")` reads the host's `/tmp/x` with
/// your user's rights, as code could; where paths come from untrusted input, keep the sandbox
/// isolated. On a server other than the local sandbox's the first absolute path, or relative
/// one whose `..` climbs above the root, costs a kernel call to learn the root.
///
/// Entries ([`EntryInfo::path`]) name paths relative to the root, or absolute for entries
/// elsewhere; errors name the path in the caller's terms: absolute when the call named an
/// absolute path. Removing or renaming the root, or a directory that holds it, is refused
/// with [`Error::InvalidArgument`].
///
/// # Servers with default contents settings
///
/// Every server but the local sandbox's keeps jupyter_server's defaults (E2B's template does):
/// deletes go to the trash and hidden paths are refused. So on those servers
/// [`Files::remove`] and every operation on a hidden path (`.env`, `.config/x`) run in a
/// private kernel of the sandbox instead (as the kernel's user: root on E2B), in pieces of
/// 4 MiB per request. Listing a non-hidden directory in the root shows no hidden entries
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
    /// The user files are read and written as (E2B's `user`), where the plane has users.
    user: Option<String>,
}

impl Files {
    pub(crate) fn new(sandbox: Sandbox) -> Self {
        Files {
            sandbox,
            user: None,
        }
    }

    /// The same files, read and written as `user` (E2B's `user` option: `user`, the default,
    /// or `root`). Paths relative to nothing are relative to that user's home.
    ///
    /// Only the E2B data plane ([`DataPlane::E2b`](crate::DataPlane::E2b)) has users; on the
    /// Jupyter plane files are those of the server's user, and every call of the returned
    /// `Files` fails with [`Error::Unsupported`].
    pub fn as_user(&self, user: impl Into<String>) -> Files {
        Files {
            sandbox: self.sandbox.clone(),
            user: Some(user.into()),
        }
    }

    /// E2B's plane for this call, or `None` for the Jupyter plane.
    pub(crate) fn e2b(&self) -> Result<Option<E2bFiles<'_>>, Error> {
        match self.sandbox.plane()? {
            Plane::E2b(plane) => Ok(Some(E2bFiles {
                plane,
                user: self.user.as_deref(),
            })),
            Plane::Jupyter if self.user.is_some() => Err(Error::Unsupported {
                feature: "acting on files as another user",
                needs: "E2B's data plane (envd)".into(),
                found: "a Jupyter server, whose files are its own user's".into(),
            }),
            Plane::Jupyter => Ok(None),
        }
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
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// # let sbx = e2b_blocking::Sandbox::local()?;
    ///
    /// sbx.files().make_dir("inbox")?;
    /// let mut watch = sbx.files().watch_dir("inbox", false)?;
    /// sbx.files().write("inbox/a.txt", "hello")?;
    /// while let Some(event) = watch.next_timeout(Duration::from_secs(1))? {
    ///     println!("{:?} {}", event.kind, event.path); // Create a.txt, Write a.txt
    /// }
    /// # Ok::<(), e2b_blocking::Error>(())
    /// ```
    pub fn watch_dir(&self, path: &str, recursive: bool) -> Result<crate::WatchHandle, Error> {
        self.watch(path).recursive(recursive).start()
    }

    /// Describes a directory watch with options (recursive, queue capacity); start it with
    /// [`WatchBuilder::start`](crate::WatchBuilder::start).
    pub fn watch(&self, path: &str) -> crate::WatchBuilder {
        watch::WatchBuilder::new(self.clone(), path)
    }

    pub(crate) fn path(&self, path: &str) -> Result<SandboxPath, Error> {
        self.sandbox.ensure_open()?;
        resolve(path, || self.sandbox.root_names())
    }

    /// True when `rel` must go through a kernel: a path outside the root, which the contents
    /// API does not serve, or a hidden path on a server whose contents API keeps
    /// jupyter_server's default `allow_hidden=False` (every server but the local one).
    fn via_kernel(&self, rel: &str) -> bool {
        rel.starts_with('/') || (self.sandbox.as_local().is_none() && is_hidden(rel))
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
    /// As for [`Files::read_bytes`]; [`Error::InvalidArgument`] for a file that is not UTF-8.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let sbx = e2b_blocking::Sandbox::local()?;
    /// // Relative to the sandbox root, or absolute as the code sees it (`/home/user/...`).
    /// let config = sbx.files().read("config.toml")?;
    /// let hosts = sbx.files().read("/etc/hosts")?;
    /// # Ok::<(), e2b_blocking::Error>(())
    /// ```
    pub fn read(&self, path: &str) -> Result<String, Error> {
        let bytes = self.read_bytes(path)?;
        String::from_utf8(bytes).map_err(|_| {
            Error::InvalidArgument(format!(
                "{path} is not valid UTF-8 text; read it with read_bytes"
            ))
        })
    }

    /// Reads a file's bytes. A symbolic link is followed as code would follow it: through a
    /// kernel when it leads out of the root, so it reads what code in the sandbox would read.
    ///
    /// # Errors
    ///
    /// [`Error::FileNotFound`] (also for a link to nothing the sandbox can see);
    /// [`Error::IsADirectory`]; [`Error::PermissionDenied`]; [`Error::InvalidArgument`] for
    /// what is not a regular file (a FIFO, a device); [`Error::Closed`] after
    /// [`Sandbox::kill`](crate::Sandbox::kill); [`Error::Authentication`] when the server no
    /// longer accepts the token; [`Error::Http`], [`Error::Transport`] or [`Error::Timeout`]
    /// when the server refuses or cannot be reached.
    pub fn read_bytes(&self, path: &str) -> Result<Vec<u8>, Error> {
        self.download(path).to_vec()
    }

    /// Streams a file into `sink`; returns the number of bytes written.
    ///
    /// # Errors
    ///
    /// As for [`Files::read_bytes`]; [`Error::Io`] when `sink` fails.
    pub fn read_to(&self, path: &str, sink: impl Write) -> Result<u64, Error> {
        self.download(path).to_writer(sink)
    }

    /// Writes a file, replacing it if it exists and creating missing parent directories.
    /// Text and bytes alike: `write("a.txt", "hi")`, `write("b.bin", &bytes)`.
    ///
    /// # Errors
    ///
    /// [`Error::NotADirectory`] when a parent is a file; [`Error::IsADirectory`];
    /// [`Error::PermissionDenied`]; [`Error::InvalidArgument`] for what is not a regular file
    /// (outside the root); [`Error::Closed`] after [`Sandbox::kill`](crate::Sandbox::kill);
    /// [`Error::Http`], [`Error::Transport`] or [`Error::Timeout`] when the server refuses or
    /// cannot be reached.
    ///
    /// # Examples
    ///
    /// ```
    /// # std::thread::spawn(|| { std::thread::sleep(std::time::Duration::from_secs(120)); eprintln!("doctest deadline passed"); std::process::exit(1) });
    /// use e2b_blocking::{FileType, Sandbox};
    ///
    /// let sbx = Sandbox::local()?;
    /// let files = sbx.files();
    /// files.write("data/in.csv", "a,b\n1,2\n")?; // parents created
    /// files.write("data/blob.bin", [0u8, 1, 2])?;
    /// assert_eq!(files.read("/home/user/data/in.csv")?, "a,b\n1,2\n"); // as the code sees it
    ///
    /// let names: Vec<_> = files.list("data")?.into_iter().map(|e| e.name).collect();
    /// assert_eq!(names, ["blob.bin", "in.csv"]);
    /// # let data = files.list("")?.into_iter().find(|e| e.name == "data");
    /// # assert_eq!(data.map(|e| e.kind), Some(FileType::Dir));
    /// # Ok::<(), e2b_blocking::Error>(())
    /// ```
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
    /// [`Error::IsADirectory`] for the root (nothing written); the typed error of the first
    /// write that failed, naming its path ([`Error::IsADirectory`], [`Error::NotADirectory`],
    /// [`Error::PermissionDenied`], ...); connection errors.
    pub fn write_many<I, P, D>(&self, files: I) -> Result<Vec<EntryInfo>, Error>
    where
        I: IntoIterator<Item = (P, D)>,
        P: AsRef<str>,
        D: AsRef<[u8]>,
    {
        if let Some(e2b) = self.e2b()? {
            let owned: Vec<(P, D)> = files.into_iter().collect();
            let given: Vec<(&str, &[u8])> = owned
                .iter()
                .map(|(p, d)| (p.as_ref(), d.as_ref()))
                .collect();
            return e2b.write_many(&given);
        }
        let mut checked = Vec::new();
        for (path, data) in files {
            let resolved = self.path(path.as_ref())?;
            if resolved.rel.is_empty() {
                return Err(resolved.named(Error::IsADirectory { path: shown("") }));
            }
            checked.push((path, resolved, data));
        }
        // An error names the batch's path that failed: in the terms that path was given in.
        let named = |mut e: Error| {
            let failed = file_error_path(&mut e).cloned();
            match checked
                .iter()
                .find(|(_, p, _)| failed.as_deref() == Some(shown(&p.rel).as_str()))
            {
                Some((_, p, _)) => p.named(e),
                None => e,
            }
        };
        let piece = crate::kernel::helper::PIECE;
        let mut out = Vec::with_capacity(checked.len());
        let mut batch = Vec::new();
        let mut batch_bytes = 0;
        let flush = |batch: &mut Vec<Value>, out: &mut Vec<EntryInfo>| -> Result<(), Error> {
            if batch.is_empty() {
                return Ok(());
            }
            let done = self
                .kernel(json!({"op": "write_many", "files": std::mem::take(batch)}))
                .map_err(named)?;
            let models: Vec<Model> = serde_json::from_value(done["entries"].clone())
                .map_err(|e| Error::protocol_from("bad file models from the kernel", e))?;
            out.extend(models.iter().map(Model::info));
            Ok(())
        };
        for (path, resolved, data) in &checked {
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
            batch.push(json!({"path": resolved.rel, "data": crate::kernel::helper::encode(data)}));
        }
        flush(&mut batch, &mut out)?;
        Ok(out)
    }

    /// Writes a file from a reader, in chunks, without reading it all into memory first.
    ///
    /// # Errors
    ///
    /// As for [`Files::write`]; [`Error::Io`] when `reader` fails.
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
    /// [`Error::FileNotFound`]; [`Error::NotADirectory`] for a file;
    /// [`Error::PermissionDenied`]; [`Error::Closed`] after
    /// [`Sandbox::kill`](crate::Sandbox::kill); [`Error::Http`], [`Error::Transport`] or
    /// [`Error::Timeout`] when the server refuses or cannot be reached.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use e2b_blocking::FileType;
    /// # let sbx = e2b_blocking::Sandbox::local()?;
    ///
    /// for entry in sbx.files().list("")? {
    ///     let size = entry.size.map(|s| s.to_string()).unwrap_or_default();
    ///     let slash = if entry.kind == FileType::Dir { "/" } else { "" };
    ///     println!("{}{slash} {size}", entry.name);
    /// }
    /// # Ok::<(), e2b_blocking::Error>(())
    /// ```
    pub fn list(&self, path: &str) -> Result<Vec<EntryInfo>, Error> {
        self.list_depth(path, 1)
    }

    /// Entries of a directory and of the directories below it, down to `depth` levels
    /// (1: the directory's own entries, as [`Files::list`]); E2B's `list(path, depth)`. Links
    /// to directories are not followed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for depth 0; as for [`Files::list`].
    pub fn list_depth(&self, path: &str, depth: u32) -> Result<Vec<EntryInfo>, Error> {
        if depth == 0 {
            return Err(Error::InvalidArgument(
                "list depth must be at least 1".into(),
            ));
        }
        if let Some(e2b) = self.e2b()? {
            return e2b.list(path, depth);
        }
        let resolved = self.path(path)?;
        let mut entries = self
            .list_rel(&resolved.rel)
            .map_err(|e| resolved.named(e))?;
        if depth > 1 {
            let mut below = Vec::new();
            for dir in entries.iter().filter(|e| e.is_dir()) {
                below.extend(self.list_depth(&dir.path, depth - 1)?);
            }
            entries.extend(below);
            entries.sort_by(|a, b| a.path.cmp(&b.path));
        }
        Ok(entries)
    }

    fn list_rel(&self, rel: &str) -> Result<Vec<EntryInfo>, Error> {
        if self.via_kernel(rel) {
            let listing = self.kernel(json!({"op": "list", "path": rel}))?;
            let entries: Vec<Model> = serde_json::from_value(listing["entries"].clone())
                .map_err(|e| Error::protocol_from("bad listing from the kernel", e))?;
            return Ok(entries.iter().map(Model::info).collect());
        }
        let resp = self.http().send(
            Method::Get,
            &format!("{}?type=directory&content=1", api_path(rel)),
            None,
        )?;
        if !resp.is_success() {
            return Err(contents_error(resp, rel));
        }
        let model: Model = resp.json()?;
        let Value::Array(items) = model.content else {
            return Err(Error::protocol(format!(
                "listing of {} has no entries",
                shown(rel)
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
    /// [`Error::FileNotFound`]; [`Error::PermissionDenied`]; [`Error::Closed`] after
    /// [`Sandbox::kill`](crate::Sandbox::kill); [`Error::Http`], [`Error::Transport`] or
    /// [`Error::Timeout`] when the server refuses or cannot be reached.
    pub fn get_info(&self, path: &str) -> Result<EntryInfo, Error> {
        if let Some(e2b) = self.e2b()? {
            return e2b.get_info(path);
        }
        let resolved = self.path(path)?;
        self.model(&resolved.rel)
            .map(|m| m.info())
            .map_err(|e| resolved.named(e))
    }

    /// True when a file or directory exists at `path`.
    ///
    /// # Errors
    ///
    /// A missing path is `Ok(false)`, not an error; otherwise as for [`Files::get_info`].
    pub fn exists(&self, path: &str) -> Result<bool, Error> {
        match self.get_info(path) {
            Ok(_) => Ok(true),
            Err(Error::FileNotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes a file, or a directory with everything in it, for good. A symbolic link is
    /// removed, not what it points to. As with E2B, a missing path is not an error: once this
    /// returns, nothing is at `path`.
    ///
    /// On every server but the local sandbox's this runs in a private kernel: jupyter_server's
    /// contents API moves deletes to the trash by default (`delete_to_trash=True`, E2B's
    /// setting too), which frees no disk.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for the sandbox root or a directory that holds it (`/`,
    /// `/home`); [`Error::PermissionDenied`]; [`Error::Closed`] after
    /// [`Sandbox::kill`](crate::Sandbox::kill); [`Error::Http`], [`Error::Transport`] or
    /// [`Error::Timeout`] when the server refuses or cannot be reached.
    pub fn remove(&self, path: &str) -> Result<(), Error> {
        if let Some(e2b) = self.e2b()? {
            return e2b.remove(path);
        }
        let resolved = self.path(path)?;
        if resolved.holds_root() {
            return Err(Error::InvalidArgument(format!(
                "refusing to remove {path:?}: it is the sandbox root or holds it"
            )));
        }
        let removed = if self.sandbox.as_local().is_none() || resolved.outside() {
            self.kernel(json!({"op": "remove", "path": resolved.rel}))
                .map(drop)
        } else {
            self.remove_rel(&resolved.rel)
        };
        match removed {
            Err(Error::FileNotFound { .. }) => Ok(()),
            other => other.map_err(|e| resolved.named(e)),
        }
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
                for entry in self.list_rel(rel)? {
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
    /// destination. Moving onto an existing path fails (HTTP 409, as from jupyter_server).
    ///
    /// # Errors
    ///
    /// [`Error::FileNotFound`] for a missing source; [`Error::NotADirectory`] when a parent of
    /// the destination is a file; [`Error::InvalidArgument`] for the sandbox root or a
    /// directory that holds it; [`Error::Closed`] after
    /// [`Sandbox::kill`](crate::Sandbox::kill); [`Error::Http`], [`Error::Transport`] or
    /// [`Error::Timeout`] when the server refuses or cannot be reached.
    pub fn rename(&self, from: &str, to: &str) -> Result<EntryInfo, Error> {
        if let Some(e2b) = self.e2b()? {
            return e2b.rename(from, to);
        }
        let old = self.path(from)?;
        let new = self.path(to)?;
        if old.holds_root() || new.holds_root() {
            return Err(Error::InvalidArgument(
                "the sandbox root, and directories that hold it, cannot be renamed or replaced"
                    .into(),
            ));
        }
        self.rename_rel(&old.rel, &new.rel)
            .map_err(|e| old.named(new.named(e)))
    }

    fn rename_rel(&self, old: &str, new: &str) -> Result<EntryInfo, Error> {
        if self.via_kernel(old) || self.via_kernel(new) {
            return self
                .kernel_model(json!({"op": "rename", "path": old, "to": new}))
                .map(|m| m.info());
        }
        let body = json!({ "path": new });
        let send = || self.http().send(Method::Patch, &api_path(old), Some(&body));
        let mut resp = send()?;
        // A missing destination directory shows up as 404 (os.rename's ENOENT) or 500.
        if !resp.is_success()
            && (resp.status == 404 || resp.status >= 500)
            && self.fix_parent(new)?
        {
            resp = send()?;
        }
        if !resp.is_success() {
            return Err(contents_error(resp, old));
        }
        Ok(resp.json::<Model>()?.info())
    }

    /// Creates a directory and any missing parents. Returns `false` when it existed already.
    ///
    /// # Errors
    ///
    /// [`Error::NotADirectory`] when the path or a parent is a file;
    /// [`Error::PermissionDenied`]; [`Error::Closed`] after
    /// [`Sandbox::kill`](crate::Sandbox::kill); [`Error::Http`], [`Error::Transport`] or
    /// [`Error::Timeout`] when the server refuses or cannot be reached.
    pub fn make_dir(&self, path: &str) -> Result<bool, Error> {
        if let Some(e2b) = self.e2b()? {
            return e2b.make_dir(path);
        }
        let resolved = self.path(path)?;
        let rel = resolved.rel.as_str();
        let made = match self.model(rel) {
            Ok(m) if m.kind == "directory" => Ok(false),
            Ok(_) => Err(Error::NotADirectory { path: shown(rel) }),
            Err(Error::FileNotFound { .. }) => self.make_dirs(rel).map(|()| true),
            Err(e) => Err(e),
        };
        made.map_err(|e| resolved.named(e))
    }
}
