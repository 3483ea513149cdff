//! Exactly-once terminal output across reconnects, on top of terminado's replay.
//!
//! terminado keeps the last [`TERMINADO_CHUNKS`] chunks a terminal's PTY produced (one chunk
//! per `read()`, in a `deque(maxlen=1000)`), keeps filling it while no client is connected,
//! and sends a *new* connection `["setup", {}]` and then, when the buffer is not empty, the
//! whole buffer joined into one `stdout` message, before any live output (both happen in one
//! event-loop step, so no PTY read can come between). Every live `stdout` message is exactly
//! one chunk.
//!
//! So after a reconnect the replay `R` is a suffix of the stream that starts on a chunk
//! boundary, and the client has delivered a prefix `D` of the same stream. What was missed is
//! `R` minus its overlap with the end of `D`. This module keeps the last pieces delivered
//! (each live chunk is one piece, each replayed remainder one piece) and looks for the
//! overlap where `R` can start: at piece boundaries, and anywhere inside a replayed remainder,
//! which joins chunks whose boundaries are not known (a later replay, after the buffer
//! wrapped, can start at any of them):
//!
//! - **Exact** when `D` is held whole and `R` starts with all of it (the buffer has not
//!   wrapped: fewer than 1000 chunks so far), or when exactly one start lines up.
//! - **Lost** when no start lines up: the cut lasted more than 1000 chunks (or beyond what
//!   is held here), so output between `D` and `R` is gone; or a chunk is missing from the
//!   middle of `D` (a stock terminado can skip a client, see `terminals.py`). `R` is
//!   delivered from after the end of `D` when that is found in it once, else whole.
//! - **Ambiguous** when several starts line up (periodic output, once the buffer wrapped):
//!   the longest overlap is assumed, which may hide output that repeated.
//!
//! The alignment is by content, so a stream that wrapped the buffer and whose replay happens
//! to start with exactly the text delivered could in principle be misaligned; with fewer
//! than 1000 chunks since the terminal started it is exact.

use std::collections::VecDeque;

/// Chunks terminado's read buffer holds (`PtyWithClients.read_buffer`, terminado 0.18).
pub(crate) const TERMINADO_CHUNKS: usize = 1000;
/// Characters of delivered output kept for alignment: beyond this the oldest pieces are let
/// go, and a replay reaching back further is reported as a gap.
const MAX_CHARS: usize = 8 << 20;

/// How a replay lined up with what was delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alignment {
    /// The new part is exactly what was missed.
    Exact,
    /// No overlap found: output between the last delivered and the replay is lost.
    Lost,
    /// Several overlaps fit; the longest was used.
    Ambiguous,
}

/// Leading bytes of a replay looked for inside a replayed part, to find where in it the
/// replay could start before comparing the rest.
const PROBE: usize = 64;
/// Bytes of the last output delivered that a misaligned replay must hold exactly once to be
/// resumed after them.
const TAIL: usize = 64;

/// Output delivered in one go: a live chunk, or the new part of a replay.
#[derive(Debug)]
struct Piece {
    text: String,
    /// The new part of a replay: several chunks, joined, whose boundaries are not known.
    joined: bool,
}

/// What has been delivered, as pieces that each start on a chunk boundary.
#[derive(Debug, Default)]
pub(crate) struct Delivered {
    pieces: VecDeque<Piece>,
    chars: usize,
    /// Pieces were let go: the first held piece is not the start of the stream.
    trimmed: bool,
}

impl Delivered {
    /// Records a live chunk (delivered as it is).
    pub(crate) fn live(&mut self, chunk: &str) {
        self.push(chunk.to_string(), false);
    }

    /// Aligns a replay with what was delivered: returns the byte offset in `replay` where the
    /// new output starts, and how sure that is. Records the new part.
    pub(crate) fn replay(&mut self, replay: &str) -> (usize, Alignment) {
        let (start, alignment) = self.align(replay);
        if start < replay.len() {
            self.push(replay[start..].to_string(), true);
        }
        (start, alignment)
    }

    fn align(&self, replay: &str) -> (usize, Alignment) {
        if self.pieces.is_empty() && !self.trimmed {
            return (0, Alignment::Exact);
        }
        // The whole stream is held and the buffer has not wrapped: the replay starts with it.
        if !self.trimmed
            && let Some(len) = self.fit(replay, 0, 0)
        {
            return (len, Alignment::Exact);
        }
        let mut fits = self
            .starts(replay)
            .filter_map(|(i, at)| self.fit(replay, i, at));
        match (fits.next(), fits.next()) {
            (None, _) => (self.after_tail(replay).unwrap_or(0), Alignment::Lost),
            (Some(len), None) => (len, Alignment::Exact),
            // Starts are tried oldest first: the first fit is the longest overlap.
            (Some(len), Some(_)) => (len, Alignment::Ambiguous),
        }
    }

    /// Where in what is held the replay may start, oldest first, as (piece, byte offset): at
    /// every piece (a chunk boundary; the very first only once pieces were let go, since the
    /// whole stream is tried on its own), and inside a replayed part wherever the replay's
    /// first bytes are found, since a later replay can begin at any chunk within it.
    fn starts<'a>(&'a self, replay: &'a str) -> impl Iterator<Item = (usize, usize)> + 'a {
        self.pieces.iter().enumerate().flat_map(move |(i, piece)| {
            let edge = (i > 0 || self.trimmed).then_some((i, 0));
            let inside = piece
                .joined
                .then(|| inner_starts(&piece.text, replay))
                .into_iter()
                .flatten()
                .map(move |at| (i, at));
            edge.into_iter().chain(inside)
        })
    }

    /// Where `replay` goes on after the last output delivered, when that output is found in
    /// it exactly once: for a replay that no start fits because output is missing from the
    /// middle of what was delivered (a stock terminado can skip one client for a chunk; see
    /// `src/backend/local/terminals.py`), so that only what follows is delivered, not the
    /// whole replay again. The last pieces are taken until they hold [`TAIL`] bytes.
    fn after_tail(&self, replay: &str) -> Option<usize> {
        let mut tail = String::new();
        for piece in self.pieces.iter().rev() {
            tail.insert_str(0, &piece.text);
            if tail.len() >= TAIL {
                break;
            }
        }
        if tail.len() < TAIL {
            return None;
        }
        let mut found = replay.match_indices(tail.as_str());
        match (found.next(), found.next()) {
            (Some((at, _)), None) => Some(at + tail.len()),
            _ => None,
        }
    }

    /// `Some(byte length)` when `replay` starts with what was delivered from byte `at` of
    /// piece `i` to the end.
    fn fit(&self, replay: &str, i: usize, at: usize) -> Option<usize> {
        let mut len = 0;
        for (k, piece) in self.pieces.range(i..).enumerate() {
            let text = if k == 0 {
                piece.text.get(at..)?
            } else {
                piece.text.as_str()
            };
            let end = len + text.len();
            if replay.get(len..end)? != text {
                return None;
            }
            len = end;
        }
        Some(len)
    }

    fn push(&mut self, text: String, joined: bool) {
        self.chars += text.len();
        self.pieces.push_back(Piece { text, joined });
        // Each piece holds at least one chunk, so the last TERMINADO_CHUNKS pieces cover
        // every chunk a replay can hold.
        while self.pieces.len() > TERMINADO_CHUNKS
            || (self.chars > MAX_CHARS && self.pieces.len() > 1)
        {
            if let Some(old) = self.pieces.pop_front() {
                self.chars -= old.text.len();
                self.trimmed = true;
            }
        }
    }
}

/// The byte offsets after the first in `text` where `replay` could start: character
/// boundaries where `text` agrees with the replay's first bytes for as long as both go.
fn inner_starts<'a>(text: &'a str, replay: &'a str) -> impl Iterator<Item = usize> + 'a {
    let probe = &replay.as_bytes()[..replay.len().min(PROBE)];
    let bytes = text.as_bytes();
    (1..bytes.len()).filter(move |&at| {
        let n = probe.len().min(bytes.len() - at);
        n > 0 && text.is_char_boundary(at) && bytes[at..at + n] == probe[..n]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// terminado's side: every chunk, and the buffer a new connection gets.
    struct Term {
        chunks: Vec<String>,
    }

    impl Term {
        fn buffer(&self) -> String {
            let from = self.chunks.len().saturating_sub(TERMINADO_CHUNKS);
            self.chunks[from..].concat()
        }
    }

    fn run(total: usize, cuts: &[(usize, usize)], chunk: impl Fn(usize) -> String) -> String {
        // `cuts`: (chunk index where the cut starts, chunks missed during it).
        let term = Term {
            chunks: (0..total).map(&chunk).collect(),
        };
        let mut d = Delivered::default();
        let mut out = String::new();
        let mut i = 0;
        let mut cuts = cuts.iter().copied().peekable();
        while i < total {
            if let Some(&(at, missed)) = cuts.peek()
                && at == i
            {
                cuts.next();
                let upto = (i + missed).min(total);
                let partial = Term {
                    chunks: term.chunks[..upto].to_vec(),
                };
                let replay = partial.buffer();
                let (start, a) = d.replay(&replay);
                assert_eq!(a, Alignment::Exact, "cut at {at}");
                out.push_str(&replay[start..]);
                i = upto;
                continue;
            }
            d.live(&term.chunks[i]);
            out.push_str(&term.chunks[i]);
            i += 1;
        }
        out
    }

    #[test]
    fn short_cuts_resume_exactly() {
        let chunk = |i: usize| format!("line {i}\r\n");
        let want: String = (0..300).map(chunk).collect();
        assert_eq!(
            run(300, &[(10, 5), (50, 0), (51, 40), (200, 99)], chunk),
            want
        );
    }

    #[test]
    fn cuts_after_the_buffer_wrapped_resume_exactly() {
        let chunk = |i: usize| format!("{i},");
        let want: String = (0..5000).map(chunk).collect();
        assert_eq!(
            run(5000, &[(1500, 10), (3000, 999), (4000, 0)], chunk),
            want
        );
    }

    /// After a long cut the missed part arrives as one piece whose chunk boundaries are not
    /// known; a later replay (the buffer wrapped since) can start inside it.
    #[test]
    fn a_replay_starting_inside_an_earlier_replayed_part_resumes_exactly() {
        let chunk = |i: usize| format!("line-{i}\r\n");
        let want: String = (0..5000).map(chunk).collect();
        assert_eq!(
            run(
                5000,
                &[
                    (1200, 700),
                    (2100, 3),
                    (2150, 40),
                    (2300, 2),
                    (3100, 900),
                    (4200, 1)
                ],
                chunk
            ),
            want
        );
    }

    /// A chunk terminado never sent this client: no start fits, the gap is reported, and
    /// only what follows the last delivered output is delivered, not the whole replay again.
    #[test]
    fn a_chunk_missing_from_the_middle_is_a_gap_and_nothing_repeats() {
        let chunk = |i: usize| format!("line-{i}\r\n");
        let mut d = Delivered::default();
        d.live("$ loop\r\n");
        for i in (0..720).filter(|i| *i != 659) {
            d.live(&chunk(i));
        }
        let replay = format!("$ loop\r\n{}", (0..730).map(chunk).collect::<String>());
        let (start, a) = d.replay(&replay);
        assert_eq!(a, Alignment::Lost);
        assert_eq!(&replay[start..], (720..730).map(chunk).collect::<String>());
    }

    #[test]
    fn a_cut_longer_than_the_buffer_is_a_gap() {
        let mut d = Delivered::default();
        for i in 0..10 {
            d.live(&format!("{i},"));
        }
        let replay: String = (2000..3000).map(|i| format!("{i},")).collect();
        assert_eq!(d.replay(&replay), (0, Alignment::Lost));
    }

    #[test]
    fn periodic_output_after_wrapping_is_ambiguous() {
        let mut d = Delivered::default();
        for _ in 0..1200 {
            d.live(".");
        }
        let replay = ".".repeat(1000);
        let (start, a) = d.replay(&replay);
        assert_eq!(a, Alignment::Ambiguous);
        assert_eq!(start, 1000);
    }

    #[test]
    fn periodic_output_before_wrapping_is_exact() {
        let mut d = Delivered::default();
        for _ in 0..5 {
            d.live(".");
        }
        assert_eq!(d.replay("........"), (5, Alignment::Exact));
    }

    #[test]
    fn nothing_delivered_takes_the_whole_replay() {
        assert_eq!(Delivered::default().replay("$ "), (0, Alignment::Exact));
    }

    #[test]
    fn multibyte_text_never_splits_a_character() {
        let mut d = Delivered::default();
        d.live("héllo ");
        let (start, a) = d.replay("héllo wörld");
        assert_eq!((&"héllo wörld"[start..], a), ("wörld", Alignment::Exact));
    }
}
