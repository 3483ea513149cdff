//! The E2B data plane (envd and the code-interpreter server) end to end, on the rig of
//! `support/data_rig.rs`: stand-ins checked by E2B's official SDK (`e2b_official_sdk`), behind
//! the sandbox-proxy stand-in, with the scripted control plane.

use std::time::Duration;

use crate::support::data_rig::{DataRig, ENVD_VERSION};
use crate::support::deadline;
use e2b_blocking::{ContextOptions, DataPlane, Error, Sandbox};

fn sandbox(rig: &DataRig) -> Sandbox {
    rig.sandbox()
}

#[test]
fn detects_the_e2b_plane_and_shows_it() {
    deadline(|| {
        let rig = DataRig::start();
        let sbx = sandbox(&rig);
        assert_eq!(sbx.data_plane(), DataPlane::E2b);
        let shown = format!("{sbx:?}");
        assert!(shown.contains("data_plane: E2b"), "{shown}");
        assert!(
            !shown.contains(crate::support::data_rig::ENVD_TOKEN),
            "{shown}"
        );
        assert!(sbx.is_running());
        let _ = ENVD_VERSION;
    });
}

#[test]
fn run_code_streams_results_errors_and_env_vars() {
    deadline(|| {
        let rig = DataRig::start();
        let sbx = sandbox(&rig);
        let mut seen = Vec::new();
        let exec = sbx
            .code("print('a')\nimport sys; print('b', file=sys.stderr)\n6 * 7")
            .on_stdout(|m| seen.push(m.line.clone()))
            .run()
            .unwrap();
        assert_eq!(exec.text(), Some("42"));
        assert_eq!(exec.logs.stdout.concat(), "a\n");
        assert_eq!(exec.logs.stderr.concat(), "b\n");
        assert_eq!(seen.concat(), "a\n");
        assert!(exec.execution_count.is_some());
        let exec = sbx.run_code("1/0").unwrap();
        assert_eq!(exec.error.as_ref().unwrap().name, "ZeroDivisionError");
        let exec = sbx
            .code("import os; os.environ['ONE_RUN']")
            .envs([("ONE_RUN", "yes")])
            .run()
            .unwrap();
        assert_eq!(exec.text(), Some("yes"));
        let exec = sbx
            .run_code("import os; os.environ.get('ONE_RUN')")
            .unwrap();
        assert_eq!(exec.text(), None, "{exec:?}");
        let exec = sbx.code("echo $((6*7))").language("bash").run().unwrap();
        assert_eq!(exec.logs.stdout.concat().trim(), "42");
    });
}

#[test]
fn run_code_timeout_interrupts_and_the_context_stays_usable() {
    deadline(|| {
        let rig = DataRig::start();
        let sbx = sandbox(&rig);
        let _ = sbx.run_code("x = 1").unwrap().check().unwrap();
        let err = sbx
            .code("import time; time.sleep(30)")
            .timeout(Duration::from_secs(1))
            .run()
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
        // The dropped request interrupted the cell: the context answers again. A cell sent
        // while the kernel still unwinds the interrupt is aborted by it (stop_on_error), as on
        // E2B: that one comes back as an ExecutionAborted error, not run.
        let answered = (0..3).find_map(|_| {
            let exec = sbx
                .code("x + 1")
                .timeout(Duration::from_secs(20))
                .run()
                .unwrap();
            match &exec.error {
                Some(e) if e.name == "ExecutionAborted" => None,
                _ => Some(exec),
            }
        });
        assert_eq!(answered.expect("the context answers").text(), Some("2"));
    });
}

#[test]
fn charts_and_rich_results_arrive_typed() {
    deadline(|| {
        let rig = DataRig::start();
        let sbx = sandbox(&rig);
        let exec = sbx
            .run_code(
                "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\n\
                 ax.bar(['a', 'b'], [1, 2]); ax.set_title('T')\nplt.show()",
            )
            .unwrap();
        let r = &exec.results[0];
        assert!(r.png_bytes().unwrap().unwrap().starts_with(b"\x89PNG"));
        assert!(r.chart.is_some(), "{r:?}");
    });
}

#[test]
fn contexts_have_their_own_state_cwd_and_envs() {
    deadline(|| {
        let rig = DataRig::start();
        let sbx = sandbox(&rig);
        let default = sbx.default_context().unwrap();
        assert_eq!(default.language, "python");
        let ctx = sbx
            .create_context(ContextOptions::new().cwd("/tmp").envs([("CTX_ENV", "v")]))
            .unwrap();
        let exec = sbx
            .code("import os; (os.getcwd(), os.environ['CTX_ENV'])")
            .context(&ctx)
            .run()
            .unwrap();
        assert_eq!(exec.text(), Some("('/tmp', 'v')"));
        let _ = sbx
            .code("y = 3")
            .context(&ctx)
            .run()
            .unwrap()
            .check()
            .unwrap();
        assert!(sbx.list_contexts().unwrap().iter().any(|c| c.id == ctx.id));
        sbx.restart_context(&ctx).unwrap();
        let exec = sbx.code("y").context(&ctx).run().unwrap();
        assert_eq!(exec.error.unwrap().name, "NameError");
        sbx.remove_context(&ctx).unwrap();
        assert!(sbx.list_contexts().unwrap().iter().all(|c| c.id != ctx.id));
        let err = sbx.code("1").context(&ctx).run().unwrap_err();
        assert!(matches!(err, Error::KernelNotFound { .. }), "{err:?}");
        let err = sbx
            .create_context(ContextOptions::new().language("cobol"))
            .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        let err = sbx.interrupt(&default).unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    });
}
