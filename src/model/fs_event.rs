//! What a directory watch reports.

use serde::Serialize;

/// What happened to a path, with E2B's event names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FsEventKind {
    /// A file or directory was created, or moved into the watched tree (the new name of a
    /// rename, as in E2B).
    Create,
    /// A file's content was written to (or truncated). One write call may give more than
    /// one: inotify merges repeated modifications only while the watcher has not read them.
    Write,
    /// A file or directory was removed.
    Remove,
    /// A file or directory was moved away: the old name of a rename (a [`FsEventKind::Create`]
    /// follows for the new name when it stays in the watched tree).
    Rename,
    /// Permissions, owner or timestamps changed.
    Chmod,
    /// Events were dropped: the reader fell more than the queue's capacity behind
    /// ([`FsEvent::dropped`] says how many), or the sandbox kernel's own inotify queue
    /// overflowed (`dropped` is `None`: the number is not known). Rescan what matters.
    Overflow,
}

/// One change in a watched directory, from [`WatchHandle`](crate::WatchHandle).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FsEvent {
    /// What happened.
    pub kind: FsEventKind,
    /// The path, relative to the watched directory (E2B's `name`); empty for
    /// [`FsEventKind::Overflow`].
    pub path: String,
    /// For [`FsEventKind::Overflow`]: how many events the queue dropped, when known.
    pub dropped: Option<u64>,
}

impl FsEvent {
    pub(crate) fn new(kind: FsEventKind, path: &str) -> FsEvent {
        FsEvent {
            kind,
            path: path.to_string(),
            dropped: None,
        }
    }

    pub(crate) fn overflow(dropped: Option<u64>) -> FsEvent {
        FsEvent {
            kind: FsEventKind::Overflow,
            path: String::new(),
            dropped,
        }
    }
}
