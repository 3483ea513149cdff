//! `include/e2b_blocking.h` is generated from this crate's `src/` by cbindgen; this test regenerates it
//! and fails when the checked-in copy differs. `E2B_UPDATE_HEADER=1` rewrites it instead.

use std::path::Path;

const HOW_TO_FIX: &str =
    "regenerate it with: E2B_UPDATE_HEADER=1 cargo test -p e2b-blocking-ffi --test header";

fn generate() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(root.join("src/lib.rs"))
        .generate()
        .expect("cbindgen parses src/");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("the header is UTF-8")
}

#[test]
fn header_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/e2b_blocking.h");
    let fresh = generate();
    if std::env::var_os("E2B_UPDATE_HEADER").is_some() {
        std::fs::create_dir_all(path.parent().expect("include/")).expect("mkdir include");
        std::fs::write(&path, &fresh).expect("write the header");
        eprintln!("wrote {}", path.display());
        return;
    }
    let current = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}; {HOW_TO_FIX}", path.display()));
    if current != fresh {
        let first = current
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| current.lines().count().min(fresh.lines().count()));
        panic!(
            "{} is out of date with src/ (first difference at line {}); {HOW_TO_FIX}",
            path.display(),
            first + 1
        );
    }
}

#[test]
fn header_declares_every_exported_function() {
    let header = generate();
    for f in [
        "e2b_version",
        "e2b_error_code_name",
        "e2b_last_error_code",
        "e2b_last_error_message",
        "e2b_last_error_message_copy",
        "e2b_string_free",
        "e2b_sandbox_local",
        "e2b_sandbox_create",
        "e2b_sandbox_connect_jupyter",
        "e2b_sandbox_kill",
        "e2b_sandbox_destroy",
        "e2b_sandbox_id",
        "e2b_sandbox_jupyter_url",
        "e2b_sandbox_e2b_connect",
        "e2b_sandbox_pause",
        "e2b_sandbox_resume",
        "e2b_sandbox_set_lifetime",
        "e2b_sandbox_info",
        "e2b_sandbox_snapshot",
        "e2b_sandbox_fork",
        "e2b_run_code",
        "e2b_run",
        "e2b_files_read",
        "e2b_bytes_free",
        "e2b_files_write",
        "e2b_files_list",
        "e2b_files_exists",
        "e2b_files_remove",
        "e2b_files_rename",
        "e2b_files_make_dir",
        "e2b_commands_run",
        "e2b_sandbox_get_host",
        "e2b_host_release",
        "e2b_commands_connect",
        "e2b_files_watch_dir",
        "e2b_watch_next",
        "e2b_watch_finished",
        "e2b_watch_destroy",
        "e2b_pty_create",
        "e2b_pty_connect",
        "e2b_pty_name",
        "e2b_pty_send_input",
        "e2b_pty_resize",
        "e2b_pty_next",
        "e2b_pty_kill",
        "e2b_pty_destroy",
    ] {
        let declared = [" ", "*"]
            .iter()
            .any(|before| header.contains(&format!("{before}{f}(")));
        assert!(declared, "{f} missing from the header");
    }
    assert!(header.contains("E2B_ERR_CLOSED = 11"));
    assert!(header.contains("E2B_ERR_IS_A_DIRECTORY = 21"));
    assert!(header.contains("E2B_ERR_COMMAND_FAILED = 24"));
    assert!(header.contains("E2B_ERR_PROCESS_NOT_FOUND = 25"));
    assert!(header.contains("E2B_ERR_TERMINAL_NOT_FOUND = 26"));
    assert!(header.contains("E2B_ERR_NOT_ENOUGH_SPACE = 31"));
    assert!(header.contains("typedef uint64_t e2b_terminal_t;"));
}
