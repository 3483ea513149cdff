//! What one code execution produced, shaped like E2B's code-interpreter models.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Serialize;
use serde_json::Value;

use crate::error::Error;
use crate::output::DroppedOutput;

/// The outcome of running one cell.
///
/// A Python exception is not an `Err`: it is [`Execution::error`]; [`Execution::check`]
/// turns it into one.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
#[must_use = "an execution may hold an exception in `.error`; use `.check()` to turn it into an Err"]
pub struct Execution {
    /// Rich results in arrival order: `display()` calls and the cell's value (the main result);
    /// the newest that fit in the execution's cap
    /// ([`CodeBuilder::max_output`](crate::CodeBuilder::max_output)).
    pub results: Vec<RichResult>,
    /// What was printed to stdout and stderr: the last
    /// [`max_output`](crate::CodeBuilder::max_output) bytes of each.
    pub logs: Logs,
    /// The exception the cell raised, if any.
    pub error: Option<ExecutionError>,
    /// The kernel's execution counter for this cell.
    pub execution_count: Option<u32>,
    /// Whether the output is known to be complete despite connection cuts.
    pub continuity: Continuity,
    /// What the execution did not keep to stay within its cap (the callbacks saw it).
    pub dropped: DroppedOutput,
}

/// How sure the SDK is that an [`Execution`]'s output is complete.
///
/// Output known to be incomplete is never returned as an `Execution`: that is
/// [`Error::OutputLost`](crate::Error::OutputLost).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum Continuity {
    /// Every message arrived in order, checked against the kernel's numbering where available.
    #[default]
    Intact,
    /// The connection broke and messages lost in the cut were fetched again from the kernel.
    Recovered,
    /// The connection broke and the kernel has no numbering hook (not a Python kernel), so
    /// completeness cannot be checked.
    Unverified,
}

impl Execution {
    /// `Ok(self)` when the code raised nothing, else [`Error::ExecutionFailed`] with the
    /// exception.
    ///
    /// # Errors
    ///
    /// [`Error::ExecutionFailed`] when [`Execution::error`] is set.
    pub fn check(self) -> Result<Execution, Error> {
        match self.error {
            Some(e) => Err(Error::ExecutionFailed(Box::new(e))),
            None => Ok(self),
        }
    }

    /// Text of the main result (the cell's value), if the cell had one.
    pub fn text(&self) -> Option<&str> {
        self.main_result().and_then(|r| r.text.as_deref())
    }

    /// The main result, if the cell's last expression had a value.
    pub fn main_result(&self) -> Option<&RichResult> {
        self.results.iter().find(|r| r.is_main_result)
    }

    /// The whole execution as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

/// Output streams, one entry per chunk the kernel sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Logs {
    /// Chunks written to stdout.
    pub stdout: Vec<String>,
    /// Chunks written to stderr.
    pub stderr: Vec<String>,
}

/// A Python (or other kernel language) exception.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ExecutionError {
    /// Exception class name, e.g. `ZeroDivisionError`.
    pub name: String,
    /// Exception message.
    pub value: String,
    /// The formatted traceback, lines joined with `\n`, ANSI colours included as sent.
    pub traceback: String,
}

/// One chunk of stdout or stderr, as handed to streaming callbacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct OutputMessage {
    /// The text of the chunk (not split into lines).
    pub line: String,
    /// The kernel's timestamp of the chunk (ISO-8601), when it sent one.
    pub timestamp: Option<String>,
    /// True for stderr.
    pub error: bool,
}

/// A rich result: one MIME bundle from `display()` or from the cell's value (E2B calls it
/// `Result`; here that name is the usual `Result<T, Error>`).
#[doc(alias = "Result")]
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RichResult {
    /// `text/plain`.
    pub text: Option<String>,
    /// `text/html`.
    pub html: Option<String>,
    /// `text/markdown`.
    pub markdown: Option<String>,
    /// `image/svg+xml`.
    pub svg: Option<String>,
    /// `image/png`, base64 as sent; see [`RichResult::png_bytes`].
    pub png: Option<String>,
    /// `image/jpeg`, base64 as sent; see [`RichResult::jpeg_bytes`].
    pub jpeg: Option<String>,
    /// `application/pdf`, base64 as sent.
    pub pdf: Option<String>,
    /// `text/latex`.
    pub latex: Option<String>,
    /// `application/json`.
    pub json: Option<Value>,
    /// `application/javascript`.
    pub javascript: Option<String>,
    /// `e2b/data`: tabular data (a pandas DataFrame as columns) where the kernel provides it.
    pub data: Option<Value>,
    /// `e2b/chart`: structured chart data where the kernel provides it, typed as in E2B's
    /// SDK; [`Chart::raw`](crate::chart::Chart::raw) gives the value as sent.
    pub chart: Option<crate::model::chart::Chart>,
    /// True for the cell's value (`execute_result`), false for `display()` output.
    pub is_main_result: bool,
    /// Every other MIME type, keyed by MIME type.
    pub extra: BTreeMap<String, Value>,
}

/// MIME keys in the order [`RichResult::formats`] lists them, with their format names.
const FORMATS: [(&str, &str); 12] = [
    ("text/plain", "text"),
    ("text/html", "html"),
    ("text/markdown", "markdown"),
    ("image/svg+xml", "svg"),
    ("image/png", "png"),
    ("image/jpeg", "jpeg"),
    ("application/pdf", "pdf"),
    ("text/latex", "latex"),
    ("application/json", "json"),
    ("application/javascript", "javascript"),
    ("e2b/data", "data"),
    ("e2b/chart", "chart"),
];

impl RichResult {
    /// Builds a result from a Jupyter MIME bundle (`content.data`).
    pub(crate) fn from_bundle(bundle: &Value, is_main_result: bool) -> RichResult {
        let mut r = RichResult {
            is_main_result,
            ..RichResult::default()
        };
        let Some(map) = bundle.as_object() else {
            return r;
        };
        for (mime, value) in map {
            let text = || Some(text_of(value));
            match mime.as_str() {
                "text/plain" => r.text = text(),
                "text/html" => r.html = text(),
                "text/markdown" => r.markdown = text(),
                "image/svg+xml" => r.svg = text(),
                "image/png" => r.png = Some(strip_ws(&text_of(value))),
                "image/jpeg" => r.jpeg = Some(strip_ws(&text_of(value))),
                "application/pdf" => r.pdf = Some(strip_ws(&text_of(value))),
                "text/latex" => r.latex = text(),
                "application/json" => r.json = Some(value.clone()),
                "application/javascript" => r.javascript = text(),
                "e2b/data" => r.data = Some(value.clone()),
                "e2b/chart" => r.chart = Some(crate::model::chart::Chart::from_value(value)),
                other => {
                    r.extra.insert(other.to_string(), value.clone());
                }
            }
        }
        r
    }

    /// Names of the formats present: `text`, `html`, … in E2B's order, then the `extra` MIME types.
    pub fn formats(&self) -> Vec<String> {
        let present = [
            self.text.is_some(),
            self.html.is_some(),
            self.markdown.is_some(),
            self.svg.is_some(),
            self.png.is_some(),
            self.jpeg.is_some(),
            self.pdf.is_some(),
            self.latex.is_some(),
            self.json.is_some(),
            self.javascript.is_some(),
            self.data.is_some(),
            self.chart.is_some(),
        ];
        FORMATS
            .iter()
            .zip(present)
            .filter(|(_, p)| *p)
            .map(|((_, name), _)| name.to_string())
            .chain(self.extra.keys().cloned())
            .collect()
    }

    /// The PNG image decoded from base64.
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] when the data is not valid base64.
    pub fn png_bytes(&self) -> std::result::Result<Option<Vec<u8>>, Error> {
        decode(self.png.as_deref(), "image/png")
    }

    /// The JPEG image decoded from base64.
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] when the data is not valid base64.
    pub fn jpeg_bytes(&self) -> std::result::Result<Option<Vec<u8>>, Error> {
        decode(self.jpeg.as_deref(), "image/jpeg")
    }

    /// Decodes the PNG (or else the JPEG) image and writes it to `path`. Returns false when the
    /// result holds no such image.
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] when the data is not valid base64; [`Error::Io`] when `path`
    /// cannot be written.
    pub fn save_image(
        &self,
        path: impl AsRef<std::path::Path>,
    ) -> std::result::Result<bool, Error> {
        let bytes = match self.png_bytes()? {
            Some(b) => b,
            None => match self.jpeg_bytes()? {
                Some(b) => b,
                None => return Ok(false),
            },
        };
        let path = path.as_ref();
        std::fs::write(path, bytes).map_err(|e| Error::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        Ok(true)
    }

    /// The PDF decoded from base64.
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] when the data is not valid base64.
    pub fn pdf_bytes(&self) -> std::result::Result<Option<Vec<u8>>, Error> {
        decode(self.pdf.as_deref(), "application/pdf")
    }
}

/// Jupyter sends multi-line text either as a string or as a list of lines.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(Value::as_str).collect(),
        other => other.to_string(),
    }
}

fn strip_ws(s: &str) -> String {
    s.chars().filter(|c| !c.is_ascii_whitespace()).collect()
}

fn decode(b64: Option<&str>, mime: &str) -> std::result::Result<Option<Vec<u8>>, Error> {
    let Some(b64) = b64 else {
        return Ok(None);
    };
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map(Some)
        .map_err(|e| Error::protocol_from(format!("{mime} result is not valid base64"), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bundle_maps_known_and_extra_types() {
        let r = RichResult::from_bundle(
            &json!({
                "text/plain": "42",
                "text/html": ["<b>", "x</b>"],
                "image/png": "iVBO\nRw0KGgo=",
                "application/vnd.custom+json": {"a": 1},
            }),
            true,
        );
        assert_eq!(r.text.as_deref(), Some("42"));
        assert_eq!(r.html.as_deref(), Some("<b>x</b>"));
        assert_eq!(r.png.as_deref(), Some("iVBORw0KGgo="));
        assert_eq!(
            r.formats(),
            ["text", "html", "png", "application/vnd.custom+json"]
        );
        assert_eq!(
            r.png_bytes().unwrap().unwrap(),
            b"\x89PNG\r\n\x1a\n".to_vec()
        );
    }

    #[test]
    fn bad_base64_is_an_error() {
        let r = RichResult::from_bundle(&json!({"image/png": "***"}), false);
        assert!(r.png_bytes().is_err());
    }
}
