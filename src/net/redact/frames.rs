//! The write side of a websocket client, kept out of tungstenite's trace logs.
//!
//! tungstenite logs every frame it writes at trace level, payload included, and the SDK's
//! frames carry code, terminal input and env var values (API keys, often). So the SDK encodes
//! its data frames itself, and tungstenite writes only control frames (pings, pongs, close).
//! Both go through an [`Outbox`] under tungstenite, which takes every write whole into one
//! queue, so that a frame of one writer never lands inside a frame of the other, and sends the
//! queue as fast as the socket takes it.

use std::collections::VecDeque;
use std::io::{self, Read, Write};

/// Opcodes of the data frames the SDK writes (RFC 6455 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataFrame {
    Text,
    Binary,
}

/// A stream whose writes are queued whole and sent on [`Write::flush`].
#[derive(Debug)]
pub(crate) struct Outbox<S> {
    inner: S,
    queue: VecDeque<u8>,
}

impl<S> Outbox<S> {
    pub(crate) fn new(inner: S) -> Outbox<S> {
        Outbox {
            inner,
            queue: VecDeque::new(),
        }
    }

    /// Queues one unfragmented client frame: masked, as a client must (RFC 6455 §5.3).
    pub(crate) fn push(&mut self, kind: DataFrame, payload: &[u8]) {
        let opcode = match kind {
            DataFrame::Text => 0x1,
            DataFrame::Binary => 0x2,
        };
        let mut head = Vec::with_capacity(14);
        head.push(0x80 | opcode);
        let len = payload.len();
        if len < 126 {
            head.push(0x80 | len as u8);
        } else if let Ok(len) = u16::try_from(len) {
            head.push(0x80 | 126);
            head.extend_from_slice(&len.to_be_bytes());
        } else {
            head.push(0x80 | 127);
            head.extend_from_slice(&(len as u64).to_be_bytes());
        }
        let key = masking_key();
        head.extend_from_slice(&key);
        self.queue.reserve(head.len() + len);
        self.queue.extend(head);
        self.queue.extend(
            payload
                .iter()
                .zip(key.iter().cycle())
                .map(|(byte, mask)| byte ^ mask),
        );
    }

    /// Bytes queued and not yet taken by the socket.
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.queue.len()
    }
}

/// A fresh, unpredictable masking key per frame, as RFC 6455 §5.3 asks (so that a proxy's
/// cache cannot be poisoned with chosen bytes); a v4 UUID is 122 random bits from the OS.
fn masking_key() -> [u8; 4] {
    let random = uuid::Uuid::new_v4();
    let b = random.as_bytes();
    [b[0], b[1], b[2], b[3]]
}

impl<S: Read> Read for Outbox<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl<S: Write> Write for Outbox<S> {
    /// Takes everything: tungstenite then never holds part of a frame back.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.queue.extend(buf);
        Ok(buf.len())
    }

    /// Sends the queue; `WouldBlock` when the socket took only part of it.
    fn flush(&mut self) -> io::Result<()> {
        while !self.queue.is_empty() {
            let (front, _) = self.queue.as_slices();
            match self.inner.write(front) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.queue.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::protocol::{Role, WebSocket};
    use tungstenite::{Message, Utf8Bytes};

    /// A socket that takes at most `room` bytes per call, then says it would block once.
    struct Slow {
        sent: Vec<u8>,
        room: usize,
        blocked: bool,
    }

    impl Write for Slow {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.blocked = !self.blocked;
            if self.blocked {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.room);
            self.sent.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Read for Slow {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::ErrorKind::WouldBlock.into())
        }
    }

    /// What a server reads from `bytes`; what it writes back (pongs) goes nowhere.
    struct Wire(io::Cursor<Vec<u8>>);

    impl Read for Wire {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.read(buf)
        }
    }

    impl Write for Wire {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Reads every message a server would see in `bytes`.
    fn server_reads(bytes: Vec<u8>) -> Vec<Message> {
        let wire = Wire(io::Cursor::new(bytes));
        let mut ws = WebSocket::from_raw_socket(wire, Role::Server, None);
        let mut out = Vec::new();
        while let Ok(m) = ws.read() {
            out.push(m);
        }
        out
    }

    #[test]
    fn frames_of_every_length_class_read_back_as_sent() {
        let mut outbox = Outbox::new(Vec::new());
        let texts = [
            "",
            "x",
            &"a".repeat(125),
            &"b".repeat(126),
            &"c".repeat(70_000),
        ];
        for text in texts {
            outbox.push(DataFrame::Text, text.as_bytes());
        }
        outbox.push(DataFrame::Binary, &[0, 1, 2, 255]);
        outbox.flush().unwrap();
        let mut want: Vec<Message> = texts
            .iter()
            .map(|t| Message::Text(Utf8Bytes::from(t.to_string())))
            .collect();
        want.push(Message::Binary(vec![0, 1, 2, 255].into()));
        assert_eq!(server_reads(outbox.inner), want);
    }

    #[test]
    fn tungstenite_frames_and_ours_never_interleave_on_a_slow_socket() {
        let slow = Slow {
            sent: Vec::new(),
            room: 7,
            blocked: false,
        };
        let mut ws = WebSocket::from_raw_socket(Outbox::new(slow), Role::Client, None);
        for i in 0..20 {
            ws.get_mut().push(
                DataFrame::Text,
                format!("data {i} {}", "z".repeat(i * 10)).as_bytes(),
            );
            let _ = ws.write(Message::Ping(vec![i as u8].into()));
            let _ = ws.flush();
        }
        while ws.get_mut().queued() > 0 {
            let _ = ws.flush();
        }
        let seen = server_reads(std::mem::take(&mut ws.get_mut().inner.sent));
        let mut want = Vec::new();
        for i in 0..20 {
            want.push(Message::Text(Utf8Bytes::from(format!(
                "data {i} {}",
                "z".repeat(i * 10)
            ))));
            want.push(Message::Ping(vec![i as u8].into()));
        }
        assert_eq!(seen, want);
    }
}
