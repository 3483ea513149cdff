//! Jupyter messages on the kernel websocket: the legacy JSON framing and the
//! `v1.kernel.websocket.jupyter.org` binary framing, in both directions.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::Error;

/// The subprotocol offered to servers; when it is not echoed, legacy JSON framing is used.
pub(crate) const V1_SUBPROTOCOL: &str = "v1.kernel.websocket.jupyter.org";

/// Version of the messaging protocol the client speaks.
const PROTOCOL_VERSION: &str = "5.3";

/// How frames are encoded on one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Legacy,
    V1,
}

/// A message received from the kernel, with the parts the client routes on pulled out.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Incoming {
    pub(crate) channel: String,
    pub(crate) msg_id: String,
    pub(crate) msg_type: String,
    pub(crate) parent_id: String,
    pub(crate) parent_type: String,
    pub(crate) date: Option<String>,
    pub(crate) content: Value,
    /// The kernel hook's sequence number within the parent request, when the hook is installed.
    pub(crate) seq: Option<u64>,
}

#[derive(Deserialize, Default)]
struct Header {
    #[serde(default)]
    msg_id: String,
    #[serde(default)]
    msg_type: String,
    #[serde(default)]
    date: Option<String>,
}

/// The only metadata the client reads: the hook's sequence number.
#[derive(Deserialize, Default)]
struct Metadata {
    #[serde(default)]
    e2b_seq: Option<u64>,
}

#[derive(Deserialize)]
struct LegacyMessage {
    header: Header,
    #[serde(default)]
    parent_header: Option<Header>,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    content: Value,
    #[serde(default)]
    channel: Option<String>,
}

impl Incoming {
    fn from_parts(
        channel: String,
        header: Header,
        parent: Option<Header>,
        metadata: Option<Metadata>,
        content: Value,
    ) -> Self {
        let parent = parent.unwrap_or_default();
        Incoming {
            channel,
            msg_id: header.msg_id,
            msg_type: header.msg_type,
            parent_id: parent.msg_id,
            parent_type: parent.msg_type,
            date: header.date,
            content,
            seq: metadata.and_then(|m| m.e2b_seq),
        }
    }
}

/// Decodes a text frame (legacy JSON framing).
pub(crate) fn decode_text(text: &str) -> Result<Incoming, Error> {
    let m: LegacyMessage = serde_json::from_str(text)
        .map_err(|e| Error::protocol_from("malformed JSON message from the kernel", e))?;
    let channel = m.channel.unwrap_or_else(|| "iopub".to_string());
    Ok(Incoming::from_parts(
        channel,
        m.header,
        m.parent_header,
        m.metadata,
        m.content,
    ))
}

/// Decodes a binary frame: v1 framing when negotiated, else the legacy binary layout that
/// jupyter_server uses for messages with buffers.
pub(crate) fn decode_binary(frame: &[u8], framing: Framing) -> Result<Incoming, Error> {
    match framing {
        Framing::V1 => decode_v1(frame),
        Framing::Legacy => decode_legacy_binary(frame),
    }
}

fn decode_v1(frame: &[u8]) -> Result<Incoming, Error> {
    let bad = |what: &str| Error::protocol(format!("malformed v1 frame: {what}"));
    let count = read_u64(frame, 0).ok_or_else(|| bad("too short"))?;
    // channel + header + parent + metadata + content need 6 offsets.
    if !(6..=4096).contains(&count) {
        return Err(bad("offset count out of range"));
    }
    let count = count as usize;
    let mut offsets = Vec::with_capacity(count);
    for i in 0..count {
        let o = read_u64(frame, 8 * (1 + i)).ok_or_else(|| bad("truncated offsets"))?;
        let o = usize::try_from(o).map_err(|_| bad("offset overflow"))?;
        offsets.push(o);
    }
    if offsets[0] != 8 * (1 + count)
        || offsets.windows(2).any(|w| w[0] > w[1])
        || offsets[count - 1] > frame.len()
    {
        return Err(bad("offsets out of order or past the end"));
    }
    let part = |i: usize| &frame[offsets[i]..offsets[i + 1]];
    let channel = std::str::from_utf8(part(0))
        .map_err(|_| bad("channel is not UTF-8"))?
        .to_string();
    let header: Header = parse_part(part(1), "header")?;
    let parent: Option<Header> = parse_part(part(2), "parent_header")?;
    // Metadata the client cannot read is not worth failing the message for.
    let metadata: Option<Metadata> = serde_json::from_slice(part(3)).ok();
    let content: Value = parse_part(part(4), "content")?;
    Ok(Incoming::from_parts(
        channel, header, parent, metadata, content,
    ))
}

fn decode_legacy_binary(frame: &[u8]) -> Result<Incoming, Error> {
    let bad = |what: &str| Error::protocol(format!("malformed binary frame: {what}"));
    let nbufs = read_u32_be(frame, 0).ok_or_else(|| bad("too short"))? as usize;
    if nbufs == 0 || nbufs > 4096 {
        return Err(bad("buffer count out of range"));
    }
    let start = read_u32_be(frame, 4).ok_or_else(|| bad("truncated offsets"))? as usize;
    let end = if nbufs > 1 {
        read_u32_be(frame, 8).ok_or_else(|| bad("truncated offsets"))? as usize
    } else {
        frame.len()
    };
    if start < 4 * (1 + nbufs) || start > end || end > frame.len() {
        return Err(bad("offsets out of range"));
    }
    let text = std::str::from_utf8(&frame[start..end]).map_err(|_| bad("JSON is not UTF-8"))?;
    decode_text(text)
}

fn parse_part<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T, Error> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::protocol_from(format!("malformed {what} in v1 frame"), e))
}

fn read_u64(b: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; 8] = b.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

fn read_u32_be(b: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

/// A message to send: everything but the framing.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub(crate) channel: &'static str,
    pub(crate) msg_id: String,
    pub(crate) header: Value,
    pub(crate) content: Value,
    /// The message's metadata: `{}` unless a request carries something for the kernel's hook.
    pub(crate) metadata: Value,
}

impl Outgoing {
    /// A request on `channel` in the client's `session`.
    pub(crate) fn request(
        channel: &'static str,
        msg_type: &str,
        session: &str,
        content: Value,
    ) -> Outgoing {
        let msg_id = uuid::Uuid::new_v4().simple().to_string();
        let header = json!({
            "msg_id": msg_id,
            "msg_type": msg_type,
            "session": session,
            "username": "e2b-blocking",
            "date": now_iso8601(),
            "version": PROTOCOL_VERSION,
        });
        Outgoing {
            channel,
            msg_id,
            header,
            content,
            metadata: json!({}),
        }
    }

    /// The same request under a new msg_id. A kernel drops a message whose signature it has
    /// seen before, and an identical header signs identically: only a renewed request can run
    /// again.
    pub(crate) fn renewed(&self) -> Outgoing {
        let msg_type = self.header["msg_type"]
            .as_str()
            .unwrap_or("execute_request");
        let session = self.header["session"].as_str().unwrap_or_default();
        let mut renewed = Outgoing::request(self.channel, msg_type, session, self.content.clone());
        renewed.metadata = self.metadata.clone();
        renewed
    }

    /// The same request with `value` under `key` in its metadata.
    pub(crate) fn with_metadata(mut self, key: &str, value: Value) -> Outgoing {
        if let Value::Object(map) = &mut self.metadata {
            map.insert(key.to_string(), value);
        }
        self
    }

    /// An `execute_request` on the shell channel.
    pub(crate) fn execute(session: &str, code: &str, silent: bool) -> Outgoing {
        let content = json!({
            "code": code,
            "silent": silent,
            "store_history": !silent,
            "user_expressions": {},
            "allow_stdin": false,
            // Each request stands alone. With `true`, an error makes ipykernel abort
            // execute requests until a "stop aborting" marker passes through its shell
            // channel thread, and a request sent right after the error reply can lose that
            // race: a user's next cell, a command, or the replay request that recovers the
            // failed cell's own output would come back `aborted`.
            "stop_on_error": false,
        });
        Outgoing::request("shell", "execute_request", session, content)
    }

    pub(crate) fn encode_text(&self) -> String {
        json!({
            "header": self.header,
            "parent_header": {},
            "metadata": self.metadata,
            "content": self.content,
            "channel": self.channel,
        })
        .to_string()
    }

    pub(crate) fn encode_v1(&self) -> Vec<u8> {
        let parts: [Vec<u8>; 5] = [
            self.channel.as_bytes().to_vec(),
            self.header.to_string().into_bytes(),
            b"{}".to_vec(),
            self.metadata.to_string().into_bytes(),
            self.content.to_string().into_bytes(),
        ];
        let count = parts.len() + 1;
        let mut offsets = Vec::with_capacity(count);
        let mut at = 8 * (1 + count);
        for p in &parts {
            offsets.push(at as u64);
            at += p.len();
        }
        offsets.push(at as u64);
        let mut out = Vec::with_capacity(at);
        out.extend_from_slice(&(count as u64).to_le_bytes());
        for o in offsets {
            out.extend_from_slice(&o.to_le_bytes());
        }
        for p in parts {
            out.extend_from_slice(&p);
        }
        out
    }
}

/// The current UTC time as ISO-8601 with microseconds, the form Jupyter headers use.
pub(crate) fn now_iso8601() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_micros()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_round_trip() {
        let out = Outgoing::execute("sess", "print(1)", false);
        let frame = out.encode_v1();
        let back = decode_v1(&frame).unwrap();
        assert_eq!(back.channel, "shell");
        assert_eq!(back.msg_id, out.msg_id);
        assert_eq!(back.msg_type, "execute_request");
        assert_eq!(back.content["code"], "print(1)");
        assert_eq!(back.parent_id, "");
    }

    #[test]
    fn v1_matches_observed_layout() {
        // offsets from a real execute_reply frame: count 6, first offset 56
        let frame = Outgoing::execute("s", "1", false).encode_v1();
        assert_eq!(read_u64(&frame, 0), Some(6));
        assert_eq!(read_u64(&frame, 8), Some(56));
        assert_eq!(&frame[56..61], b"shell");
    }

    #[test]
    fn legacy_text_decodes() {
        let t = r#"{"header":{"msg_id":"a","msg_type":"stream","date":"2026-01-01T00:00:00Z"},
            "msg_id":"a","msg_type":"stream","parent_header":{"msg_id":"p","msg_type":"execute_request"},
            "metadata":{},"content":{"name":"stdout","text":"x\n"},"buffers":[],"channel":"iopub"}"#;
        let m = decode_text(t).unwrap();
        assert_eq!(
            (m.msg_id.as_str(), m.parent_id.as_str(), m.channel.as_str()),
            ("a", "p", "iopub")
        );
        assert_eq!(m.content["text"], "x\n");
    }

    #[test]
    fn garbage_is_a_protocol_error_not_a_panic() {
        for frame in [
            &b""[..],
            &[1, 2, 3],
            &[255; 64],
            &6u64.to_le_bytes(),
            &[6, 0, 0, 0, 0, 0, 0, 0, 56, 0, 0, 0, 0, 0, 0, 0],
        ] {
            assert!(matches!(
                decode_binary(frame, Framing::V1),
                Err(Error::Protocol { .. })
            ));
            assert!(matches!(
                decode_binary(frame, Framing::Legacy),
                Err(Error::Protocol { .. })
            ));
        }
        assert!(decode_text("{not json").is_err());
        assert!(decode_text("[]").is_err());
        // a truncated real frame
        let mut f = Outgoing::execute("s", "1", false).encode_v1();
        f.truncate(f.len() - 3);
        assert!(decode_binary(&f, Framing::V1).is_err());
    }

    #[test]
    fn date_is_iso() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_415), (2025, 11, 23));
        let s = now_iso8601();
        assert_eq!(s.len(), 27, "{s}");
        assert!(s.ends_with('Z'));
    }
}
