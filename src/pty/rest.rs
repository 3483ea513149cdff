//! The terminals REST API of jupyter_server (jupyter_server_terminals).

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::Error;
use crate::net::{Http, Method, encode_component, link_broke};

#[derive(Debug, Deserialize)]
struct Model {
    name: String,
}

fn path(name: &str) -> String {
    format!("/api/terminals/{}", encode_component(name))
}

/// The server has no terminals API: say so rather than a bare 404.
fn no_terminals(endpoint: String) -> Error {
    Error::Http {
        status: 404,
        endpoint,
        message: "this server has no terminals API (Kernel Gateway, or terminals disabled)".into(),
    }
}

/// Starts a terminal called `name` (chosen by the client, so that a request whose answer was
/// lost in a cut can be looked up instead of sent again: POST is not idempotent).
pub(crate) fn create(
    http: &Http,
    name: &str,
    cwd: &str,
    envs: &[(String, String)],
) -> Result<(), Error> {
    let env: Map<String, Value> = envs
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let body = json!({"name": name, "cwd": cwd, "extra_env": env});
    let resp = match http.send_once(Method::Post, "/api/terminals", Some(&body)) {
        Ok(r) => r,
        Err(e) if link_broke(&e) => {
            if exists(http, name)? {
                return Ok(());
            }
            log::debug!("POST /api/terminals: {}; sending it again", e.report());
            http.send_once(Method::Post, "/api/terminals", Some(&body))?
        }
        Err(e) => return Err(e),
    };
    if resp.status == 404 {
        return Err(no_terminals(resp.endpoint));
    }
    let model: Model = resp.error_for_status()?.json()?;
    if model.name != name {
        // A server that picks its own names: the terminal exists, under another name.
        log::warn!("asked for terminal {name}, the server made {}", model.name);
        let _ = delete(http, &model.name);
        return Err(Error::protocol(
            "the server ignored the terminal name asked for",
        ));
    }
    Ok(())
}

/// Whether a terminal exists.
pub(crate) fn exists(http: &Http, name: &str) -> Result<bool, Error> {
    let resp = http.send(Method::Get, &path(name), None)?;
    if resp.status == 404 {
        return Ok(false);
    }
    resp.error_for_status().map(|_| true)
}

/// Names of the running terminals.
pub(crate) fn list(http: &Http) -> Result<Vec<String>, Error> {
    let resp = http.send(Method::Get, "/api/terminals", None)?;
    if resp.status == 404 {
        return Err(no_terminals(resp.endpoint));
    }
    let models: Vec<Model> = resp.error_for_status()?.json()?;
    Ok(models.into_iter().map(|m| m.name).collect())
}

/// Kills a terminal (terminado: SIGHUP, SIGCONT, SIGINT, SIGTERM, then SIGKILL); `false`
/// when there was none of that name.
pub(crate) fn delete(http: &Http, name: &str) -> Result<bool, Error> {
    let resp = http.send(Method::Delete, &path(name), None)?;
    if resp.status == 404 {
        return Ok(false);
    }
    resp.error_for_status().map(|_| true)
}
