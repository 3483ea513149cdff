//! Creating, inspecting and destroying sandboxes.

use std::ffi::{c_char, c_int};

use crate::args::*;
use crate::error::E2bErrorCode::{self};
use crate::error::{guard, guard_infallible};
use crate::options::{E2bJson, JupyterJson, LocalJson};
use crate::registry::*;

/// Starts a local sandbox: a `jupyter server` child process on 127.0.0.1 with a random token.
/// Blocks until its default Python kernel is ready (seconds; the very first use on a machine
/// also builds a Python venv, about 30 s).
///
/// `options_json` may be NULL or `""` for every default, or a JSON object with any of:
/// - `"python"`: path of a Python that has jupyter_server and ipykernel (default:
///   `$E2B_LOCAL_PYTHON`, else a venv the library builds once in the user's cache dir);
/// - `"packages"`: extra PyPI packages to make importable, e.g. `["numpy"]`;
/// - `"envs"`: `{"NAME": "value"}` environment variables of every context;
/// - `"timeouts"`: `{"connect_ms", "kernel_start_ms", "request_ms", "execution_ms",
///   "sandbox_start_ms", "close_ms"}`, each a number of milliseconds; `"execution_ms": null` means
///   executions have no deadline.
///
/// Unknown keys are `E2B_ERR_INVALID_ARGUMENT`. On success `*out` is the new handle; on
/// failure it is 0. Destroy the handle with `e2b_sandbox_destroy()`: that kills the server.
///
/// # Safety
/// `options_json` is NULL or a NUL-terminated string; `out` is valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_sandbox_local(
    options_json: *const c_char,
    out: *mut E2bSandbox,
) -> E2bErrorCode {
    // SAFETY: forwarded from the caller.
    unsafe {
        SANDBOXES.insert_into(out, "out", || {
            let json = opt_str_arg(options_json, "options_json")?;
            let opts: LocalJson = crate::options::parse(json, "local sandbox options")?;
            Ok(
                crate::options::sandbox_builder(&opts.envs, &opts.timeouts, None)
                    .local_with(opts.local_options())?,
            )
        })
    }
}

/// Creates an E2B cloud sandbox from E2B's code-interpreter template and connects to its
/// Jupyter server; blocks until its default Python kernel is ready.
///
/// `options_json` may be NULL or `""` for every default, or a JSON object with any of:
/// - control plane: `"api_key"` (default `$E2B_API_KEY`), `"domain"` (`$E2B_DOMAIN`, else
///   `e2b.app`), `"api_url"`, `"sandbox_url"` (base URL of the sandbox's Jupyter server),
///   `"debug"` (E2B's local stack; `$E2B_DEBUG`), `"request_timeout_ms"` (60000);
/// - the sandbox: `"template"` (`code-interpreter-v1`), `"lifetime_ms"` (how long it lives,
///   300000), `"metadata"` and `"sandbox_envs"` (`{"NAME": "value"}` objects), `"secure"`
///   (true), `"auto_pause"`, `"allow_internet_access"`, `"allow_public_traffic"`,
///   `"kill_on_close"` (true: `e2b_sandbox_destroy()` kills the sandbox; false leaves it
///   running for a later connect);
/// - as for `e2b_sandbox_local()`: `"envs"` (environment variables of every context) and
///   `"timeouts"`;
/// - `"binary_framing"` (false): true makes kernel connections speak binary frames
///   instead of JSON, about 1.7 ms faster per round trip but exposed to a jupyter_server bug
///   that stalls the server for seconds after a reconnect (see the README).
///
/// Unknown keys are `E2B_ERR_INVALID_ARGUMENT`. A rejected API key is
/// `E2B_ERR_AUTHENTICATION`; an unknown template is `E2B_ERR_HTTP`. The API key is never
/// logged and no function returns it. On success `*out` is the new handle; on failure it is 0.
///
/// # Safety
/// `options_json` is NULL or a NUL-terminated string; `out` is valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_sandbox_create(
    options_json: *const c_char,
    out: *mut E2bSandbox,
) -> E2bErrorCode {
    // SAFETY: forwarded from the caller.
    unsafe {
        SANDBOXES.insert_into(out, "out", || {
            let json = opt_str_arg(options_json, "options_json")?;
            let opts: E2bJson = crate::options::parse(json, "E2B sandbox options")?;
            let sandbox =
                crate::options::sandbox_builder(&opts.envs, &opts.timeouts, opts.binary_framing)
                    .e2b_with(&opts.config(), &opts.options())?;
            if let (Some(kill), Some(e2b)) = (opts.kill_on_close(), sandbox.as_e2b()) {
                e2b.set_kill_on_close(kill);
            }
            Ok(sandbox)
        })
    }
}

/// Uses an existing Jupyter server (jupyter_server, Jupyter Kernel Gateway, Enterprise
/// Gateway) as a sandbox. Checks that the server answers and accepts the token, then starts
/// the sandbox's default Python kernel on it; blocks until that kernel is ready.
///
/// - `url`: the server's base URL, `http://` or `https://`, without a query or fragment
///   (e.g. `"http://127.0.0.1:8888"`); anything else is `E2B_ERR_INVALID_ARGUMENT`.
/// - `token`: the server's token, sent as `Authorization: token <token>`; NULL or `""` sends
///   none. The library keeps it to itself: it is never logged, and no function returns it.
///   A token the server rejects is `E2B_ERR_AUTHENTICATION`.
/// - `options_json`: NULL or `""` for every default, or a JSON object with the keys of
///   `e2b_sandbox_local()` that apply to a server someone else runs: `"envs"` and `"timeouts"`
///   (`"python"` and `"packages"` are `E2B_ERR_INVALID_ARGUMENT` here, as are unknown keys),
///   plus `"binary_framing"` as for `e2b_sandbox_create()`.
///
/// An unreachable server is `E2B_ERR_TRANSPORT` (or `E2B_ERR_TIMEOUT` after
/// `"timeouts": {"connect_ms"}`). On success `*out` is the new handle; on failure it is 0.
/// `e2b_sandbox_destroy()` shuts down the kernels this sandbox started and leaves the server
/// and its other kernels alone. Files work where the server has the contents API (not on
/// Kernel Gateway), with paths relative to the server's root; commands work everywhere.
///
/// # Safety
/// `url` is a NUL-terminated string; `token` and `options_json` are NULL or NUL-terminated
/// strings; `out` is valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_sandbox_connect_jupyter(
    url: *const c_char,
    token: *const c_char,
    options_json: *const c_char,
    out: *mut E2bSandbox,
) -> E2bErrorCode {
    // SAFETY: forwarded from the caller.
    unsafe {
        SANDBOXES.insert_into(out, "out", || {
            let url = str_arg(url, "url")?;
            let token = opt_str_arg(token, "token")?;
            let json = opt_str_arg(options_json, "options_json")?;
            let opts: JupyterJson = crate::options::parse(json, "Jupyter server options")?;
            Ok(
                crate::options::sandbox_builder(&opts.envs, &opts.timeouts, opts.binary_framing)
                    .jupyter(url, token.unwrap_or(""))?,
            )
        })
    }
}

/// Tears the sandbox down now, from any thread: kills the local server, or shuts down the
/// kernels this sandbox started on a Jupyter server.
/// Runs on other threads fail with `E2B_ERR_CLOSED`, and so do later calls with this handle.
/// Idempotent. The handle still needs `e2b_sandbox_destroy()` to free it.
#[unsafe(no_mangle)]
pub extern "C" fn e2b_sandbox_kill(sandbox: E2bSandbox) -> E2bErrorCode {
    guard(|| Ok(lookup(sandbox)?.kill()?))
}

/// 1 when the sandbox is running, 0 when it is not: killed (on any handle), its server
/// gone, an E2B sandbox paused or removed (see `Sandbox::is_running`). A handle that is 0,
/// destroyed or made up is 0 too. Answers within the request timeout; never an error, and
/// the last error is left as it was.
#[unsafe(no_mangle)]
pub extern "C" fn e2b_sandbox_is_running(sandbox: E2bSandbox) -> c_int {
    guard_infallible(0, || {
        lookup(sandbox).map_or(0, |sbx| c_int::from(sbx.is_running()))
    })
}

/// Tears the sandbox down (as `e2b_sandbox_kill()`) and frees the handle; calls on other
/// threads that are using it fail at once with `E2B_ERR_CLOSED`.
///
/// 0 is ignored (returns `E2B_OK`), so destroying an unset handle is safe. Destroying a handle
/// twice returns `E2B_ERR_CLOSED` the second time and does nothing else. If tearing down
/// reports an error, the handle is freed all the same and that error is returned.
#[unsafe(no_mangle)]
pub extern "C" fn e2b_sandbox_destroy(sandbox: E2bSandbox) -> E2bErrorCode {
    guard(|| {
        if sandbox == 0 {
            return Ok(());
        }
        let sbx = SANDBOXES.remove(sandbox)?;
        let result = sbx.kill();
        // The Sandbox itself is dropped here, or when the last in-flight call returns.
        drop(sbx);
        Ok(result?)
    })
}

/// The sandbox's id (`local-<pid>` for a local sandbox, the server's `host:port` for a Jupyter
/// server) in `*out`: a new string the caller
/// frees with `e2b_string_free()`. `*out` is NULL on failure.
///
/// # Safety
/// `out` is valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_sandbox_id(
    sandbox: E2bSandbox,
    out: *mut *mut c_char,
) -> E2bErrorCode {
    // SAFETY: forwarded from the caller.
    unsafe { string_out(out, "out", || Ok(lookup(sandbox)?.sandbox_id().to_string())) }
}

/// Base URL of the sandbox's Jupyter server in `*out`: a new string the caller frees with
/// `e2b_string_free()`. `*out` is NULL on failure.
///
/// # Safety
/// `out` is valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn e2b_sandbox_jupyter_url(
    sandbox: E2bSandbox,
    out: *mut *mut c_char,
) -> E2bErrorCode {
    // SAFETY: forwarded from the caller.
    unsafe {
        string_out(out, "out", || {
            Ok(lookup(sandbox)?.jupyter_url().to_string())
        })
    }
}
