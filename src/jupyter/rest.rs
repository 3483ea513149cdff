//! Kernel management over the Jupyter REST API.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::Error;
use crate::net::{Http, Method, encode_component, link_broke};

/// A kernel as the server describes it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct KernelModel {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) name: String,
}

/// The kernelspecs a server offers.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct KernelSpecs {
    #[serde(default)]
    pub(crate) default: String,
    #[serde(default)]
    pub(crate) kernelspecs: std::collections::BTreeMap<String, KernelSpecEntry>,
}

/// One kernelspec.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct KernelSpecEntry {
    #[serde(default)]
    pub(crate) spec: KernelSpecBody,
}

/// The part of a kernelspec used to map language names.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct KernelSpecBody {
    #[serde(default)]
    pub(crate) language: String,
}

/// The server's `execution_state` of a kernel (`"idle"`, `"busy"`, ...), when it reports one.
pub(crate) fn kernel_execution_state(http: &Http, id: &str) -> Option<String> {
    let response = match http.send_once(Method::Get, &kernel_path(id, ""), None) {
        Ok(r) if r.is_success() => r,
        Ok(r) => {
            log::debug!("GET kernel {id}: status {}", r.status);
            return None;
        }
        Err(e) => {
            log::debug!("GET kernel {id}: {e}");
            return None;
        }
    };
    let model: serde_json::Value = response.json().ok()?;
    model["execution_state"].as_str().map(str::to_string)
}

fn kernel_path(id: &str, rest: &str) -> String {
    format!("/api/kernels/{}{rest}", encode_component(id))
}

/// Maps a 404 on a kernel URL to `KernelNotFound`; everything else as usual.
fn kernel_call(http: &Http, method: Method, id: &str, rest: &str) -> Result<(), Error> {
    let resp = http.send(method, &kernel_path(id, rest), None)?;
    if resp.status == 404 {
        return Err(Error::KernelNotFound {
            kernel_id: id.to_string(),
        });
    }
    resp.error_for_status().map(drop)
}

/// How long a kernel whose start request may have arrived is looked for before the request is
/// sent again. A server lists a kernel once its process is launched, well within this.
const FIND_WINDOW: Duration = Duration::from_secs(10);

/// Starts a kernel with an id chosen here, so that a start whose answer was lost in a cut can
/// be found again instead of started twice (jupyter_server takes `kernel_id` in the body and
/// starts nothing for an id it already has). A server that ignores the id answers with its
/// own; there a lost answer can leave one kernel behind.
pub(crate) fn start_kernel(
    http: &Http,
    name: &str,
    env: &[(String, String)],
) -> Result<KernelModel, Error> {
    let id = uuid::Uuid::new_v4().to_string();
    // `path: ""` makes jupyter_server start the kernel in its root_dir. Without it the kernel
    // inherits the server process's cwd, which differs from the root on E2B's template (`/`
    // vs `/home/user`) and on any server started from another directory, so relative paths
    // in code and commands would not match those of the contents API.
    let mut body = json!({ "name": name, "kernel_id": id, "path": "" });
    if !env.is_empty() {
        let env: serde_json::Map<String, Value> = env
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        body["env"] = Value::Object(env);
    }
    let started = Instant::now();
    let kernel: KernelModel = loop {
        let e = match http.json(Method::Post, "/api/kernels", Some(&body)) {
            Err(e) if link_broke(&e) => e,
            other => break other?,
        };
        log::debug!("starting kernel {id}: {}; looking for it", e.report());
        let until = Instant::now() + FIND_WINDOW.min(http.request_timeout());
        if let Some(kernel) = find_started(http, &id, until)? {
            break kernel;
        }
        if started.elapsed() >= http.request_timeout() {
            return Err(e);
        }
    };
    log::debug!("started kernel {} ({})", kernel.id, kernel.name);
    Ok(kernel)
}

/// Waits until `until` for kernel `id` to show up after a start request whose answer was lost:
/// the server lists a kernel once its process runs, which is also when it would have
/// answered. `None` when it never shows up (the request did not arrive: start it again).
fn find_started(http: &Http, id: &str, until: Instant) -> Result<Option<KernelModel>, Error> {
    loop {
        let resp = http.send(Method::Get, &kernel_path(id, ""), None)?;
        // jupyter_server answers 500 for a kernel whose start is under way.
        if resp.status != 404 && resp.status < 500 {
            return resp.error_for_status()?.json().map(Some);
        }
        if Instant::now() >= until {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn interrupt_kernel(http: &Http, id: &str) -> Result<(), Error> {
    log::debug!("interrupting kernel {id}");
    kernel_call(http, Method::Post, id, "/interrupt")
}

pub(crate) fn restart_kernel(http: &Http, id: &str) -> Result<(), Error> {
    log::debug!("restarting kernel {id}");
    // jupyter_server answers 500, not 404, for a missing kernel here; check first.
    kernel_call(http, Method::Get, id, "")?;
    kernel_call(http, Method::Post, id, "/restart")
}

/// A kernel that is not there (any more) counts as shut down: a DELETE retried after a cut
/// finds the kernel its first copy removed.
pub(crate) fn shutdown_kernel(http: &Http, id: &str) -> Result<(), Error> {
    log::debug!("shutting down kernel {id}");
    match kernel_call(http, Method::Delete, id, "") {
        Err(Error::KernelNotFound { .. }) => Ok(()),
        other => other,
    }
}

pub(crate) fn kernel_specs(http: &Http) -> Result<KernelSpecs, Error> {
    http.json(Method::Get, "/api/kernelspecs", None)
}
