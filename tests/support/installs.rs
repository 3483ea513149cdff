//! What the test rigs install for themselves under the target directory, on first use, then
//! shared by every test after it: Python venvs of their own (the E2B data-plane rig,
//! Enterprise Gateway, JupyterHub), whose pins must not leak into the local sandbox's, and npm
//! packages (Prism, configurable-http-proxy). Each install runs under a file lock, so parallel
//! tests and processes wait for one.
#![allow(dead_code)]

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one install step may take (PyPI or npm on a cold cache).
pub const INSTALL_DEADLINE: Duration = Duration::from_secs(600);

/// The Python of the venv at `venv`: made with `python3 -m venv`, then `pip install` with
/// `install`'s arguments, then each of `then` run with the venv's Python. Built again when
/// `stamp` (what the arguments stand for: pins, a requirements file's text) differs from the
/// last build's. Under a file lock beside it, so parallel tests and processes wait for one
/// build. Each step's output goes to `{venv}.log`; a step that fails or outlasts
/// [`INSTALL_DEADLINE`] fails the test, naming the log.
pub fn python_venv(venv: &Path, stamp: &str, install: &[&str], then: &[&[&str]]) -> PathBuf {
    let python = venv.join("bin/python3");
    let parent = venv.parent().expect("a venv path with a parent");
    fs::create_dir_all(parent).expect("create the venv's directory");
    let lock = File::create(venv.with_extension("lock")).expect("create the venv lock");
    lock.lock().expect("lock the venv");
    let stamp_file = venv.join(".installed");
    if fs::read_to_string(&stamp_file).ok().as_deref() == Some(stamp) {
        return python;
    }
    let _ = fs::remove_dir_all(venv);
    let log = venv.with_extension("log");
    let _ = fs::remove_file(&log);
    let mut make = Command::new("python3");
    make.args(["-m", "venv"]).arg(venv);
    let mut pip = Command::new(&python);
    pip.args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
        .args(install);
    let ok = run_logged(make, INSTALL_DEADLINE, &log)
        && run_logged(pip, INSTALL_DEADLINE, &log)
        && then.iter().all(|args| {
            let mut cmd = Command::new(&python);
            cmd.args(*args);
            run_logged(cmd, INSTALL_DEADLINE, &log)
        });
    assert!(
        ok,
        "could not build the venv {} (python3 with venv and PyPI must be reachable); see {}",
        venv.display(),
        log.display()
    );
    fs::write(&stamp_file, stamp).expect("write the venv's stamp");
    python
}

/// The `bin` executable of npm package `package` at exactly `version`, installed into `dir`
/// (its `node_modules`) unless it is there already. Install output goes to
/// `dir/npm-install.log`; a failed install fails the test, naming the log.
pub fn npm_package(dir: &Path, package: &str, version: &str, bin: &str) -> PathBuf {
    fs::create_dir_all(dir).expect("create the npm package's directory");
    let exe = dir.join("node_modules/.bin").join(bin);
    let lock = File::create(dir.join(".install.lock")).expect("create the install lock");
    lock.lock().expect("lock the npm package's directory");
    let installed = || {
        let manifest = dir.join("node_modules").join(package).join("package.json");
        let text = fs::read_to_string(manifest).ok()?;
        let json: serde_json::Value = serde_json::from_str(&text).ok()?;
        json.get("version")?.as_str().map(str::to_string)
    };
    if installed().as_deref() == Some(version) && exe.exists() {
        return exe;
    }
    let started = Instant::now();
    let log = dir.join("npm-install.log");
    let _ = fs::remove_file(&log);
    let mut cmd = Command::new("npm");
    cmd.args([
        "install",
        "--no-audit",
        "--no-fund",
        "--save-exact",
        "--prefix",
    ])
    .arg(dir)
    .arg(format!("{package}@{version}"));
    let ok = run_logged(cmd, INSTALL_DEADLINE, &log);
    let got = installed();
    assert!(
        ok && got.as_deref() == Some(version) && exe.exists(),
        "npm install of {package}@{version} failed (got {got:?}); see {}",
        log.display()
    );
    eprintln!("installed {package}@{version} in {:.1?}", started.elapsed());
    exe
}

/// Runs `cmd` with its output appended to `log`, killed past `limit`; true when it succeeded.
pub fn run_logged(mut cmd: Command, limit: Duration, log: &Path) -> bool {
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .expect("open an install log");
    let err = out.try_clone().expect("clone the log handle");
    let Ok(mut child) = cmd.stdin(Stdio::null()).stdout(out).stderr(err).spawn() else {
        return false;
    };
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(_) => return false,
        }
    }
}
