//! The data-plane rig checked by a client nobody here wrote: E2B's official Python SDK (`e2b`
//! and `e2b-code-interpreter` from PyPI, pinned in tests/rig/requirements.txt) runs its basic
//! flows against the stand-ins (tests/rig/sdk_check.py). In debug mode that SDK talks to
//! localhost:49983 and localhost:49999, fixed ports, so the rig and the SDK run in a network
//! namespace of their own (`unshare -n`), where those ports are free whatever the host runs.

use std::process::Command;

use crate::support::data_rig::{keep_paths, rig_python};
use crate::support::deadline;

const SCRIPT: &str = r#"
set -e
ip link set lo up
mount --bind "$DIR/home" /home
# The rig's /tmp hides the host's: what runs from there (a clone under /tmp) is bound back.
IFS=:
for p in $E2B_RIG_KEEP; do
  case "$p" in /tmp/*) mkdir -p "$DIR/tmp${p#/tmp}"; mount --bind "$p" "$DIR/tmp${p#/tmp}";; esac
done
unset IFS
mount --rbind "$DIR/tmp" /tmp
state=/home/.rig
"$PYTHON" "$RIG/main.py" --state "$state" --envd-port 49983 --interpreter-port 49999 \
    --envs '{"RIG_GLOBAL": "from-envd"}' > "$state/ports" 2> "$state/rig.log" < <(sleep 600) &
for _ in $(seq 300); do [ -s "$state/ports" ] && break; sleep 0.1; done
[ -s "$state/ports" ] || { echo "the rig did not start"; cat "$state/rig.log"; exit 1; }
E2B_DEBUG=true "$PYTHON" "$RIG/sdk_check.py"
"#;

#[test]
fn official_python_sdk_runs_its_flows_against_the_rig() {
    deadline(|| {
        crate::support::require_tool("unshare", "install util-linux");
        let python = rig_python();
        let dir =
            std::env::temp_dir().join(format!("e2b-sdk-check-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("home/user")).unwrap();
        std::fs::create_dir_all(dir.join("home/.rig")).unwrap();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let out = Command::new("unshare")
            .args([
                "-rnm",
                "-p",
                "-f",
                "--kill-child",
                "--propagation",
                "private",
            ])
            .args(["bash", "-c", SCRIPT])
            .env("DIR", &dir)
            .env("PYTHON", &python)
            .env("E2B_RIG_KEEP", keep_paths(&python))
            .env("RIG", concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rig"))
            .output()
            .expect("unshare runs");
        let _ = std::fs::remove_dir_all(&dir);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.lines().any(|l| l == "all ok"),
            "the official SDK failed against the rig ({}):\n{stdout}\n{stderr}",
            out.status
        );
        // Every check of the script reported, none skipped.
        let named: std::collections::BTreeSet<&str> = include_str!("../rig/sdk_check.py")
            .split("check(\"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .collect();
        let passed: std::collections::BTreeSet<&str> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("ok "))
            .collect();
        assert_eq!(passed, named, "{stdout}");
    });
}
