//! A managed venv whose build was cut short is rebuilt, not used. This binary holds one test
//! because it points `E2B_LOCAL_CACHE` at a directory of its own, which would race any other
//! test in the same process.

mod support;

use std::path::PathBuf;

use e2b_blocking::{CACHE_ENV, PYTHON_ENV, Sandbox};
use support::deadline;

/// Written last by a venv build; its presence means the build finished.
const MARKER: &str = ".e2b-blocking-complete";

/// Removes the test's cache directory, passed or not.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn the_venv(cache: &std::path::Path) -> PathBuf {
    let venvs: Vec<PathBuf> = std::fs::read_dir(cache)
        .expect("read the cache dir")
        .map(|e| e.expect("a cache entry").path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(venvs.len(), 1, "one venv expected: {venvs:?}");
    venvs.into_iter().next().expect("one venv")
}

#[test]
fn a_half_built_venv_is_detected_and_rebuilt() {
    if std::env::var_os(PYTHON_ENV).is_some_and(|v| !v.is_empty()) {
        eprintln!("NOTE: {PYTHON_ENV} is set; the managed venv is not used");
        return;
    }
    support::init_logs();
    let cache = TempDir(std::env::temp_dir().join(format!(
        "e2b-venv-rebuild-{}",
        uuid::Uuid::new_v4().simple()
    )));
    // SAFETY: the only test of this binary, set before any thread reads the environment.
    unsafe { std::env::set_var(CACHE_ENV, &cache.0) };
    let dir = cache.0.clone();
    deadline(move || {
        let sbx = Sandbox::local().expect("the first build");
        drop(sbx);
        let venv = the_venv(&dir);
        // What a build killed half-way leaves: no marker, a broken interpreter, leftovers.
        std::fs::remove_file(venv.join(MARKER)).expect("remove the marker");
        std::fs::remove_file(venv.join("bin").join("python")).expect("break the interpreter");
        std::fs::write(venv.join("leftover"), "from the crashed build").expect("a leftover");

        let sbx = Sandbox::local().expect("a sandbox on the rebuilt venv");
        let exec = sbx.run_code("6 * 7").expect("run code");
        assert_eq!(exec.text(), Some("42"));
        assert_eq!(the_venv(&dir), venv);
        assert!(venv.join(MARKER).is_file(), "no marker after the rebuild");
        assert!(
            !venv.join("leftover").exists(),
            "the half-built venv was reused"
        );
    });
}
