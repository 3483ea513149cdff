//! Connect-RPC (connectrpc.com/docs/protocol) with the JSON codec over ureq, as E2B's SDKs speak
//! it to envd: unary calls are a JSON `POST`; a server stream is a `POST` of one enveloped
//! message (`application/connect+json`) answered by enveloped messages, the last one flagged
//! end-of-stream and carrying the error, if any. HTTP/1.1 throughout.

use std::io::Read;
use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use crate::error::{Error, TimeoutPhase};
use crate::net::{Http, Response};

/// Largest single message accepted from a stream (envd sends 32 KiB data chunks).
const MAX_MESSAGE: usize = 16 << 20;
/// Flag of the envelope that ends a stream.
const END_STREAM: u8 = 0x02;
/// Flag of a compressed message (never asked for, so never accepted).
const COMPRESSED: u8 = 0x01;
/// How often envd is asked to send a keepalive on a quiet stream (E2B's SDKs ask for 50 s).
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(20);

/// A Connect error: the code (`not_found`, `invalid_argument`, …) and envd's message.
#[derive(Debug, Clone)]
pub(crate) struct RpcError {
    pub(crate) code: String,
    pub(crate) message: String,
}

/// How an RPC failed: envd answered with a Connect error, or something else went wrong (the
/// link, a proxy's answer, a deadline), already typed.
#[derive(Debug)]
pub(crate) enum Failure {
    Rpc(RpcError),
    Other(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Other(e)
    }
}

/// The user an envd call acts as: `Authorization: Basic base64("{user}:")`.
pub(crate) fn user_header(user: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:"))
    )
}

/// One call to one service method (`"process.Process/Start"`).
pub(crate) struct Call<'a> {
    pub(crate) http: &'a Http,
    pub(crate) method: &'a str,
    pub(crate) user: Option<&'a str>,
}

impl Call<'_> {
    fn path(&self) -> String {
        format!("/{}", self.method)
    }

    fn request<B>(
        &self,
        req: ureq::RequestBuilder<B>,
        content_type: &str,
    ) -> ureq::RequestBuilder<B> {
        let mut req = self
            .http
            .headed(req)
            .header("Content-Type", content_type)
            .header("Connect-Protocol-Version", "1");
        if let Some(user) = self.user {
            req = req.header("Authorization", user_header(user));
        }
        req
    }

    /// A unary call within `timeout`; the answer's JSON.
    pub(crate) fn unary(&self, body: &Value, timeout: Duration) -> Result<Value, Failure> {
        let endpoint = format!("POST {}", self.path());
        log::trace!("{endpoint}");
        let req = self
            .request(
                self.http
                    .agent()
                    .post(self.http.endpoint().url(&self.path())),
                "application/json",
            )
            .header("Connect-Timeout-Ms", timeout.as_millis().max(1).to_string())
            .config()
            .timeout_global(Some(timeout))
            .build();
        let resp = req
            .send(body.to_string())
            .map_err(|e| self.http.transport_error(&endpoint, e))?;
        let resp = self
            .http
            .read_response(resp, &endpoint, MAX_MESSAGE as u64)?;
        if resp.is_success() {
            return serde_json::from_slice(&resp.body).map_err(|e| {
                Failure::Other(Error::protocol_from(format!("{endpoint}: bad JSON"), e))
            });
        }
        Err(error_of(resp))
    }

    /// Opens a server stream: the request is sent and the answer's head read within `open`;
    /// each later read may wait `idle` (envd sends keepalives every [`KEEPALIVE`]).
    pub(crate) fn stream(
        &self,
        body: &Value,
        open: Duration,
        idle: Duration,
    ) -> Result<Stream, Failure> {
        let endpoint = format!("POST {}", self.path());
        log::debug!("{endpoint}: opening a stream");
        let payload = body.to_string().into_bytes();
        let mut envelope = Vec::with_capacity(payload.len() + 5);
        envelope.push(0);
        envelope.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        envelope.extend_from_slice(&payload);
        let req = self
            .request(
                self.http
                    .agent()
                    .post(self.http.endpoint().url(&self.path())),
                "application/connect+json",
            )
            .header("Keepalive-Ping-Interval", KEEPALIVE.as_secs().to_string())
            .config()
            .timeout_global(None)
            .timeout_connect(Some(open))
            .timeout_send_request(Some(open))
            .timeout_recv_response(Some(open))
            .timeout_per_read(Some(idle))
            .build();
        let resp = req
            .send(&envelope[..])
            .map_err(|e| self.http.transport_error(&endpoint, e))?;
        if !resp.status().is_success() {
            let resp = self
                .http
                .read_response(resp, &endpoint, MAX_MESSAGE as u64)?;
            return Err(error_of(resp));
        }
        Ok(Stream {
            reader: Box::new(resp.into_body().into_reader()),
            endpoint,
            idle,
            ended: false,
        })
    }
}

/// A Connect error body (`{"code", "message"}`), or the typed error of any other answer (a
/// proxy's 502 "sandbox not found", a 401 without a Connect body).
fn error_of(resp: Response) -> Failure {
    if let Ok(v) = serde_json::from_slice::<Value>(&resp.body)
        && let Some(code) = v.get("code").and_then(Value::as_str)
    {
        return Failure::Rpc(RpcError {
            code: code.to_string(),
            message: v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        });
    }
    Failure::Other(resp.into_error())
}

/// The messages of a server stream, read as they come.
pub(crate) struct Stream {
    reader: Box<dyn Read + Send>,
    endpoint: String,
    idle: Duration,
    ended: bool,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("endpoint", &self.endpoint)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl Stream {
    /// The next message; `Ok(None)` once the stream ended cleanly.
    pub(crate) fn next(&mut self) -> Result<Option<Value>, Failure> {
        if self.ended {
            return Ok(None);
        }
        let mut head = [0u8; 5];
        self.read_exact(&mut head)?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > MAX_MESSAGE {
            return Err(Failure::Other(Error::protocol(format!(
                "{}: a message of {len} bytes is over the limit",
                self.endpoint
            ))));
        }
        if head[0] & COMPRESSED != 0 {
            return Err(Failure::Other(Error::protocol(format!(
                "{}: a compressed message, which was not asked for",
                self.endpoint
            ))));
        }
        let mut payload = vec![0u8; len];
        self.read_exact(&mut payload)?;
        let value: Value = serde_json::from_slice(&payload).map_err(|e| {
            Failure::Other(Error::protocol_from(
                format!("{}: bad JSON", self.endpoint),
                e,
            ))
        })?;
        if head[0] & END_STREAM != 0 {
            self.ended = true;
            if let Some(err) = value.get("error") {
                return Err(Failure::Rpc(RpcError {
                    code: err["code"].as_str().unwrap_or("unknown").to_string(),
                    message: err["message"].as_str().unwrap_or_default().to_string(),
                }));
            }
            return Ok(None);
        }
        Ok(Some(value))
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), Failure> {
        let mut done = 0;
        while done < buf.len() {
            match self.reader.read(&mut buf[done..]) {
                Ok(0) => {
                    return Err(Failure::Other(Error::ConnectionLost {
                        kernel_id: self.endpoint.clone(),
                        source: Some("the stream ended without its end message".into()),
                    }));
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return Err(Failure::Other(Error::Timeout {
                        phase: TimeoutPhase::Request,
                        after: self.idle,
                    }));
                }
                Err(e) => {
                    return Err(Failure::Other(Error::ConnectionLost {
                        kernel_id: self.endpoint.clone(),
                        source: Some(Box::new(e)),
                    }));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(flags: u8, json: &str) -> Vec<u8> {
        let mut out = vec![flags];
        out.extend_from_slice(&(json.len() as u32).to_be_bytes());
        out.extend_from_slice(json.as_bytes());
        out
    }

    fn stream(bytes: Vec<u8>) -> Stream {
        Stream {
            reader: Box::new(std::io::Cursor::new(bytes)),
            endpoint: "POST /process.Process/Start".into(),
            idle: Duration::from_secs(1),
            ended: false,
        }
    }

    #[test]
    fn reads_messages_then_the_end_and_its_error() {
        let mut bytes = envelope(0, r#"{"event":{"start":{"pid":7}}}"#);
        bytes.extend(envelope(0, r#"{"event":{"data":{"stdout":"aGkK"}}}"#));
        bytes.extend(envelope(
            END_STREAM,
            r#"{"error":{"code":"not_found","message":"gone"}}"#,
        ));
        let mut s = stream(bytes);
        assert_eq!(s.next().unwrap().unwrap()["event"]["start"]["pid"], 7);
        assert!(s.next().unwrap().is_some());
        match s.next() {
            Err(Failure::Rpc(r)) => {
                assert_eq!((r.code.as_str(), r.message.as_str()), ("not_found", "gone"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(s.next(), Ok(None)));

        let mut clean = stream(envelope(END_STREAM, "{}"));
        assert!(matches!(clean.next(), Ok(None)));
    }

    #[test]
    fn a_cut_or_a_compressed_message_is_an_error() {
        let mut bytes = envelope(0, r#"{"a":1}"#);
        bytes.truncate(bytes.len() - 2);
        assert!(matches!(
            stream(bytes).next(),
            Err(Failure::Other(Error::ConnectionLost { .. }))
        ));
        assert!(matches!(
            stream(envelope(COMPRESSED, "{}")).next(),
            Err(Failure::Other(Error::Protocol { .. }))
        ));
        assert_eq!(user_header("user"), "Basic dXNlcjo=");
    }
}
