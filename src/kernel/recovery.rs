//! Exact output under connection cuts: put an execution's messages back in the kernel hook's
//! order, notice gaps, and fill them from the hook's replay record (see `kernel/hook.py`).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::jupyter::wire::{Incoming, Outgoing};

/// MIME type under which the hook publishes a replay record.
pub(crate) const REPLAY_MIME: &str = "application/x-e2b-replay+json";

/// Python that installs the hook, run silently in every Python kernel. It runs in a namespace
/// of its own so nothing it imports shows up in the user's.
pub(crate) fn install_code() -> String {
    let source = Value::String(include_str!("../kernel/hook.py").to_string());
    format!("exec({source}, {{'get_ipython': get_ipython, '__name__': '__e2b_hook_install'}})")
}

/// Prefix of replay requests' msg_ids; hook.py checks for the same string.
const REPLAY_ID_PREFIX: &str = "e2b-replay-";

/// A silent-ish request asking the hook for the messages of `parent` from `from_seq` on, at
/// most `max_bytes` of them (at least one). It queues behind `parent` in the kernel, so its
/// answer describes a finished execution.
pub(crate) fn replay_request(
    session: &str,
    parent: &str,
    from_seq: u64,
    max_bytes: usize,
) -> Outgoing {
    let parent = Value::String(parent.to_string());
    let code = format!("__import__('__e2b_hook').replay({parent}, {from_seq}, {max_bytes})");
    let mut msg = unnumbered(session, &code);
    // Not silent: a silent execution may not publish display data.
    msg.content["silent"] = Value::Bool(false);
    msg.content["store_history"] = Value::Bool(false);
    msg
}

/// An empty silent cell, sent after a reconnect while a replay request is outstanding: the
/// kernel runs it after that request, so its `idle` arriving first means the answer was lost.
pub(crate) fn probe_request(session: &str) -> Outgoing {
    unnumbered(session, "")
}

/// A silent execute request the hook neither numbers nor keeps (see hook.py): one replay or
/// probe per reconnect during a long cell would otherwise push real executions out of its ring.
fn unnumbered(session: &str, code: &str) -> Outgoing {
    let mut msg = Outgoing::execute(session, code, true);
    msg.msg_id = format!("{REPLAY_ID_PREFIX}{}", msg.msg_id);
    msg.header["msg_id"] = Value::String(msg.msg_id.clone());
    msg
}

/// Releases an execution's messages in sequence order, holding back what follows a gap.
#[derive(Debug)]
pub(crate) struct Sequencer {
    next: u64,
    held: BTreeMap<u64, Incoming>,
    numbered: bool,
    recovered: u64,
    lost: u64,
}

impl Default for Sequencer {
    fn default() -> Self {
        Sequencer {
            next: 1,
            held: BTreeMap::new(),
            numbered: false,
            recovered: 0,
            lost: 0,
        }
    }
}

impl Sequencer {
    /// The next sequence number not yet released.
    pub(crate) fn next(&self) -> u64 {
        self.next
    }

    /// True once any message carried a sequence number (the hook is active).
    pub(crate) fn numbered(&self) -> bool {
        self.numbered
    }

    /// True while messages wait behind a missing one.
    pub(crate) fn has_gap(&self) -> bool {
        !self.held.is_empty()
    }

    /// Messages filled in from a replay record.
    pub(crate) fn recovered(&self) -> u64 {
        self.recovered
    }

    /// Messages known to be missing for good.
    pub(crate) fn lost(&self) -> u64 {
        self.lost
    }

    /// Takes one live message; returns what can be released, in order. Duplicates vanish.
    pub(crate) fn offer(&mut self, m: Incoming) -> Vec<Incoming> {
        let Some(seq) = m.seq else {
            return vec![m];
        };
        self.numbered = true;
        if seq < self.next || self.held.contains_key(&seq) {
            return Vec::new();
        }
        self.held.insert(seq, m);
        self.release()
    }

    fn release(&mut self) -> Vec<Incoming> {
        let mut out = Vec::new();
        while let Some(m) = self.held.remove(&self.next) {
            out.push(m);
            self.next += 1;
        }
        out
    }

    /// Merges a replay record for `parent`. Returns what can be released now, in order.
    pub(crate) fn merge(&mut self, parent: &str, record: &Replay) -> Vec<Incoming> {
        let mut out = Vec::new();
        let Replay::Known {
            lost_below,
            upto,
            messages,
            ..
        } = record
        else {
            return out;
        };
        self.numbered = true;
        for m in messages {
            let Some(incoming) = synthesize(parent, m) else {
                continue;
            };
            let seq = incoming.seq.unwrap_or(0);
            if seq >= self.next && !self.held.contains_key(&seq) {
                self.recovered += 1;
                self.held.insert(seq, incoming);
            }
        }
        out.extend(self.release());
        // Whatever is still missing below the chunk's end cannot come back: the ring dropped it.
        let end = (*upto).max(*lost_below);
        while self.next < end {
            if !self.held.contains_key(&self.next) {
                self.lost += 1;
                self.next += 1;
            }
            out.extend(self.release());
        }
        out
    }
}

/// What the hook knows about one execution.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Replay {
    /// The request never reached the kernel: it was lost in a cut and must be sent again.
    Unknown,
    /// The kernel ran it, but its record was evicted from the ring.
    Evicted,
    /// A chunk of the record: messages from the asked-for sequence number on, up to (not
    /// including) `upto`; the first number not lost to the ring's size limit; and whether
    /// the record goes on past this chunk.
    Known {
        lost_below: u64,
        upto: u64,
        more: bool,
        messages: Vec<Value>,
    },
}

impl Replay {
    /// Reads a replay record from a display_data bundle, if it is one for `parent`.
    pub(crate) fn from_bundle(data: &Value, parent: &str) -> Option<Replay> {
        let rec = data.get(REPLAY_MIME)?;
        if rec["parent"].as_str() != Some(parent) {
            return None;
        }
        Some(match rec["state"].as_str() {
            Some("unknown") => Replay::Unknown,
            Some("known") => {
                let next = rec["next"].as_u64().unwrap_or(1);
                let upto = rec["upto"].as_u64().unwrap_or(next);
                Replay::Known {
                    lost_below: rec["lost_below"].as_u64().unwrap_or(1),
                    upto,
                    more: upto < next,
                    messages: rec["messages"].as_array().cloned().unwrap_or_default(),
                }
            }
            _ => {
                log::warn!(
                    "execution {parent}: the kernel's record of it was evicted ({} records kept)",
                    rec["records"]
                );
                Replay::Evicted
            }
        })
    }
}

fn synthesize(parent: &str, m: &Value) -> Option<Incoming> {
    Some(Incoming {
        channel: m["channel"].as_str().unwrap_or("iopub").to_string(),
        msg_id: String::new(),
        msg_type: m["msg_type"].as_str()?.to_string(),
        parent_id: parent.to_string(),
        parent_type: "execute_request".into(),
        date: m["date"].as_str().map(str::to_string),
        content: m["content"].clone(),
        seq: Some(m["seq"].as_u64()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(seq: u64) -> Incoming {
        Incoming {
            channel: "iopub".into(),
            msg_id: format!("m{seq}"),
            msg_type: "stream".into(),
            parent_id: "p".into(),
            parent_type: "execute_request".into(),
            date: None,
            content: json!({"name": "stdout", "text": format!("{seq}\n")}),
            seq: Some(seq),
        }
    }

    fn seqs(v: &[Incoming]) -> Vec<u64> {
        v.iter().map(|m| m.seq.unwrap()).collect()
    }

    #[test]
    fn holds_back_after_a_gap_and_drops_duplicates() {
        let mut s = Sequencer::default();
        assert_eq!(seqs(&s.offer(msg(1))), [1]);
        assert!(s.offer(msg(3)).is_empty());
        assert!(s.has_gap());
        assert!(s.offer(msg(1)).is_empty());
        assert_eq!(seqs(&s.offer(msg(2))), [2, 3]);
        assert!(!s.has_gap());
    }

    #[test]
    fn replay_fills_gaps_and_counts_what_is_gone() {
        let mut s = Sequencer::default();
        s.offer(msg(1));
        s.offer(msg(4));
        let rec = Replay::Known {
            lost_below: 1,
            upto: 6,
            more: false,
            messages: (2..6)
                .map(|i| {
                    json!({"seq": i, "msg_type": "stream", "channel": "iopub",
                                "content": {"name": "stdout", "text": "x"}})
                })
                .collect(),
        };
        assert_eq!(seqs(&s.merge("p", &rec)), [2, 3, 4, 5]);
        assert_eq!((s.recovered(), s.lost()), (3, 0));

        let mut s = Sequencer::default();
        s.offer(msg(1));
        s.offer(msg(5));
        let rec = Replay::Known {
            lost_below: 4,
            upto: 6,
            more: false,
            messages: vec![json!({"seq": 4, "msg_type": "stream", "content": {}})],
        };
        assert_eq!(seqs(&s.merge("p", &rec)), [4, 5]);
        assert_eq!(s.lost(), 2);
    }

    #[test]
    fn the_hook_skips_the_same_replay_prefix() {
        let hook = include_str!("../kernel/hook.py");
        assert!(hook.contains(&format!("startswith(\"{REPLAY_ID_PREFIX}\")")));
        let msg = replay_request("s", "p", 1, 1024);
        assert!(msg.msg_id.starts_with(REPLAY_ID_PREFIX));
        assert_eq!(msg.header["msg_id"], msg.msg_id.as_str());
        assert!(probe_request("s").msg_id.starts_with(REPLAY_ID_PREFIX));
    }

    #[test]
    fn record_parsing() {
        let data = json!({REPLAY_MIME: {"parent": "p", "state": "unknown"}});
        assert_eq!(Replay::from_bundle(&data, "p"), Some(Replay::Unknown));
        assert_eq!(Replay::from_bundle(&data, "q"), None);
        assert_eq!(Replay::from_bundle(&json!({}), "p"), None);
    }
}
