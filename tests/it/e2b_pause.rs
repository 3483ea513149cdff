//! A live handle across pause and resume, on the rig (support/e2b_rig.rs): a stock
//! jupyter_server started as E2B's template starts it, behind a stand-in for E2B's proxy, with
//! a control plane that pauses as E2B does. A pause stops the server and its kernels where
//! they are (SIGSTOP: memory kept, as a full pause keeps it), breaks the connections through the
//! proxy, and makes the proxy answer "sandbox not found" as E2B's does for a paused sandbox
//! without auto-resume; a resume (connect) lets them go on.

use crate::support::e2b_rig::Rig;
use crate::support::{deadline, init_logs};
use e2b_blocking::e2b::{
    ConnectOptions, E2bClient, Lifecycle, OnTimeout, PauseMode, PauseOptions, SandboxState,
};
use e2b_blocking::{E2bOptions, Error, Sandbox};

fn create(rig: &Rig, options: &E2bOptions) -> Sandbox {
    Sandbox::builder().e2b_with(&rig.config(), options).unwrap()
}

/// Paused under the handle, a call fails at once with the typed error, not with a connection
/// lost after the reconnect budget; after a resume the same handle works again and the
/// kernel's state is there.
#[test]
fn a_paused_sandbox_fails_fast_then_works_after_resume_with_its_state() {
    deadline(|| {
        init_logs();
        let rig = Rig::start();
        let sbx = create(&rig, &E2bOptions::default());
        let e2b = sbx.as_e2b().expect("an E2B sandbox");
        assert!(sbx.run_code("x = 41").unwrap().error.is_none());

        assert!(
            e2b.pause(&PauseOptions::new().mode(PauseMode::Full))
                .unwrap()
        );
        assert!(rig.is_paused());
        assert!(
            !e2b.pause(&PauseOptions::new()).unwrap(),
            "already paused is success"
        );
        assert_eq!(e2b.info().unwrap().state, SandboxState::Paused);
        assert!(!sbx.is_running());
        match sbx.run_code("x + 1") {
            Err(Error::SandboxPaused { sandbox_id }) => assert_eq!(sandbox_id, sbx.sandbox_id()),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            e2b.ensure_running(),
            Err(Error::SandboxPaused { .. })
        ));

        e2b.resume(&ConnectOptions::new()).unwrap();
        assert!(!rig.is_paused());
        assert!(sbx.is_running());
        assert_eq!(sbx.run_code("x + 1").unwrap().text(), Some("42"));
    });
}

/// Paused by someone else (another client of the control plane), the handle finds out when its
/// connection breaks and says so.
#[test]
fn a_pause_by_another_client_is_reported_as_paused() {
    deadline(|| {
        init_logs();
        let rig = Rig::start();
        let sbx = create(&rig, &E2bOptions::default());
        assert!(sbx.run_code("y = 1").unwrap().error.is_none());
        let other = E2bClient::new(&rig.config()).unwrap();
        assert!(other.pause(sbx.sandbox_id(), &PauseOptions::new()).unwrap());
        // A REST call meets the proxy's "sandbox not found", which the control plane explains.
        assert!(matches!(
            sbx.files().list("/home/user"),
            Err(Error::SandboxPaused { .. })
        ));
        assert!(matches!(
            sbx.run_code("y"),
            Err(Error::SandboxPaused { .. })
        ));
        other
            .connect(sbx.sandbox_id(), &ConnectOptions::new())
            .unwrap();
        assert_eq!(sbx.run_code("y + 1").unwrap().text(), Some("2"));
    });
}

/// A handle created with auto-resume resumes its sandbox through connect when a call finds it
/// paused, and the call goes through with the kernel's state.
#[test]
fn an_auto_resuming_handle_resumes_first_and_keeps_the_kernel_state() {
    deadline(|| {
        init_logs();
        let rig = Rig::start();
        let options = E2bOptions::default().lifecycle(
            Lifecycle::new()
                .on_timeout(OnTimeout::Pause)
                .auto_resume(true),
        );
        let sbx = create(&rig, &options);
        assert!(sbx.run_code("z = 40").unwrap().error.is_none());
        let other = E2bClient::new(&rig.config()).unwrap();
        assert!(other.pause(sbx.sandbox_id(), &PauseOptions::new()).unwrap());
        assert_eq!(sbx.run_code("z + 2").unwrap().text(), Some("42"));
        assert!(!rig.is_paused());
        let connects = rig
            .plane_requests()
            .iter()
            .filter(|r| r.ends_with("/connect"))
            .count();
        assert_eq!(connects, 1, "{:?}", rig.plane_requests());

        // Its own pause: the next use resumes it first too.
        assert!(sbx.as_e2b().unwrap().pause(&PauseOptions::new()).unwrap());
        sbx.as_e2b().unwrap().ensure_running().unwrap();
        assert_eq!(sbx.run_code("z").unwrap().text(), Some("40"));
    });
}
