//! The existing-server backend against a real jupyter_server and a real Jupyter Kernel Gateway.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::support::python_server::{PythonServer, venv_python};
use crate::support::{deadline, init_logs, local_tcp, token_of};
use e2b_blocking::{ContextOptions, Error, Sandbox, Secret, TimeoutPhase, Timeouts};

/// The ids of the kernels a server lists. jupyter_server answers 500 to a list that meets a
/// kernel whose start is under way (its `last_activity` is not set yet, see
/// `MappingKernelManager.kernel_model`), so that answer is asked again.
fn kernel_ids(url: &str, token: &str) -> Vec<String> {
    for _ in 0..50 {
        let answer = ureq::get(&format!("{url}/api/kernels"))
            .header("Authorization", &format!("token {token}"))
            .call();
        let mut resp = match answer {
            Err(ureq::Error::StatusCode(500)) => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            other => other.expect("list kernels"),
        };
        let body = resp.body_mut().read_to_string().expect("body");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        return v
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["id"].as_str().unwrap().to_string())
            .collect();
    }
    panic!("{url}/api/kernels answered 500 for a second");
}

#[test]
fn drives_a_token_protected_jupyter_server_and_shuts_down_only_its_kernels() {
    deadline(|| {
        let owner = local_tcp();
        let url = owner.jupyter_url().to_string();
        let token = token_of(&owner);
        let before = kernel_ids(&url, &token);

        let sbx = Sandbox::jupyter(&url, token.as_str()).unwrap();
        assert!(
            !format!("{sbx:?}").contains(&token),
            "token in Debug output"
        );
        let _ = sbx.run_code("z = 6").unwrap();
        assert_eq!(sbx.run_code("z * 7").unwrap().text(), Some("42"));
        let during = kernel_ids(&url, &token);
        assert_eq!(during.len(), before.len() + 1);
        drop(sbx);

        // Its own kernel is gone; the owner's kernels and server are untouched.
        assert_eq!(kernel_ids(&url, &token), before);
        assert_eq!(owner.run_code("1 + 1").unwrap().text(), Some("2"));
    });
}

#[test]
fn wrong_token_is_an_authentication_error() {
    deadline(|| {
        let owner = local_tcp();
        let err = Sandbox::jupyter(owner.jupyter_url(), "not-the-token").unwrap_err();
        assert!(
            matches!(err, Error::Authentication { status: 403, .. }),
            "{err:?}"
        );
        assert!(!err.to_string().contains("not-the-token"));
    });
}

#[test]
fn unreachable_server_fails_within_the_connect_timeout() {
    deadline(|| {
        init_logs();
        // A port that was just free: nothing listens there.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let started = Instant::now();
        let err = Sandbox::builder()
            .timeouts(Timeouts::default().connect(Duration::from_secs(2)))
            .jupyter(&format!("http://127.0.0.1:{port}"), Secret::new("t"))
            .unwrap_err();
        assert!(
            matches!(err, Error::Transport { .. } | Error::Timeout { .. }),
            "{err:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
        let err = Sandbox::jupyter("127.0.0.1:1", "t").unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    });
}

/// jupyter_server answers a new kernel's first websocket handshake only once the kernel is up
/// and has replied to `kernel_info`, so a kernel slower to start than the connect timeout must
/// still connect; `Timeouts::kernel_start` bounds it instead, with its own phase.
#[test]
fn a_slow_starting_kernel_is_bounded_by_kernel_start_not_connect() {
    deadline(|| {
        init_logs();
        let server = PythonServer::tokenless_jupyter();
        let python = venv_python(&[]);
        let slow = format!("sleep 3; exec '{python}' -m ipykernel_launcher -f \"$0\"");
        server.add_kernelspec("slow", "python", &["sh", "-c", &slow, "{connection_file}"]);
        server.add_kernelspec("stuck", "python", &["sleep", "600"]);

        // Long enough for the sandbox's own Python kernel to start on a loaded machine.
        let limit = Duration::from_secs(10);
        let impatient = Sandbox::builder()
            .timeouts(Timeouts::default().kernel_start(limit))
            .jupyter(&server.url, "")
            .unwrap();
        let before = kernel_ids(&server.url, "");
        std::thread::scope(|s| {
            // The stuck kernel's wait is spent idle: the slow kernel starts meanwhile.
            let stuck = s.spawn(|| {
                impatient
                    .create_context(ContextOptions::new().language("stuck"))
                    .unwrap_err()
            });

            let patient = Sandbox::builder()
                .timeouts(Timeouts::default().connect(Duration::from_secs(1)))
                .jupyter(&server.url, "")
                .unwrap();
            let ctx = patient
                .create_context(ContextOptions::new().language("slow"))
                .unwrap();
            let exec = patient.code("6 * 7").context(&ctx).run().unwrap();
            assert_eq!(exec.text(), Some("42"));
            drop(patient);

            let err = stuck.join().unwrap();
            assert!(
                matches!(err, Error::Timeout { phase: TimeoutPhase::KernelStart, after } if after == limit),
                "{err:?}"
            );
        });
        // The patient sandbox shut down its kernels when dropped, as any sandbox does.
        assert_eq!(
            kernel_ids(&server.url, ""),
            before,
            "the kernel that never started was left running"
        );
    });
}

/// A Jupyter Kernel Gateway from PyPI, installed into the local sandbox's managed venv.
fn start_gateway(token: &str) -> PythonServer {
    let python = venv_python(&["jupyter_kernel_gateway"]);
    PythonServer::start(&python, |port, _| {
        vec![
            "-m".into(),
            "kernel_gateway".into(),
            "--KernelGatewayApp.ip=127.0.0.1".into(),
            format!("--KernelGatewayApp.port={port}"),
            "--KernelGatewayApp.port_retries=0".into(),
            format!("--KernelGatewayApp.auth_token={token}"),
            "--JupyterWebsocketPersonality.list_kernels=True".into(),
        ]
    })
}

#[test]
fn drives_a_jupyter_kernel_gateway() {
    deadline(|| {
        init_logs();
        let gw = start_gateway("kg-token");
        let err = Sandbox::jupyter(&gw.url, "wrong").unwrap_err();
        assert!(
            matches!(err, Error::Authentication { status: 401, .. }),
            "{err:?}"
        );

        let sbx = Sandbox::jupyter(&gw.url, "kg-token").unwrap();
        let exec = sbx
            .code("import sys\nprint('via gateway')\nprint('warn', file=sys.stderr)\n2 ** 10")
            .run()
            .unwrap();
        assert_eq!(exec.text(), Some("1024"));
        assert_eq!(exec.logs.stdout.concat(), "via gateway\n");
        assert_eq!(exec.logs.stderr.concat(), "warn\n");
        let err = sbx
            .code("import time\ntime.sleep(30)")
            .timeout(Duration::from_millis(300))
            .run()
            .unwrap_err();
        assert!(err.is_timeout());
        assert_eq!(
            sbx.code("40 + 2")
                .timeout(Duration::from_secs(2))
                .run()
                .unwrap()
                .text(),
            Some("42")
        );
        assert_eq!(kernel_ids(&gw.url, "kg-token").len(), 1);
        drop(sbx);
        assert!(kernel_ids(&gw.url, "kg-token").is_empty());
    });
}

/// A kernel start holds nothing the rest of the sandbox needs: while one context's kernel takes
/// 8 s to start, other contexts run and `kill()` returns at once; the kernel whose start ends
/// after the kill is shut down, not leaked.
#[test]
fn a_slow_kernel_start_blocks_neither_other_contexts_nor_kill() {
    deadline(|| {
        init_logs();
        let server = PythonServer::tokenless_jupyter();
        let python = venv_python(&[]);
        let slow = format!("sleep 8; exec '{python}' -m ipykernel_launcher -f \"$0\"");
        server.add_kernelspec("slow", "python", &["sh", "-c", &slow, "{connection_file}"]);

        let sbx = std::sync::Arc::new(Sandbox::jupyter(&server.url, "").unwrap());
        let starting = {
            let sbx = sbx.clone();
            // The default context of a language starts on first use, as here.
            std::thread::spawn(move || sbx.code("1").language("slow").run())
        };
        // Wait until the slow kernel exists on the server: its start is under way.
        while kernel_ids(&server.url, "").len() < 2 {
            std::thread::sleep(Duration::from_millis(20));
        }
        let started = Instant::now();
        assert_eq!(sbx.run_code("6 * 7").unwrap().text(), Some("42"));
        assert_eq!(sbx.list_contexts().unwrap().len(), 1);
        sbx.kill().unwrap();
        let took = started.elapsed();
        // Hang bound, far below the 8 s start that the calls used to wait for.
        assert!(took < Duration::from_secs(6), "took {took:?}");

        let err = starting.join().unwrap().unwrap_err();
        assert!(matches!(err, Error::Closed), "{err:?}");
        assert!(
            kernel_ids(&server.url, "").is_empty(),
            "a kernel was left on the server"
        );
    });
}

/// `Timeouts::close` bounds the whole teardown, not each kernel: with the server frozen, the
/// kernel shutdowns of four contexts share one budget.
#[test]
fn close_budget_is_shared_by_every_kernel() {
    deadline(|| {
        init_logs();
        let server = PythonServer::tokenless_jupyter();
        let budget = Duration::from_secs(1);
        let sbx = Sandbox::builder()
            .timeouts(Timeouts::default().close(budget))
            .jupyter(&server.url, "")
            .unwrap();
        for _ in 0..3 {
            sbx.create_context(ContextOptions::new()).unwrap();
        }
        let pid = nix::unistd::Pid::from_raw(server.pid() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
        let started = Instant::now();
        let result = sbx.close();
        let took = started.elapsed();
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
        assert!(
            matches!(
                result,
                Err(Error::Timeout {
                    phase: TimeoutPhase::Close,
                    ..
                })
            ),
            "{result:?}"
        );
        // One budget (plus thread start-up), not four of them one after another.
        assert!(took < budget * 3, "took {took:?}");
    });
}

/// A server started from a directory other than its root_dir (as most are: E2B's from `/`,
/// a user's from wherever they were): relative paths mean the root in files, code, commands
/// and context cwds alike.
#[test]
fn relative_paths_mean_the_root_on_a_server_started_elsewhere() {
    deadline(|| {
        init_logs();
        let server = PythonServer::tokenless_jupyter();
        assert_ne!(server.dir(), server.root());
        let sbx = Sandbox::jupyter(&server.url, "").unwrap();
        sbx.files().write("data.csv", "a,b\n").unwrap();
        let exec = sbx.run_code("open('data.csv').read()").unwrap();
        assert_eq!(exec.text(), Some("'a,b\\n'"));
        assert_eq!(sbx.commands().run("cat data.csv").unwrap().stdout, "a,b\n");
        sbx.files().make_dir("sub").unwrap();
        let ctx = sbx
            .create_context(ContextOptions::new().cwd("sub"))
            .unwrap();
        let exec = sbx
            .code("import os\nos.getcwd()")
            .context(&ctx)
            .run()
            .unwrap();
        let root = server.root().canonicalize().unwrap();
        assert_eq!(
            exec.text(),
            Some(format!("'{}/sub'", root.display()).as_str())
        );
        assert_eq!(sbx.server_root().unwrap(), root.display().to_string());
    });
}

/// Jupyter Enterprise Gateway (from PyPI, local process kernels: remote kernels need a
/// cluster, and speak the same protocol): code, contexts, a reconnect after a cut.
#[test]
fn drives_an_enterprise_gateway() {
    deadline(|| {
        init_logs();
        let gw = PythonServer::enterprise_gateway("eg-token");
        let err = Sandbox::jupyter(&gw.url, "wrong").unwrap_err();
        assert!(matches!(err, Error::Authentication { .. }), "{err:?}");

        let addr = gw.url.trim_start_matches("http://").parse().unwrap();
        let proxy = crate::support::fault_proxy::FaultProxy::start(addr).unwrap();
        let sbx = Sandbox::jupyter(&format!("http://{}", proxy.addr()), "eg-token").unwrap();
        let exec = sbx.code("print('via EG')\n2 ** 10").run().unwrap();
        assert_eq!(exec.text(), Some("1024"));
        assert_eq!(exec.logs.stdout.concat(), "via EG\n");
        let _ = sbx.run_code("x = 41").unwrap();
        let ctx = sbx.create_context(ContextOptions::new()).unwrap();
        let exec = sbx.code("'x' in globals()").context(&ctx).run().unwrap();
        assert_eq!(exec.text(), Some("False"));
        assert_eq!(kernel_ids(&gw.url, "eg-token").len(), 2);

        assert!(proxy.cut_all() > 0);
        assert_eq!(sbx.run_code("x + 1").unwrap().text(), Some("42"));
        let out = sbx.commands().run("echo from-eg").unwrap();
        assert_eq!(out.stdout, "from-eg\n");
        drop(sbx);
        assert!(kernel_ids(&gw.url, "eg-token").is_empty());
    });
}

/// `https://` and `wss://` to a server whose certificate comes from a private CA (as an
/// Enterprise Gateway behind a company ingress): refused until the CA is trusted with
/// `add_root_certificate`, then code, files and a reconnect all go over TLS.
#[test]
fn tls_with_a_private_ca() {
    deadline(|| {
        init_logs();
        let server = PythonServer::tokenless_jupyter();
        let ca = crate::support::tls_proxy::TestCa::new();
        let addr = server.url.trim_start_matches("http://").parse().unwrap();
        let proxy = crate::support::tls_proxy::TlsProxy::start(addr, &ca).unwrap();

        // Its issuer is unknown: the error says how to trust it.
        let err = Sandbox::jupyter(&proxy.url(), "").unwrap_err();
        let Error::UntrustedCertificate { reason, .. } = &err else {
            panic!("{err:?}")
        };
        assert!(reason.contains("issuer"), "{reason}");
        assert!(err.to_string().contains("add_root_certificate"), "{err}");
        let err = Sandbox::builder()
            .add_root_certificate("not a certificate")
            .jupyter(&proxy.url(), "")
            .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");

        let sbx = Sandbox::builder()
            .add_root_certificate(ca.ca_pem.clone())
            .jupyter(&proxy.url(), "")
            .unwrap();
        assert!(sbx.jupyter_url().starts_with("https://"));
        assert_eq!(sbx.run_code("x = 6 * 7\nx").unwrap().text(), Some("42"));
        sbx.files().write("tls.txt", "over TLS").unwrap();
        assert_eq!(sbx.files().read("tls.txt").unwrap(), "over TLS");
        assert!(proxy.cut_all() > 0);
        assert_eq!(sbx.run_code("x + 1").unwrap().text(), Some("43"));
        assert!(proxy.handshakes() >= 3, "{}", proxy.handshakes());
    });
}
