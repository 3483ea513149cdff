//! An HTTP answer read whole, and what its status means as an [`Error`].

use std::io::Read;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;
use ureq::http::HeaderMap;

use crate::error::Error;

/// A response whose status the caller still has to judge.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    pub(crate) endpoint: String,
    pub(crate) headers: HeaderMap,
    /// What "sandbox not found" from the proxy means, when the server's endpoint knows.
    pub(crate) gone: Option<crate::net::GoneCheck>,
}

impl Response {
    /// Reads `resp` and at most `limit` bytes of its body. The error is the body reader's:
    /// ureq's own errors come wrapped in it.
    pub(crate) fn read(
        mut resp: ureq::http::Response<ureq::Body>,
        endpoint: String,
        limit: u64,
    ) -> std::io::Result<Response> {
        let mut body = Vec::new();
        resp.body_mut()
            .as_reader()
            .take(limit)
            .read_to_end(&mut body)?;
        let (parts, _) = resp.into_parts();
        Ok(Response {
            status: parts.status.as_u16(),
            body,
            endpoint,
            headers: parts.headers,
            gone: None,
        })
    }

    /// A header's value, trimmed, if it is there and text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    }

    /// Whether the body is an HTML page (a proxy's or login page, not an API answer).
    fn is_html(&self) -> bool {
        self.header("content-type")
            .is_some_and(|t| t.to_ascii_lowercase().contains("html"))
    }

    /// `Retry-After` in seconds, as rate limits give it.
    fn retry_after(&self) -> Option<Duration> {
        self.header("retry-after")
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_secs)
    }

    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Turns a non-2xx status into the matching error.
    pub(crate) fn error_for_status(self) -> Result<Response, Error> {
        if self.is_success() {
            return Ok(self);
        }
        Err(self.into_error())
    }

    pub(crate) fn into_error(self) -> Error {
        if let Some(sandbox_id) = self.sandbox_gone() {
            return crate::net::GoneCheck::judge(self.gone.as_ref(), &sandbox_id);
        }
        if let Some(sandbox_id) = self.proxy_sandbox_id().filter(|_| self.status == 502) {
            // E2B's proxy answered for the sandbox, but not that it is gone: the port is not
            // open, or the sandbox could not be routed to.
            return Error::SandboxUnreachable {
                sandbox_id,
                message: self.message(),
            };
        }
        let retry_after = self.retry_after();
        status_error(
            self.status,
            self.endpoint.clone(),
            self.message(),
            retry_after,
        )
    }

    /// The `error_code` of an E2B API error body, if it has one.
    pub(crate) fn error_code(&self) -> Option<String> {
        let v: Value = serde_json::from_slice(&self.body).ok()?;
        v.get("error_code")?.as_str().map(str::to_string)
    }

    /// The sandbox id when this is E2B's sandbox proxy saying the sandbox is gone (`502`
    /// `{"sandboxId": …, "message": "The sandbox was not found"}`): killed, timed out, or
    /// paused without auto-resume (the proxy cannot tell those apart; the control plane can).
    pub(crate) fn sandbox_gone(&self) -> Option<String> {
        if self.status != 502 {
            return None;
        }
        let v: Value = serde_json::from_slice(&self.body).ok()?;
        let message = v.get("message")?.as_str()?;
        if !message
            .to_ascii_lowercase()
            .contains("sandbox was not found")
        {
            return None;
        }
        Some(
            v.get("sandboxId")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        )
    }

    /// The `sandboxId` of a JSON answer E2B's sandbox proxy made itself (not one it passed on
    /// from the sandbox).
    fn proxy_sandbox_id(&self) -> Option<String> {
        let v: Value = serde_json::from_slice(&self.body).ok()?;
        v.get("sandboxId")?.as_str().map(str::to_string)
    }

    /// The server's own message: `message`/`reason` of a JSON body, or the start of the text.
    pub(crate) fn message(&self) -> String {
        if let Ok(v) = serde_json::from_slice::<Value>(&self.body) {
            for key in ["message", "reason", "detail", "error"] {
                if let Some(s) = v.get(key).and_then(Value::as_str) {
                    return shorten(s);
                }
            }
        }
        if self.is_html() {
            return format!("{} byte HTML page", self.body.len());
        }
        shorten(&String::from_utf8_lossy(&self.body))
    }

    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        if self.is_html() {
            return Err(Error::protocol(format!(
                "{} answered an HTML page where JSON was expected",
                self.endpoint
            )));
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::protocol_from(format!("bad JSON from {}", self.endpoint), e))
    }
}

/// The error for an answer of `status` from `endpoint` saying `message`: one place for the
/// statuses every server's answers share, so that an error inside a 2xx body (a fork that did
/// not start) maps as the same status would.
pub(crate) fn status_error(
    status: u16,
    endpoint: String,
    message: String,
    retry_after: Option<Duration>,
) -> Error {
    match status {
        401 | 403 => Error::Authentication { status, endpoint },
        429 => Error::RateLimited {
            retry_after,
            endpoint,
        },
        503 => Error::ServiceBusy {
            message: shorten(&message),
            endpoint,
        },
        507 => Error::NotEnoughSpace {
            message: shorten(&message),
            endpoint,
        },
        status => Error::Http {
            status,
            message: shorten(&message),
            endpoint,
        },
    }
}

fn shorten(s: &str) -> String {
    const MAX: usize = 300;
    let s = s.trim();
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, content_type: &str, body: &str) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            content_type.parse().expect("a valid header value"),
        );
        Response {
            status,
            body: body.as_bytes().to_vec(),
            endpoint: "GET /api/kernels".into(),
            headers,
            gone: None,
        }
    }

    #[test]
    fn e2b_proxy_not_found_is_sandbox_not_found() {
        let r = |status, body| answer(status, "application/json", body);
        let gone = r(
            502,
            r#"{"sandboxId":"sbx1","message":"The sandbox was not found","code":502}"#,
        );
        assert!(matches!(
            gone.into_error(),
            Error::SandboxNotFound { sandbox_id } if sandbox_id == "sbx1"
        ));
        let closed = r(
            502,
            r#"{"sandboxId":"sbx1","message":"The sandbox is running but port is not open"}"#,
        );
        assert!(matches!(
            closed.into_error(),
            Error::SandboxUnreachable { sandbox_id, message }
                if sandbox_id == "sbx1" && message.contains("port is not open")
        ));
        assert!(matches!(
            r(502, "<html>bad gateway</html>").into_error(),
            Error::Http { status: 502, .. }
        ));
        assert!(matches!(
            r(503, r#"{"code":503,"message":"no capacity"}"#).into_error(),
            Error::ServiceBusy { message, .. } if message == "no capacity"
        ));
        assert!(matches!(
            r(507, r#"{"code":507,"message":"disk full"}"#).into_error(),
            Error::NotEnoughSpace { .. }
        ));
        assert!(
            r(404, r#"{"message":"The sandbox was not found"}"#)
                .sandbox_gone()
                .is_none()
        );
    }

    #[test]
    fn html_body_is_a_protocol_error() {
        let r = answer(200, "text/html; charset=utf-8", "<html></html>");
        assert!(matches!(r.json::<Value>(), Err(Error::Protocol { .. })));
    }
}
