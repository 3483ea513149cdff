//! The local sandbox's Python: the managed venv works as a venv (its console scripts run, and
//! commands find them first on PATH, as on E2B), and a bad interpreter is reported as such.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::{deadline, local};
use e2b_blocking::local::PYTHON_ENV;
use e2b_blocking::{Error, LocalOptions, Sandbox};

/// Written last by a venv build; its presence means the build finished.
const MARKER: &str = ".e2b-blocking-complete";

/// The venv the sandbox's kernel runs in, from the kernel's own `sys.prefix`.
fn kernel_venv(sbx: &Sandbox) -> PathBuf {
    let exec = sbx
        .run_code("import sys; sys.prefix")
        .expect("ask the kernel");
    let prefix = exec.text().expect("a prefix").trim_matches('\'');
    PathBuf::from(prefix)
}

/// True when `E2B_LOCAL_PYTHON` names the interpreter, so there is no managed venv to check.
fn python_given() -> bool {
    std::env::var_os(PYTHON_ENV).is_some_and(|v| !v.is_empty())
}

/// A venv built elsewhere and renamed kept the old path in its scripts' shebangs, so
/// `bin/pip` and `bin/jupyter` could not start.
#[test]
fn the_managed_venv_is_complete_and_its_console_scripts_run() {
    deadline(|| {
        if python_given() {
            eprintln!("NOTE: {PYTHON_ENV} is set; no managed venv to check");
            return;
        }
        let sbx = local();
        let venv = kernel_venv(&sbx);
        assert!(
            venv.join(MARKER).is_file(),
            "no marker in {}",
            venv.display()
        );
        let bin = venv.join("bin");
        for script in ["pip", "jupyter"] {
            let text = std::fs::read_to_string(bin.join(script)).expect("read the script");
            let first = text.lines().next().unwrap_or_default();
            // pip writes `#!/bin/sh` and an `exec` line instead when the path is too long.
            let interpreter = match first.strip_prefix("#!") {
                Some("/bin/sh") => text
                    .lines()
                    .find_map(|l| {
                        l.split('\'')
                            .find(|w| w.starts_with('/') && w.contains("bin"))
                    })
                    .unwrap_or_default()
                    .to_string(),
                Some(path) => path.trim().to_string(),
                None => panic!("{script} has no shebang:\n{text}"),
            };
            let interpreter = Path::new(&interpreter);
            assert_eq!(
                interpreter.parent(),
                Some(bin.as_path()),
                "{script} runs {}",
                interpreter.display()
            );
            assert!(interpreter.exists(), "{} is missing", interpreter.display());
        }
        let out = Command::new(bin.join("pip"))
            .arg("--version")
            .output()
            .expect("run bin/pip");
        assert!(out.status.success(), "bin/pip failed: {out:?}");
        let version = String::from_utf8_lossy(&out.stdout);
        assert!(
            version.contains(&venv.display().to_string()),
            "pip is not the venv's: {version}"
        );
    });
}

#[test]
fn commands_find_the_venvs_python_and_pip_first_on_path() {
    deadline(|| {
        let sbx = local();
        let bin = kernel_venv(&sbx).join("bin");
        let out = sbx
            .commands()
            .run("command -v python pip && pip --version")
            .expect("run the command");
        assert_eq!(out.exit_code, 0, "{out:?}");
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(
            lines[..2],
            [
                bin.join("python").display().to_string(),
                bin.join("pip").display().to_string()
            ],
            "{out:?}"
        );
        let venv = bin.parent().expect("a venv").display().to_string();
        assert!(lines[2].contains(&venv), "pip is not the venv's: {out:?}");
    });
}

/// Uninstalls the probe package from the venv when the test ends, passed or not.
struct Uninstall {
    pip: PathBuf,
    name: String,
}

impl Drop for Uninstall {
    fn drop(&mut self) {
        let _ = Command::new(&self.pip)
            .args(["uninstall", "-y", "-q", &self.name])
            .output();
    }
}

/// As on E2B: a package `pip install`ed by a command is importable by the code that follows,
/// in the kernel that was already running.
#[test]
fn a_package_pip_installed_by_a_command_is_importable_in_the_running_kernel() {
    deadline(|| {
        // Unisolated: inside bubblewrap the venv is read-only and PyPI out of reach, so
        // packages are added from the host side there (`LocalOptions::packages`).
        let sbx = crate::support::local_tcp();
        assert_eq!(sbx.run_code("1 + 1").expect("kernel up").text(), Some("2"));
        // A name of this run's own, so concurrent runs sharing the venv do not collide.
        let module = format!("e2b_probe_{}", uuid::Uuid::new_v4().simple());
        let project = module.replace('_', "-");
        // Not the module's name: the kernel's cwd is the sandbox root, where a directory of
        // that name would import as a namespace package with or without the install.
        let dir = format!("src-{project}");
        let files = sbx.files();
        files
            .write(
                &format!("{dir}/pyproject.toml"),
                format!(
                    "[build-system]\nrequires = [\"setuptools>=61\"]\n\
                     build-backend = \"setuptools.build_meta\"\n\n\
                     [project]\nname = \"{project}\"\nversion = \"0.0.1\"\n\n\
                     [tool.setuptools]\npy-modules = [\"{module}\"]\n"
                ),
            )
            .expect("write pyproject.toml");
        files
            .write(&format!("{dir}/{module}.py"), "VALUE = 6 * 7\n")
            .expect("write the module");
        let _uninstall = Uninstall {
            pip: kernel_venv(&sbx).join("bin").join("pip"),
            name: project.clone(),
        };
        let out = sbx
            .commands()
            .cmd(format!(
                "pip install --no-input --disable-pip-version-check -q ./{dir}"
            ))
            // Building the wheel fetches setuptools into an isolated env on first use.
            .timeout(Duration::from_secs(240))
            .run()
            .expect("run pip");
        assert_eq!(out.exit_code, 0, "pip install failed: {out:?}");
        let exec = sbx
            .run_code(format!("import {module}; {module}.VALUE"))
            .expect("run the import");
        assert!(exec.error.is_none(), "{:?}", exec.error);
        assert_eq!(exec.text(), Some("42"));
    });
}

#[test]
fn an_interpreter_that_cannot_run_is_reported_as_such() {
    deadline(|| {
        crate::support::init_logs();
        let err = Sandbox::builder()
            .local_with(LocalOptions::new().python("/nonexistent/python3"))
            .expect_err("there is no interpreter there");
        let Error::Setup { message, .. } = &err else {
            panic!("not a setup error: {err:?}");
        };
        assert!(message.contains("/nonexistent/python3"), "{message}");
        assert!(message.contains("cannot be run"), "{message}");
    });
}
