//! Finding a Python with jupyter_server and ipykernel, or building a managed venv once.
//!
//! The venv lives in the user's cache dir, keyed by the pinned versions. It is built in place
//! (a venv's console scripts name its interpreter by absolute path, so a venv cannot be moved)
//! under an exclusive file lock, and a marker file is written last: concurrent processes and
//! tests never use a half-built one nor build it twice, and one left by a crashed build has no
//! marker and is rebuilt.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{BoxError, Error};

/// Names a Python that already has jupyter_server and ipykernel; skips the managed venv.
pub const PYTHON_ENV: &str = "E2B_LOCAL_PYTHON";
/// Overrides where the managed venv is kept (default: the user's cache dir; for root,
/// `/var/cache/e2b-blocking`, which the unprivileged user an isolated sandbox then runs as can
/// read, unlike root's home).
pub const CACHE_ENV: &str = "E2B_LOCAL_CACHE";

/// Pinned versions the managed venv is built with (measured in the reference notes).
const PINS: &[&str] = &["jupyter_server==2.21.1", "ipykernel==7.4.0"];
/// Bump when the venv's layout or pins change, so an old venv is never reused. (v1 venvs were
/// built elsewhere and renamed, which left `bin/pip` and `bin/jupyter` with a dead shebang.)
const LAYOUT: &str = "v2";
const MARKER: &str = ".e2b-blocking-complete";

/// The interpreter that runs `python -m jupyter_server`.
#[derive(Debug, Clone)]
pub(crate) struct Python {
    pub(crate) exe: PathBuf,
    /// The managed venv it lives in, if the SDK built it (extra packages may go there).
    pub(crate) managed: Option<PathBuf>,
}

impl Python {
    /// The directory of the interpreter's console scripts (`pip`, `jupyter`), when it lives in
    /// a venv: the server's `PATH` starts with it, so `pip install` in a command installs
    /// where the kernel imports from, as on E2B.
    pub(crate) fn scripts_dir(&self) -> Option<PathBuf> {
        let venv = match &self.managed {
            Some(venv) => venv.clone(),
            None => self.exe.parent()?.parent()?.to_path_buf(),
        };
        venv.join("pyvenv.cfg").is_file().then(|| venv.join("bin"))
    }

    /// The venv the interpreter lives in, as `activate` would set `VIRTUAL_ENV`.
    pub(crate) fn venv_dir(&self) -> Option<PathBuf> {
        self.scripts_dir()?.parent().map(Path::to_path_buf)
    }
}

/// Resolves the interpreter: `E2B_LOCAL_PYTHON`, else the managed venv (built if missing).
pub(crate) fn resolve() -> Result<Python, Error> {
    if let Some(exe) = std::env::var_os(PYTHON_ENV).filter(|v| !v.is_empty()) {
        let exe = PathBuf::from(exe);
        return given(&exe, &format!("{PYTHON_ENV}={}", exe.display()));
    }
    let venv = cache_dir()?.join(format!("venv-{LAYOUT}-{}", tag()));
    ensure_venv(&venv)?;
    Ok(Python {
        exe: venv.join("bin").join("python"),
        managed: Some(venv),
    })
}

/// Checks an interpreter the user named (`origin` says how, for the error): it must run and
/// import jupyter_server and ipykernel.
pub(crate) fn given(exe: &Path, origin: &str) -> Result<Python, Error> {
    let missing = missing_modules(exe, &["jupyter_server", "ipykernel"])
        .map_err(|e| Error::setup(format!("{origin}: the interpreter cannot be run"), e))?;
    if !missing.is_empty() {
        return Err(Error::setup_msg(format!(
            "{origin} cannot import {}",
            missing.join(", ")
        )));
    }
    Ok(Python {
        exe: exe.to_path_buf(),
        managed: None,
    })
}

/// Host paths an isolated sandbox must show for `python` to run: its venv, and the prefixes of
/// the Python the venv was made from (which may live in a hidden home, as pyenv's do). Asked
/// of the interpreter once per process.
pub(crate) fn sandbox_paths(python: &Python) -> Result<Vec<PathBuf>, Error> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static KNOWN: Mutex<Option<HashMap<PathBuf, Vec<PathBuf>>>> = Mutex::new(None);
    let mut known = KNOWN.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(paths) = known.as_ref().and_then(|m| m.get(&python.exe)) {
        return Ok(paths.clone());
    }
    const ASK: &str =
        "import sys\nfor p in (sys.prefix, sys.base_prefix, sys.base_exec_prefix): print(p)";
    let out = Command::new(&python.exe)
        .args(["-c", ASK])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            Error::setup(
                format!("{}: the interpreter cannot be run", python.exe.display()),
                e,
            )
        })?;
    if !out.status.success() {
        return Err(Error::setup_msg(format!(
            "{} cannot report its prefix: it exited with {}",
            python.exe.display(),
            out.status
        )));
    }
    let mut paths: Vec<PathBuf> = python.venv_dir().into_iter().collect();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let p = PathBuf::from(line.trim());
        if p.is_absolute() && p != Path::new("/") && !paths.contains(&p) {
            paths.push(p);
        }
    }
    known
        .get_or_insert_with(HashMap::new)
        .insert(python.exe.clone(), paths.clone());
    Ok(paths)
}

/// Installs extra packages into the managed venv when they are not importable yet.
pub(crate) fn ensure_packages(python: &Python, packages: &[String]) -> Result<(), Error> {
    let modules: Vec<&str> = packages.iter().map(|p| import_name(p)).collect();
    let absent = missing_modules(&python.exe, &modules).map_err(|e| {
        Error::setup(
            format!("{}: the interpreter cannot be run", python.exe.display()),
            e,
        )
    })?;
    let missing: Vec<&String> = packages
        .iter()
        .zip(&modules)
        .filter(|(_, m)| absent.iter().any(|a| a == *m))
        .map(|(p, _)| p)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let Some(venv) = &python.managed else {
        return Err(Error::setup_msg(format!(
            "{} lacks {missing:?}; install them there or unset {PYTHON_ENV}",
            python.exe.display()
        )));
    };
    let cache = venv.parent().unwrap_or(venv);
    let _lock = lock(cache)?;
    log::info!("installing {missing:?} into {}", venv.display());
    let args: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
    pip_install(&python.exe, &args, cache)
}

/// `scikit-learn` imports as `sklearn` and so on; the common cases are enough here.
fn import_name(package: &str) -> &str {
    let base = package
        .split(['=', '<', '>', '[', '~', '!'])
        .next()
        .unwrap_or(package)
        .trim();
    match base {
        "scikit-learn" => "sklearn",
        "pillow" | "Pillow" => "PIL",
        "beautifulsoup4" => "bs4",
        "jupyter_kernel_gateway" | "jupyter-kernel-gateway" => "kernel_gateway",
        other => other,
    }
}

fn tag() -> String {
    PINS.join("-")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn cache_dir() -> Result<PathBuf, Error> {
    let base = match std::env::var_os(CACHE_ENV).filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        // Root's isolated sandboxes run as `nobody`, which cannot enter /root.
        None if nix::unistd::geteuid().is_root() => PathBuf::from("/var/cache/e2b-blocking"),
        None => dirs::cache_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join("e2b-blocking"),
    };
    fs::create_dir_all(&base)
        .map_err(|e| Error::setup(format!("cannot create {}", base.display()), e))?;
    // The interpreter's path is used from the server's own directory, and a venv's scripts
    // carry it: a relative `E2B_LOCAL_CACHE` would break both.
    std::path::absolute(&base)
        .map_err(|e| Error::setup(format!("cannot resolve {}", base.display()), e))
}

fn lock(dir: &Path) -> Result<File, Error> {
    let path = dir.join("venv.lock");
    let file = File::create(&path)
        .map_err(|e| Error::setup(format!("cannot open {}", path.display()), e))?;
    file.lock()
        .map_err(|e| Error::setup(format!("cannot lock {}", path.display()), e))?;
    Ok(file)
}

fn ensure_venv(venv: &Path) -> Result<(), Error> {
    if venv.join(MARKER).exists() {
        return Ok(());
    }
    let parent = venv.parent().unwrap_or(venv);
    let _lock = lock(parent)?;
    if venv.join(MARKER).exists() {
        return Ok(()); // another process built it while we waited
    }
    let base = base_python()?;
    if venv.exists() {
        // No marker: a build that crashed or was killed half-way. `venv --clear` would keep
        // whatever pip had half-installed in it, so start from nothing.
        log::warn!("removing the half-built venv {}", venv.display());
        fs::remove_dir_all(venv).map_err(|e| {
            Error::setup(
                format!("cannot remove the half-built {}", venv.display()),
                e,
            )
        })?;
    }
    log::info!(
        "building the local sandbox's Python environment in {} (once; ~20 s)",
        venv.display()
    );
    let result = (|| {
        run(
            Command::new(&base).args(["-m", "venv"]).arg(venv),
            "create a venv",
        )?;
        pip_install(&venv.join("bin").join("python"), PINS, parent)?;
        // Last, so that its presence means everything before it finished.
        fs::write(venv.join(MARKER), PINS.join("\n"))
            .map_err(|e| Error::setup("cannot write the venv marker", e))
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(venv);
    }
    result?;
    log::info!("local sandbox Python environment ready");
    Ok(())
}

/// The Python the managed venv is made from: `python3` or `python` on `PATH`. When this process
/// is root, the venv must also work for the unprivileged user isolated sandboxes then run as,
/// so a Python under root's home (pyenv's, say) is passed over for the system's.
fn base_python() -> Result<PathBuf, Error> {
    let user = super::bwrap::SandboxUser::for_this_process();
    for candidate in [
        "python3",
        "python",
        "/usr/bin/python3",
        "/usr/local/bin/python3",
    ] {
        let out = Command::new(candidate)
            // Debian ships `venv` without `ensurepip` unless python3-venv is installed.
            .args([
                "-c",
                "import sys, venv, ensurepip; assert sys.version_info >= (3, 9)\n\
                 print(sys.base_prefix)",
            ])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output();
        let Ok(out) = out else { continue };
        if !out.status.success() {
            continue;
        }
        let prefix = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if let Some(user) = user
            && !user.can_reach(&prefix)
        {
            log::debug!(
                "{candidate} lives in {}, which uid {} cannot reach: not used for the venv",
                prefix.display(),
                user.uid
            );
            continue;
        }
        return Ok(PathBuf::from(candidate));
    }
    Err(Error::setup_msg(format!(
        "no python3 (>= 3.9, with venv) on PATH: install one (Debian: apt-get install python3 \
         python3-venv) or set {PYTHON_ENV}"
    )))
}

/// The directory in the cache where pip keeps its temporary files.
const PIP_TMP: &str = "pip-tmp";

/// Runs pip under the cache's lock. Its temporary files (downloads, unpacked wheels: tens of
/// MiB) go to [`PIP_TMP`] in `cache`, emptied before and removed after: a pip that is killed
/// (a user's Ctrl-C during the first build) leaves them where the next build clears them,
/// not in the host's /tmp, where nothing would.
fn pip_install(python: &Path, packages: &[&str], cache: &Path) -> Result<(), Error> {
    log::info!("pip install {}", packages.join(" "));
    let scratch = cache.join(PIP_TMP);
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch)
        .map_err(|e| Error::setup(format!("cannot create {}", scratch.display()), e))?;
    let result = run(
        Command::new(python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "-q",
            ])
            .args(packages)
            .env("TMPDIR", &scratch),
        "pip install",
    );
    if let Err(e) = fs::remove_dir_all(&scratch) {
        log::warn!(
            "could not remove pip's temporary files in {}: {e}",
            scratch.display()
        );
    }
    result
}

/// The modules `python` cannot find, asked of one interpreter without importing them (this
/// runs at every local sandbox start; importing pandas or matplotlib alone takes a second).
/// `Err` when `python` does not run at all, which is a different fix than a missing module.
fn missing_modules(python: &Path, modules: &[&str]) -> Result<Vec<String>, BoxError> {
    const FIND: &str = "import importlib.util, sys\n\
        for m in sys.argv[1:]:\n    \
        if importlib.util.find_spec(m) is None: print(m)";
    if modules.is_empty() {
        return Ok(Vec::new());
    }
    let out = Command::new(python)
        .args(["-c", FIND])
        .args(modules)
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or_default();
        return Err(format!("it exited with {}: {last}", out.status).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

fn run(cmd: &mut Command, what: &str) -> Result<(), Error> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::setup(format!("cannot {what}"), e))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(Error::setup_msg(format!(
        "{what} failed ({}): {}",
        out.status,
        tail.join("\n")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_modules_are_found_without_importing_them() {
        let python = resolve().expect("the local sandbox's Python");
        let missing = missing_modules(&python.exe, &["json", "no_such_module_e2b", "ipykernel"])
            .expect("the interpreter runs");
        assert_eq!(missing, ["no_such_module_e2b"]);
        assert!(missing_modules(Path::new("/nonexistent/python"), &["json"]).is_err());
    }

    /// `E2B_LOCAL_PYTHON=/nonexistent` used to report that jupyter_server cannot be imported,
    /// sending the user to pip instead of to the path. (`given` is what `resolve` calls with
    /// the variable's value; setting the variable here would race the other tests.)
    #[test]
    fn an_interpreter_that_cannot_run_is_named_as_such() {
        let err = given(
            Path::new("/nonexistent/python3"),
            "E2B_LOCAL_PYTHON=/nonexistent/python3",
        )
        .expect_err("no interpreter there");
        let Error::Setup { message, .. } = &err else {
            panic!("not a setup error: {err:?}");
        };
        assert!(message.contains("cannot be run"), "{message}");
        assert!(
            message.contains("E2B_LOCAL_PYTHON=/nonexistent/python3"),
            "{message}"
        );
        assert!(!message.contains("import"), "{message}");
    }

    #[test]
    fn import_names() {
        assert_eq!(import_name("matplotlib==3.9"), "matplotlib");
        assert_eq!(import_name("scikit-learn"), "sklearn");
        assert_eq!(import_name("jupyter_kernel_gateway"), "kernel_gateway");
        assert!(tag().contains("jupyter_server"));
    }
}
