//! A managed venv whose build was killed half-way is rebuilt, not used, and the killed pip's
//! temporary files are cleared. The test runs in a process of its own because it points
//! `E2B_LOCAL_CACHE` at a directory of its own, which would race any other test in the same
//! process.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::deadline;
use crate::support::own_process::{in_own_process, this_test_again};
use e2b_blocking::Sandbox;
use e2b_blocking::local::{CACHE_ENV, PYTHON_ENV};

/// Written last by a venv build; its presence means the build finished.
const MARKER: &str = ".e2b-blocking-complete";

/// Where the SDK's pip keeps its temporary files, in the cache.
const PIP_TMP: &str = "pip-tmp";

/// Set in the child process this test starts: there the test only builds, until killed.
const BUILDER_ENV: &str = "E2B_TEST_VENV_BUILDER";

/// Removes the test's cache directory, passed or not.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Kills the builder's whole process group (pip included) if the test ends first.
struct Builder(std::process::Child);

impl Builder {
    fn kill(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

impl Drop for Builder {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The venvs in `cache` (one expected).
fn venvs(cache: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(cache)
        .map(|entries| {
            entries
                .filter_map(|e| Some(e.ok()?.path()))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

/// How many entries the venv's site-packages holds (0 before it exists).
fn installed(venv: &Path) -> usize {
    let Ok(libs) = std::fs::read_dir(venv.join("lib")) else {
        return 0;
    };
    libs.filter_map(|e| e.ok())
        .filter_map(|python| std::fs::read_dir(python.path().join("site-packages")).ok())
        .map(|entries| entries.count())
        .sum()
}

#[test]
fn a_venv_build_killed_half_way_is_detected_and_rebuilt() {
    in_own_process(|| {
        if std::env::var_os(BUILDER_ENV).is_some() {
            // The child: the first local sandbox builds the venv; the parent kills this mid-way.
            let _ = Sandbox::local();
            return;
        }
        if std::env::var_os(PYTHON_ENV).is_some_and(|v| !v.is_empty()) {
            eprintln!("NOTE: {PYTHON_ENV} is set; the managed venv is not used");
            return;
        }
        crate::support::init_logs();
        let cache = TempDir(std::env::temp_dir().join(format!(
            "e2b-venv-rebuild-{}",
            uuid::Uuid::new_v4().simple()
        )));
        std::fs::create_dir_all(&cache.0).expect("create the cache dir");
        // SAFETY: the only test of its process, set before any thread reads the environment.
        unsafe { std::env::set_var(CACHE_ENV, &cache.0) };
        let dir = cache.0.clone();
        deadline(move || {
            let mut builder = Builder(
                this_test_again()
                    .env(BUILDER_ENV, "1")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .process_group(0)
                    .spawn()
                    .expect("start the builder"),
            );
            // Half-way: the venv has its interpreter and pip, which is installing the packages
            // (a venv alone holds pip's two entries; jupyter_server and ipykernel bring dozens).
            let started = Instant::now();
            let venv = loop {
                if let Some(venv) = venvs(&dir).into_iter().next()
                    && installed(&venv) >= 10
                {
                    break venv;
                }
                if let Ok(Some(status)) = builder.0.try_wait() {
                    panic!("the builder ended ({status}) before its build was under way");
                }
                assert!(
                    started.elapsed() < Duration::from_secs(300),
                    "no packages were installed within 300 s"
                );
                std::thread::sleep(Duration::from_millis(20));
            };
            builder.kill();
            assert!(
                !venv.join(MARKER).exists(),
                "the build finished before it could be killed"
            );
            // pip's temporary files are in the cache, where the rebuild clears them.
            let scratch = dir.join(PIP_TMP);
            let pip_left = std::fs::read_dir(&scratch).map_or(0, |d| d.count());
            assert!(
                pip_left > 0,
                "the killed pip left nothing in {}",
                scratch.display()
            );
            let left = installed(&venv);
            std::fs::write(venv.join("leftover"), "from the killed build").expect("a leftover");

            let sbx = Sandbox::local().expect("a sandbox on the rebuilt venv");
            let exec = sbx.run_code("6 * 7").expect("run code");
            assert_eq!(exec.text(), Some("42"));
            assert_eq!(venvs(&dir), vec![venv.clone()]);
            assert!(venv.join(MARKER).is_file(), "no marker after the rebuild");
            assert!(
                !venv.join("leftover").exists(),
                "the half-built venv ({left} site-packages entries) was reused"
            );
            assert!(
                !scratch.exists(),
                "pip's {pip_left} temporary entries are left"
            );
        });
    });
}
