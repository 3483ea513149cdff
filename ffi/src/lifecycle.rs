//! An E2B sandbox's life cycle: connect by id (resuming), pause and resume, lifetime, the
//! control plane's record, snapshots, forks.

use std::ffi::{c_char, c_int};
use std::time::Duration;

use e2b_blocking::e2b::{E2bSandbox as E2bSide, SandboxInfo};
use serde_json::json;

use crate::args::*;
use crate::error::E2bErrorCode::{self, E2B_ERR_INVALID_ARGUMENT, E2B_OK};
use crate::error::{FfiError, guard};
use crate::options::{E2bJson, PauseJson, ResumeJson, SnapshotJson, fork_options};
use crate::registry::*;

/// `f` on the E2B side of `sandbox`; `E2B_ERR_INVALID_ARGUMENT` for another kind of sandbox.
fn with_e2b<T>(
    sandbox: E2bSandbox,
    f: impl FnOnce(E2bSide<'_>) -> Result<T, e2b_blocking::Error>,
) -> Result<T, FfiError> {
    let sbx = lookup(sandbox)?;
    let e2b = sbx.as_e2b().ok_or_else(|| {
        FfiError::new(
            E2B_ERR_INVALID_ARGUMENT,
            format!("sandbox {} is not an E2B sandbox", sbx.sandbox_id()),
        )
    })?;
    Ok(f(e2b)?)
}

/// Connects to an existing E2B sandbox by id, resuming it if it is paused, and waits until its
/// Jupyter server answers; closing the handle leaves the sandbox running unless
/// `"kill_on_close": true`.
///
/// `options_json` may be NULL or `""`, or a JSON object with the control-plane keys of
/// `e2b_sandbox_create()` (`"api_key"`, `"domain"`, `"api_url"`, `"sandbox_url"`, `"debug"`,
/// `"request_timeout_ms"`), `"envs"`, `"timeouts"`, `"binary_framing"`, `"kill_on_close"`, and:
/// - `"lifetime_ms"`: how long the sandbox lives from now at least (E2B's default 300000);
/// - `"on_resume"`: `"restore"` (default: memory and kernel state come back) or `"reboot"`
///   (cold boot from disk, for `E2B_ERR_GUEST_UNRESPONSIVE`).
///
/// The keys only creating takes (`"template"`, `"lifecycle"`, …) are
/// `E2B_ERR_INVALID_ARGUMENT`. An unknown or killed sandbox is `E2B_ERR_SANDBOX_NOT_FOUND`.
/// On success `*out` is the new handle; on failure it is 0.
///
/// # Safety
/// `sandbox_id` is a NUL-terminated string; `options_json` is NULL or one; `out` is valid for
/// one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_sandbox_e2b_connect(
    sandbox_id: *const c_char,
    options_json: *const c_char,
    out: *mut E2bSandbox,
) -> E2bErrorCode {
    // SAFETY: forwarded from the caller.
    unsafe {
        SANDBOXES.insert_into(out, "out", || {
            let id = str_arg(sandbox_id, "sandbox_id")?;
            let json = opt_str_arg(options_json, "options_json")?;
            let opts: E2bJson = crate::options::parse(json, "E2B connect options")?;
            let connect = opts.connect_options()?;
            let sandbox =
                crate::options::sandbox_builder(&opts.envs, &opts.timeouts, opts.binary_framing)
                    .e2b_connect_with(&opts.config(), id, &connect)?;
            if let (Some(kill), Some(e2b)) = (opts.kill_on_close(), sandbox.as_e2b()) {
                e2b.set_kill_on_close(kill);
            }
            Ok(sandbox)
        })
    }
}

/// Pauses an E2B sandbox. `options_json` may be NULL or `""`, or `{"mode": "full" |
/// "filesystem", "strict": true}` (`"filesystem"` keeps the files only: resuming cold-boots
/// and kernel state is lost; `"strict"` refuses with `E2B_ERR_SERVICE_BUSY`, leaving it
/// running, when its guest agent does not answer). `*out_paused` (may be NULL) is 1 when this
/// call paused it, 0 when it was paused already, which is not an error. Until
/// `e2b_sandbox_resume()`, calls on the handle fail with `E2B_ERR_SANDBOX_PAUSED` (or resume
/// it first when it was created with `"auto_resume": true`).
///
/// # Safety
/// `options_json` is NULL or a NUL-terminated string; `out_paused` is NULL or valid for one
/// write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_sandbox_pause(
    sandbox: E2bSandbox,
    options_json: *const c_char,
    out_paused: *mut c_int,
) -> E2bErrorCode {
    guard(|| {
        if !out_paused.is_null() {
            // SAFETY: non-NULL and writable, as the caller promises.
            unsafe { out_paused.write(0) };
        }
        // SAFETY: forwarded from the caller.
        let json = unsafe { opt_str_arg(options_json, "options_json")? };
        let opts: PauseJson = crate::options::parse(json, "pause options")?;
        let paused = with_e2b(sandbox, |e2b| e2b.pause(&opts.options()))?;
        if !out_paused.is_null() {
            // SAFETY: as above.
            unsafe { out_paused.write(c_int::from(paused)) };
        }
        Ok(())
    })
}

/// Resumes a paused E2B sandbox (E2B's connect) and waits until it answers again; on a running
/// one it only makes sure it lives long enough. `options_json` may be NULL or `""`, or
/// `{"lifetime_ms": …, "on_resume": "restore" | "reboot"}` as for
/// `e2b_sandbox_e2b_connect()`.
///
/// # Safety
/// `options_json` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_sandbox_resume(
    sandbox: E2bSandbox,
    options_json: *const c_char,
) -> E2bErrorCode {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let json = unsafe { opt_str_arg(options_json, "options_json")? };
        let opts: ResumeJson = crate::options::parse(json, "resume options")?;
        with_e2b(sandbox, |e2b| e2b.resume(&opts.options()))
    })
}

/// Sets how long an E2B sandbox lives from now, in milliseconds (rounded up to whole
/// seconds); it can shorten its life as well as extend it.
#[unsafe(no_mangle)]
pub extern "C" fn e2b_sandbox_set_lifetime(sandbox: E2bSandbox, lifetime_ms: u64) -> E2bErrorCode {
    guard(|| {
        with_e2b(sandbox, |e2b| {
            e2b.set_lifetime(Duration::from_millis(lifetime_ms))
        })
    })
}

/// The E2B sandbox as the control plane sees it now, as a JSON object in `*out` (free it
/// with `e2b_string_free()`): `"sandbox_id"`, `"template_id"`, `"alias"`, `"state"`
/// (`"running"`, `"paused"`), `"started_at"`, `"end_at"` (RFC 3339), `"cpu_count"`,
/// `"memory_mb"`, `"disk_size_mb"`, `"metadata"`, `"envd_version"`, `"lifecycle"`
/// (`{"on_timeout", "auto_resume"}` or null), `"pause_mode"`, `"envd_unresponsive_at_pause"`,
/// `"allow_internet_access"`, `"network"` (`{"allow_out", "deny_out", "dns_servers",
/// "allow_public_traffic", "mask_request_host", "https_ports"}` or null). No access token.
///
/// # Safety
/// `out` is valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_sandbox_info(
    sandbox: E2bSandbox,
    out: *mut *mut c_char,
) -> E2bErrorCode {
    // SAFETY: forwarded from the caller.
    unsafe {
        string_out(out, "out", || {
            let info = with_e2b(sandbox, |e2b| e2b.info())?;
            Ok(info_json(&info).to_string())
        })
    }
}

fn info_json(info: &SandboxInfo) -> serde_json::Value {
    json!({
        "sandbox_id": info.sandbox_id,
        "template_id": info.template_id,
        "alias": info.alias,
        "state": info.state.as_str(),
        "started_at": info.started_at,
        "end_at": info.end_at,
        "cpu_count": info.cpu_count,
        "memory_mb": info.memory_mb,
        "disk_size_mb": info.disk_size_mb,
        "metadata": info.metadata,
        "envd_version": info.envd_version,
        "lifecycle": info.lifecycle.as_ref().map(|l| json!({
            "on_timeout": l.on_timeout,
            "auto_resume": l.auto_resume,
        })),
        "pause_mode": info.pause_mode.map(|m| format!("{m:?}").to_lowercase()),
        "envd_unresponsive_at_pause": info.envd_unresponsive_at_pause,
        "allow_internet_access": info.allow_internet_access,
        "network": info.network.as_ref().map(|n| json!({
            "allow_out": n.allow_out,
            "deny_out": n.deny_out,
            "dns_servers": n.dns_servers,
            "allow_public_traffic": n.allow_public_traffic,
            "mask_request_host": n.mask_request_host,
            "https_ports": n.https_ports,
        })),
    })
}

/// Takes a persistent snapshot of an E2B sandbox (it keeps running); `*out` is
/// `{"snapshot_id": …, "names": […]}` (free it with `e2b_string_free()`). Create sandboxes
/// from it with `"template": <snapshot_id>` in `e2b_sandbox_create()`. `options_json` may be
/// NULL or `""`, or `{"name": …, "mode": "full" | "filesystem"}`.
///
/// # Safety
/// `options_json` is NULL or a NUL-terminated string; `out` is valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_sandbox_snapshot(
    sandbox: E2bSandbox,
    options_json: *const c_char,
    out: *mut *mut c_char,
) -> E2bErrorCode {
    // SAFETY: forwarded from the caller.
    unsafe {
        string_out(out, "out", || {
            let json = opt_str_arg(options_json, "options_json")?;
            let opts: SnapshotJson = crate::options::parse(json, "snapshot options")?;
            let snapshot = with_e2b(sandbox, |e2b| e2b.create_snapshot(&opts.options()))?;
            Ok(json!({"snapshot_id": snapshot.snapshot_id, "names": snapshot.names}).to_string())
        })
    }
}

/// Forks the running E2B sandbox `sandbox_id` into `count` new sandboxes (1 to 20) that start
/// from a checkpoint of it, kernel state included; the source keeps its id and lifetime.
/// Each fork succeeds or fails on its own: `out_sandboxes[i]` is the handle of fork `i` (0 when
/// it failed) and `out_codes[i]` its code (`E2B_OK`, or why it did not start or answer, such as
/// `E2B_ERR_RATE_LIMITED`). The handles kill their sandbox on `e2b_sandbox_destroy()`.
///
/// `options_json` takes the control-plane keys of `e2b_sandbox_create()`, `"envs"`,
/// `"timeouts"`, `"binary_framing"` and `"lifetime_ms"` (how long each fork lives). The
/// function's own code is `E2B_OK` when the forks were attempted, even if some failed; any
/// other code means none was (then every `out_sandboxes[i]` is 0 and `out_codes[i]` that code).
///
/// # Safety
/// `sandbox_id` is a NUL-terminated string; `options_json` is NULL or one; `out_sandboxes`
/// and `out_codes` are each valid for `count` writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_sandbox_fork(
    sandbox_id: *const c_char,
    options_json: *const c_char,
    count: usize,
    out_sandboxes: *mut E2bSandbox,
    out_codes: *mut E2bErrorCode,
) -> E2bErrorCode {
    let code = guard(|| {
        if out_sandboxes.is_null() {
            return Err(FfiError::null("out_sandboxes"));
        }
        if out_codes.is_null() {
            return Err(FfiError::null("out_codes"));
        }
        // SAFETY: non-NULL, each valid for `count` writes, as the caller promises.
        let (handles, codes) = unsafe {
            (
                std::slice::from_raw_parts_mut(out_sandboxes, count),
                std::slice::from_raw_parts_mut(out_codes, count),
            )
        };
        handles.fill(0);
        codes.fill(E2B_ERR_INVALID_ARGUMENT);
        let count = u32::try_from(count)
            .map_err(|_| FfiError::new(E2B_ERR_INVALID_ARGUMENT, "count is too large"))?;
        // SAFETY: forwarded from the caller.
        let (id, json) = unsafe {
            (
                str_arg(sandbox_id, "sandbox_id")?,
                opt_str_arg(options_json, "options_json")?,
            )
        };
        let opts: E2bJson = crate::options::parse(json, "E2B fork options")?;
        let fork = fork_options(&opts, count)?;
        let forks =
            crate::options::sandbox_builder(&opts.envs, &opts.timeouts, opts.binary_framing)
                .e2b_fork(&opts.config(), id, &fork)?;
        for (i, fork) in forks.into_iter().take(handles.len()).enumerate() {
            match fork {
                Ok(sandbox) => {
                    handles[i] = SANDBOXES.insert(sandbox);
                    codes[i] = E2B_OK;
                }
                Err(e) => {
                    let e = FfiError::from(e);
                    log::debug!("fork {i} of {id} failed: {}", e.message);
                    codes[i] = e.code;
                }
            }
        }
        Ok(())
    });
    // On failure no fork was attempted: say so in every slot the caller gave.
    if code != E2B_OK {
        if !out_sandboxes.is_null() {
            // SAFETY: valid for `count` writes, as the caller promises.
            unsafe { std::slice::from_raw_parts_mut(out_sandboxes, count) }.fill(0);
        }
        if !out_codes.is_null() {
            // SAFETY: as above.
            unsafe { std::slice::from_raw_parts_mut(out_codes, count) }.fill(code);
        }
    }
    code
}
