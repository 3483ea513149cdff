//! Kernel management over the Jupyter REST API.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::Error;
use crate::http::{Http, Method, encode_component};

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

pub(crate) fn start_kernel(
    http: &Http,
    name: &str,
    env: &[(String, String)],
) -> Result<KernelModel, Error> {
    // `path: ""` makes jupyter_server start the kernel in its root_dir. Without it the kernel
    // inherits the server process's cwd, which differs from the root on E2B's template (`/`
    // vs `/home/user`) and on any server started from another directory, so relative paths
    // in code and commands would not match those of the contents API.
    let mut body = json!({ "name": name, "path": "" });
    if !env.is_empty() {
        let env: serde_json::Map<String, Value> = env
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        body["env"] = Value::Object(env);
    }
    let kernel: KernelModel = http.json(Method::Post, "/api/kernels", Some(&body))?;
    log::debug!("started kernel {} ({})", kernel.id, kernel.name);
    Ok(kernel)
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

pub(crate) fn shutdown_kernel(http: &Http, id: &str) -> Result<(), Error> {
    log::debug!("shutting down kernel {id}");
    kernel_call(http, Method::Delete, id, "")
}

pub(crate) fn kernel_specs(http: &Http) -> Result<KernelSpecs, Error> {
    http.json(Method::Get, "/api/kernelspecs", None)
}
