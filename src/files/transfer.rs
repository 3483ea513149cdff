//! Uploads and downloads with progress, in chunks through the contents API or a kernel.

use std::io::{self, Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use base64::Engine;
use serde_json::json;

use crate::error::{Error, TimeoutPhase};
use crate::net::{Method, describe};

use super::path::*;
use crate::model::entry::EntryInfo;

use super::Files;

/// Default size of one upload chunk.
pub(super) const DEFAULT_CHUNK: usize = 8 << 20;
/// Size of one read from a download stream.
pub(super) const READ_BUF: usize = 256 << 10;

/// A progress callback: `(bytes done, total bytes when known)`.
pub(super) type Progress<'a> = Box<dyn FnMut(u64, Option<u64>) + 'a>;

/// Options of one upload; finish with [`Upload::bytes`], [`Upload::reader`] or
/// [`Upload::file`].
#[must_use = "nothing is uploaded until .bytes(), .reader() or .file() is called"]
pub struct Upload<'a> {
    pub(super) files: Files,
    pub(super) path: String,
    pub(super) progress: Option<Progress<'a>>,
    pub(super) chunk_size: usize,
    pub(super) total: Option<u64>,
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
    ///
    /// # Errors
    ///
    /// As for [`Files::write`](super::Files::write); [`Error::CallbackPanicked`] when the progress
    /// callback panicked.
    pub fn bytes(mut self, data: &[u8]) -> Result<EntryInfo, Error> {
        if self.files.e2b()?.is_some() {
            self.total = Some(data.len() as u64);
            return self.send(data, "<memory>");
        }
        let resolved = self.files.path(&self.path)?;
        self.total = Some(data.len() as u64);
        self.bytes_to(&resolved.rel, data)
            .map_err(|e| resolved.named(e))
    }

    fn bytes_to(mut self, rel: &str, data: &[u8]) -> Result<EntryInfo, Error> {
        if rel.is_empty() {
            return Err(Error::IsADirectory { path: shown(rel) });
        }
        if self.files.via_kernel(rel) {
            return self.through_kernel(rel, data, "<memory>");
        }
        if data.len() <= self.chunk_size {
            let model = self.files.put(rel, &body(None, data))?;
            self.report(data.len() as u64)?;
            return Ok(model.info());
        }
        log::debug!(
            "uploading {} ({} bytes) in chunks of {}",
            shown(rel),
            data.len(),
            self.chunk_size
        );
        let count = data.len().div_ceil(self.chunk_size);
        let mut done = 0u64;
        let mut last = None;
        for (i, piece) in data.chunks(self.chunk_size).enumerate() {
            let number = if i + 1 == count { -1 } else { i as i64 + 1 };
            last = Some(self.files.put(rel, &body(Some(number), piece))?);
            done += piece.len() as u64;
            self.report(done)?;
        }
        last.map(|m| m.info())
            .ok_or_else(|| Error::protocol("chunked upload sent no chunk"))
    }

    /// Uploads a local file.
    ///
    /// # Errors
    ///
    /// As for [`Upload::bytes`]; [`Error::Io`] when the local file cannot be read.
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
    ///
    /// # Errors
    ///
    /// As for [`Upload::bytes`]; [`Error::Io`] when `reader` fails.
    pub fn reader(self, reader: impl Read) -> Result<EntryInfo, Error> {
        self.send(reader, "<reader>")
    }

    fn send(mut self, mut reader: impl Read, source: &str) -> Result<EntryInfo, Error> {
        if let Some(e2b) = self.files.e2b()? {
            // Streamed in one request: envd writes it to a temporary file it renames into place.
            let total = self.total;
            let progress = &mut self.progress;
            return e2b.upload(&self.path, &mut reader, source, &mut |done, _| {
                call_progress(progress, done, total)
            });
        }
        let resolved = self.files.path(&self.path)?;
        self.send_to(&resolved.rel, reader, source)
            .map_err(|e| resolved.named(e))
    }

    fn send_to(
        mut self,
        rel: &str,
        mut reader: impl Read,
        source: &str,
    ) -> Result<EntryInfo, Error> {
        if rel.is_empty() {
            return Err(Error::IsADirectory { path: shown(rel) });
        }
        if self.files.via_kernel(rel) {
            return self.through_kernel(rel, reader, source);
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
            let model = files.put(rel, &body(None, &cur))?;
            self.report(cur.len() as u64)?;
            return Ok(model.info());
        }
        log::debug!("uploading {} in chunks of {chunk} bytes", shown(rel));
        let mut number: i64 = 1;
        let mut done: u64 = 0;
        loop {
            files.put(rel, &body(Some(number), &cur))?;
            done += cur.len() as u64;
            self.report(done)?;
            std::mem::swap(&mut cur, &mut next);
            if cur.len() == chunk {
                fill(&mut reader, &mut next, chunk).map_err(io_err)?;
            } else {
                next.clear();
            }
            if next.is_empty() {
                let model = files.put(rel, &body(Some(-1), &cur))?;
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
            fill(&mut reader, &mut piece, crate::kernel::helper::PIECE).map_err(|e| Error::Io {
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
                "data": crate::kernel::helper::encode(&piece),
            }))?;
            done += piece.len() as u64;
            self.report(done)?;
            if piece.len() < crate::kernel::helper::PIECE {
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
    pub(super) files: Files,
    pub(super) path: String,
    pub(super) progress: Option<Progress<'a>>,
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
    ///
    /// # Errors
    ///
    /// As for [`Files::read_to`](super::Files::read_to); [`Error::CallbackPanicked`] when the
    /// progress callback panicked.
    pub fn to_writer(self, mut sink: impl Write) -> Result<u64, Error> {
        self.stream(&mut sink, "<writer>", |_, _| {})
    }

    /// Reads the whole file into memory, reserving its announced size up front.
    ///
    /// # Errors
    ///
    /// As for [`Download::to_writer`].
    pub fn to_vec(self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.stream(&mut out, "<memory>", |v, total| {
            v.reserve_exact(reserve(total))
        })?;
        Ok(out)
    }

    /// Saves the file to a local path (created or truncated); returns the number of bytes.
    ///
    /// # Errors
    ///
    /// As for [`Download::to_writer`]; [`Error::Io`] when the local file cannot be written.
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
        if let Some(e2b) = self.files.e2b()? {
            let progress = &mut self.progress;
            return e2b.download(
                &self.path,
                sink,
                sink_name,
                crate::plane::e2b::E2bDownload {
                    progress: &mut |done, total| call_progress(progress, done, total),
                },
            );
        }
        let resolved = self.files.path(&self.path)?;
        self.stream_from(&resolved.rel, sink, sink_name, on_total)
            .map_err(|e| resolved.named(e))
    }

    fn stream_from<W: Write>(
        mut self,
        rel: &str,
        sink: &mut W,
        sink_name: &str,
        on_total: impl FnOnce(&mut W, Option<u64>),
    ) -> Result<u64, Error> {
        if self.files.via_kernel(rel) {
            return self.through_kernel(rel, sink, sink_name, on_total);
        }
        let Some(mut resp) = self.files.open_download(rel)? else {
            // A link out of the root, which /files/ does not follow: read what code reads.
            return self.through_kernel(rel, sink, sink_name, on_total);
        };
        let http = self.files.http();
        let total = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        on_total(sink, total);
        let endpoint = describe(Method::Get, &files_path(rel));
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
                shown(rel)
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
                "limit": crate::kernel::helper::PIECE,
            }))?;
            let total = piece["size"].as_u64();
            if let Some(f) = on_total.take() {
                f(sink, total);
            }
            let data = crate::kernel::helper::decode_data(&piece)?;
            sink.write_all(&data).map_err(sink_err)?;
            done += data.len() as u64;
            call_progress(&mut self.progress, done, total)?;
            if data.len() < crate::kernel::helper::PIECE {
                sink.flush().map_err(sink_err)?;
                return Ok(done);
            }
        }
    }
}

/// How much of an announced download size to reserve: all of it up to 4 GiB.
pub(super) fn reserve(total: Option<u64>) -> usize {
    total.map_or(0, |t| usize::try_from(t.min(4 << 30)).unwrap_or(0))
}

/// Runs a progress callback; a panic in it becomes [`Error::CallbackPanicked`].
pub(super) fn call_progress(
    f: &mut Option<Progress<'_>>,
    done: u64,
    total: Option<u64>,
) -> Result<(), Error> {
    let Some(f) = f.as_mut() else {
        return Ok(());
    };
    catch_unwind(AssertUnwindSafe(|| f(done, total))).map_err(|payload| Error::CallbackPanicked {
        callback: "on_progress",
        message: crate::sync::panic_message(payload.as_ref()),
    })
}

/// Replaces `buf`'s contents with the next `limit` bytes of `reader` (fewer at its end).
pub(super) fn fill(reader: &mut impl Read, buf: &mut Vec<u8>, limit: usize) -> io::Result<()> {
    buf.clear();
    reader.take(limit as u64).read_to_end(buf).map(drop)
}

/// The JSON body of a base64 save, built directly (base64 needs no escaping) so the content
/// is encoded once into one buffer.
pub(super) fn body(chunk: Option<i64>, data: &[u8]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn base64_bodies_are_json() {
        let v: Value = serde_json::from_str(&body(Some(-1), b"\x00\xffhi")).unwrap();
        assert_eq!(v["chunk"], -1);
        assert_eq!(v["content"], "AP9oaQ==");
        let v: Value = serde_json::from_str(&body(None, b"")).unwrap();
        assert!(v.get("chunk").is_none());
        assert_eq!(v["content"], "");
    }
}
