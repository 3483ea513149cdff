//! What a finished call keeps of its output, and what it reports dropping: an [`Execution`]'s
//! logs and rich results, a command's stdout and stderr. Callbacks see every byte; only what
//! the result keeps is bounded.
//!
//! [`Execution`]: crate::Execution

use std::collections::VecDeque;

use serde::Serialize;
use serde_json::Value;

/// The most bytes of output a result keeps per stream unless told otherwise: 16 MiB each of
/// stdout, stderr and (for code) rich results, so at most 48 MiB per call. Far more than
/// anyone reads, and a flood (a command that writes gigabytes, a loop that prints for ever)
/// costs the caller at most this much memory, however long it runs; the callbacks still see
/// all of it. See [`CodeBuilder::max_output`](crate::CodeBuilder::max_output) and
/// [`CommandBuilder::max_output`](crate::CommandBuilder::max_output).
pub const DEFAULT_MAX_OUTPUT: usize = 16 << 20;

/// How much output a result dropped to stay within its cap (all zero when it kept everything).
/// The bytes are those of the UTF-8 text as received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DroppedOutput {
    /// Bytes of stdout dropped from the start of the stream.
    pub stdout_bytes: u64,
    /// Bytes of stderr dropped from the start of the stream.
    pub stderr_bytes: u64,
    /// Rich results dropped, the oldest first (always 0 for commands).
    pub results: u64,
    /// Their size: the bytes of their MIME bundles' text and base64 data.
    pub result_bytes: u64,
}

impl DroppedOutput {
    /// True when anything was dropped.
    pub fn any(&self) -> bool {
        *self != DroppedOutput::default()
    }
}

/// The last `cap` bytes of one text stream, in the chunks it arrived in.
///
/// The tail, not the head: the end of a log is where its outcome is (the error, the
/// traceback, the summary line, the last progress report), while the start of a flood is
/// usually more of the same. A caller who wants the head has the callbacks.
///
/// The kept text starts on a character boundary, so it may be up to 3 bytes under the cap.
/// Memory stays under 1.5 times the cap plus one chunk: whole chunks go as soon as the newer
/// ones hold `cap` bytes, and the oldest kept chunk is cut once half of it, or half a cap,
/// lies before the tail, so each byte is moved at most a few times.
#[derive(Debug)]
pub(crate) struct Tail {
    chunks: VecDeque<String>,
    /// Bytes in `chunks`, those before the tail included.
    len: usize,
    cap: usize,
    /// Bytes dropped for good.
    dropped: u64,
}

impl Tail {
    pub(crate) fn new(cap: usize) -> Tail {
        Tail {
            chunks: VecDeque::new(),
            len: 0,
            cap,
            dropped: 0,
        }
    }

    /// Keeps `chunk` as a chunk of its own.
    pub(crate) fn push(&mut self, chunk: String) {
        if self.cap == 0 {
            self.dropped += chunk.len() as u64;
            return;
        }
        self.len += chunk.len();
        self.chunks.push_back(chunk);
        self.trim();
    }

    /// Appends `text` to the last chunk, for a stream kept as one text ([`Tail::text`]).
    pub(crate) fn append(&mut self, text: &str) {
        if self.cap == 0 {
            self.dropped += text.len() as u64;
            return;
        }
        match self.chunks.back_mut() {
            Some(last) => last.push_str(text),
            None => self.chunks.push_back(text.to_string()),
        }
        self.len += text.len();
        self.trim();
    }

    fn trim(&mut self) {
        while self.chunks.len() > 1 && self.len - self.chunks[0].len() >= self.cap {
            if let Some(gone) = self.chunks.pop_front() {
                self.len -= gone.len();
                self.dropped += gone.len() as u64;
            }
        }
        let start = self.start();
        if let Some(front) = self.chunks.front_mut()
            && start > 0
            && (start >= front.len() / 2 || start >= self.cap / 2)
        {
            front.drain(..start);
            self.len -= start;
            self.dropped += start as u64;
        }
    }

    /// Where the tail begins in the oldest chunk.
    fn start(&self) -> usize {
        let Some(front) = self.chunks.front() else {
            return 0;
        };
        let mut at = self.len.saturating_sub(self.cap).min(front.len());
        while !front.is_char_boundary(at) {
            at += 1;
        }
        at
    }

    /// Bytes dropped so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped + self.start() as u64
    }

    /// The kept text of a stream built with [`Tail::append`].
    pub(crate) fn text(&self) -> &str {
        debug_assert!(
            self.chunks.len() <= 1,
            "a stream of chunks has no single text"
        );
        self.chunks.front().map_or("", |c| &c[self.start()..])
    }

    /// The kept chunks.
    pub(crate) fn into_chunks(mut self) -> Vec<String> {
        let start = self.start();
        if let Some(front) = self.chunks.front_mut() {
            front.drain(..start);
        }
        self.chunks.into()
    }
}

/// The newest rich results that fit in `cap` bytes (see [`Tail`] for why the newest). A
/// result is kept whole or not at all; one larger than the cap is not kept.
#[derive(Debug)]
pub(crate) struct ResultTail<T> {
    items: VecDeque<(T, usize)>,
    len: usize,
    cap: usize,
    dropped: u64,
    dropped_bytes: u64,
}

impl<T> ResultTail<T> {
    pub(crate) fn new(cap: usize) -> Self {
        ResultTail {
            items: VecDeque::new(),
            len: 0,
            cap,
            dropped: 0,
            dropped_bytes: 0,
        }
    }

    /// Keeps `item` of `size` bytes, dropping the oldest ones it does not leave room for.
    pub(crate) fn push(&mut self, item: T, size: usize) {
        self.items.push_back((item, size));
        self.len += size;
        while self.len > self.cap {
            let Some((_, gone)) = self.items.pop_front() else {
                break;
            };
            self.len -= gone;
            self.dropped += 1;
            self.dropped_bytes += gone as u64;
        }
    }

    /// The kept items, and how many were dropped and their bytes.
    pub(crate) fn finish(self) -> (Vec<T>, u64, u64) {
        let items = self.items.into_iter().map(|(item, _)| item).collect();
        (items, self.dropped, self.dropped_bytes)
    }
}

/// The size a MIME bundle (or any JSON value) counts for: its text, base64 data and keys, plus
/// a few bytes per other value.
pub(crate) fn json_size(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len(),
        Value::Array(items) => items.iter().map(json_size).sum::<usize>() + 8,
        Value::Object(map) => {
            map.iter()
                .map(|(k, v)| k.len() + json_size(v))
                .sum::<usize>()
                + 8
        }
        _ => 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(t: Tail) -> String {
        t.into_chunks().concat()
    }

    #[test]
    fn a_tail_keeps_the_last_bytes_and_counts_the_rest() {
        let mut t = Tail::new(10);
        for chunk in ["abcdef", "ghijkl", "mnopqr"] {
            t.push(chunk.to_string());
        }
        assert_eq!(t.dropped(), 8);
        assert_eq!(joined(t), "ijklmnopqr");

        let mut t = Tail::new(4);
        t.push("0123456789".into());
        assert_eq!((t.dropped(), joined(t)), (6, "6789".to_string()));
    }

    #[test]
    fn an_appended_tail_is_one_text_and_stays_under_one_and_a_half_caps() {
        let mut t = Tail::new(100);
        let mut all = String::new();
        for i in 0..1000 {
            let piece = format!("line {i}\n");
            all.push_str(&piece);
            t.append(&piece);
            assert!(t.len < 150 + piece.len(), "{}", t.len);
        }
        assert_eq!(t.text(), &all[all.len() - 100..]);
        assert_eq!(t.dropped(), (all.len() - 100) as u64);
    }

    #[test]
    fn a_tail_never_splits_a_character() {
        let mut t = Tail::new(5);
        t.append("ééé");
        // 6 bytes: the first é cannot be half kept.
        assert_eq!((t.text(), t.dropped()), ("éé", 2));
        let mut t = Tail::new(3);
        t.push("aéé".into());
        assert_eq!(joined(t), "é");
    }

    #[test]
    fn a_zero_cap_keeps_nothing_and_counts_everything() {
        let mut t = Tail::new(0);
        t.append("hello");
        t.push("world".into());
        assert_eq!((t.text(), t.dropped()), ("", 10));
        let mut r = ResultTail::new(0);
        r.push('a', 3);
        assert_eq!(r.finish(), (vec![], 1, 3));
    }

    #[test]
    fn results_keep_the_newest_that_fit() {
        let mut r = ResultTail::new(10);
        for (item, size) in [('a', 4), ('b', 4), ('c', 4), ('d', 11), ('e', 2)] {
            r.push(item, size);
        }
        assert_eq!(r.finish(), (vec!['e'], 4, 23));
    }

    #[test]
    fn dropped_output_says_whether_anything_went() {
        assert!(!DroppedOutput::default().any());
        let d = DroppedOutput {
            results: 1,
            ..DroppedOutput::default()
        };
        assert!(d.any());
    }
}
