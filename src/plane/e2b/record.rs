//! Background commands whose output survives any number of cuts: envd keeps no output for a
//! client that was away (its `Connect(pid)` starts from the moment of attaching), so the SDK
//! has the sandbox keep it. A background command runs under a small bash recorder that passes
//! its stdout and stderr on to envd as they come and also appends them to
//! `/tmp/.e2b-blocking/cmd/{pid}/out` and `err` (`pid`: the recorder's, which is the pid envd
//! reports), and writes the exit code to `exit` when it ends.
//!
//! A handle counts the bytes it has delivered of each stream. After a cut it follows the files
//! from those offsets (`tail -c +N --pid=PID -F`, started through envd), so what arrives next is
//! exactly what came after: nothing twice, nothing missing, however often the link breaks.
//! `commands().connect(pid)` of a recorded command follows them from the start. The files are
//! removed a minute after the command ended; they grow with the output (a background command
//! that prints without end fills `/tmp`).

use std::sync::Arc;

use super::E2bPlane;
use super::files::E2bFiles;
use super::process::{E2bProcess, ProcessStart};
use crate::error::Error;

/// Where recorded commands keep their output, by pid.
const RECORDS: &str = "/tmp/.e2b-blocking/cmd";

/// The recorder: `$@` is the command; its output goes to envd and to the files; its exit code
/// to `exit` (written through a rename, so a reader never sees half of it); the files are
/// removed a minute after the end, when every follower has had its chance to read them.
const RECORDER: &str = r#"d=/tmp/.e2b-blocking/cmd/$$
mkdir -p /tmp/.e2b-blocking/cmd 2>/dev/null
chmod 1777 /tmp/.e2b-blocking /tmp/.e2b-blocking/cmd 2>/dev/null
mkdir -p "$d" || exit 125
: > "$d/out"; : > "$d/err"
"$@" > >(exec tee -a "$d/out") 2> >(exec tee -a "$d/err" >&2)
code=$?
echo "$code" > "$d/exit.partial" && mv "$d/exit.partial" "$d/exit"
(sleep 60; rm -rf "$d") </dev/null >/dev/null 2>&1 &
exit "$code""#;

/// The follower: the files of command `$1` from byte `$2` (stdout) and `$3` (stderr), until the
/// command has ended and both are drained.
const FOLLOWER: &str = r#"d=/tmp/.e2b-blocking/cmd/$1
tail -s 0.05 -c "+$2" --pid="$1" -F "$d/out" 2>/dev/null &
tail -s 0.05 -c "+$3" --pid="$1" -F "$d/err" >&2 2>/dev/null &
wait"#;

/// The bytes of each stream a handle has delivered, for a recorded command.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Seen {
    pub(crate) out: u64,
    pub(crate) err: u64,
}

/// The process to start for a recorded `cmd` (as E2B starts commands: `bash -l -c`).
pub(crate) fn recorded<'s>(cmd: &str, start: ProcessStart<'s>) -> ProcessStart<'s> {
    ProcessStart {
        cmd: "/bin/bash",
        args: vec![
            "-c".into(),
            RECORDER.into(),
            "e2b-record".into(),
            "/bin/bash".into(),
            "-l".into(),
            "-c".into(),
            cmd.to_string(),
        ],
        ..start
    }
}

/// Follows a recorded command's output from `seen` on.
pub(crate) fn follow(plane: &Arc<E2bPlane>, pid: u32, seen: Seen) -> Result<E2bProcess, Error> {
    let start = ProcessStart {
        cmd: "/bin/bash",
        args: vec![
            "-c".into(),
            FOLLOWER.into(),
            "e2b-follow".into(),
            pid.to_string(),
            (seen.out + 1).to_string(),
            (seen.err + 1).to_string(),
        ],
        ..ProcessStart::default()
    };
    plane.start_process(&start)
}

/// Whether `pid` is a command the recorder runs (its files exist).
pub(crate) fn is_recorded(plane: &E2bPlane, pid: u32) -> Result<bool, Error> {
    let files = E2bFiles { plane, user: None };
    match files.get_info(&format!("{RECORDS}/{pid}/out")) {
        Ok(_) => Ok(true),
        Err(Error::FileNotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The recorded exit code of a command that ended; `None` when it left none (it was killed
/// with its recorder).
pub(crate) fn exit_code(plane: &E2bPlane, pid: u32) -> Result<Option<i32>, Error> {
    let files = E2bFiles { plane, user: None };
    let mut text = Vec::new();
    let read = files.download(
        &format!("{RECORDS}/{pid}/exit"),
        &mut text,
        "<memory>",
        super::E2bDownload {
            progress: &mut |_, _| Ok(()),
        },
    );
    match read {
        Ok(_) => Ok(String::from_utf8_lossy(&text).trim().parse().ok()),
        Err(Error::FileNotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}
