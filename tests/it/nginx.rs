//! A stock jupyter_server behind Debian's nginx with TLS and a self-signed certificate made by
//! `openssl req -x509` defaults (`CA:TRUE`): what the SDK says about that certificate, pinning
//! it, and everything working through nginx, across cuts on both sides of it. The server loads
//! `server/e2b_nodelay.py`, as the README tells users to.

use std::path::Path;

use crate::support::deadline;
use crate::support::fault_proxy::FaultProxy;
use crate::support::nginx::{Nginx, SelfSigned};
use crate::support::python_server::{PythonServer, venv_python};
use e2b_blocking::{ConnectionConfig, Error, PtyEvent, PtySize, Sandbox};

const TOKEN: &str = "nginx-test-token";

/// A token-protected stock jupyter_server with the repo's TCP_NODELAY extension loaded.
pub fn server_with_nodelay() -> PythonServer {
    let ext = Path::new(env!("CARGO_MANIFEST_DIR")).join("server");
    PythonServer::start(&venv_python(&[]), move |port, dir| {
        let root = dir.join("root");
        let _ = std::fs::create_dir_all(&root);
        let config = dir.join("nodelay_config.py");
        let _ = std::fs::write(
            &config,
            format!(
                "import sys\nsys.path.insert(0, {ext:?})\n\
                 c.ServerApp.jpserver_extensions = {{'e2b_nodelay': True}}\n",
                ext = ext.display().to_string()
            ),
        );
        vec![
            "-m".into(),
            "jupyter_server".into(),
            format!("--config={}", config.display()),
            "--ServerApp.ip=127.0.0.1".into(),
            format!("--ServerApp.port={port}"),
            "--ServerApp.port_retries=0".into(),
            format!("--IdentityProvider.token={TOKEN}"),
            "--allow-root".into(),
            format!("--ServerApp.root_dir={}", root.display()),
        ]
    })
}

fn addr_of(url: &str) -> std::net::SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

#[test]
fn an_openssl_default_self_signed_certificate_is_explained_then_pinned() {
    deadline(|| {
        crate::support::init_logs();
        let server = server_with_nodelay();
        let dir = server.dir().to_path_buf();
        let cert = SelfSigned::openssl_default(&dir, "server");
        let nginx = Nginx::start(addr_of(&server.url), &cert, "");

        // Given as a root, a CA:TRUE certificate cannot be the server's own: the error says so
        // and names the way out.
        let err = Sandbox::builder()
            .add_root_certificate(cert.pem())
            .jupyter(&nginx.url_by_name(), TOKEN)
            .unwrap_err();
        let Error::UntrustedCertificate { reason, .. } = &err else {
            panic!("{err:?}")
        };
        assert!(reason.contains("CA certificate"), "{reason}");
        assert!(
            err.to_string().contains("trust_server_certificate"),
            "{err}"
        );
        // Not given at all: the same (webpki looks at the CA bit before the issuer).
        let err = Sandbox::jupyter(&nginx.url_by_name(), TOKEN).unwrap_err();
        assert!(matches!(err, Error::UntrustedCertificate { .. }), "{err:?}");
        assert!(
            err.to_string().contains("trust_server_certificate"),
            "{err}"
        );
        // Another self-signed certificate pinned: refused.
        let other = SelfSigned::openssl_default(&dir, "other");
        let err = Sandbox::builder()
            .trust_server_certificate(other.pem())
            .jupyter(&nginx.url(), TOKEN)
            .unwrap_err();
        assert!(matches!(err, Error::UntrustedCertificate { .. }), "{err:?}");

        // Pinned: trusted by its bytes, whatever name the URL uses (its CN is localhost); the
        // second connection also nudges the proxy's ACKs.
        for (url, nudge) in [(nginx.url_by_name(), false), (nginx.url(), true)] {
            let sbx = Sandbox::builder()
                .trust_server_certificate(cert.pem())
                .connection(ConnectionConfig::default().ack_nudge(nudge))
                .jupyter(&url, TOKEN)
                .unwrap();
            assert_eq!(sbx.run_code("6 * 7").unwrap().text(), Some("42"));
        }
    });
}

/// Through nginx with TLS: code, files, commands and a terminal, then a cut between the SDK
/// and nginx and one between nginx and the server.
#[test]
fn everything_works_through_nginx_across_cuts_on_both_sides() {
    deadline(|| {
        crate::support::init_logs();
        let server = server_with_nodelay();
        let upstream = FaultProxy::start(addr_of(&server.url)).unwrap();
        let cert = SelfSigned::openssl_default(server.dir(), "server");
        let nginx = Nginx::start(upstream.addr(), &cert, "");
        let front = FaultProxy::start(addr_of(&nginx.url().replace("https", "http"))).unwrap();
        let url = format!("https://{}", front.addr());

        let sbx = Sandbox::builder()
            .trust_server_certificate(cert.pem())
            .jupyter(&url, TOKEN)
            .unwrap();
        let _ = sbx.run_code("v = 1").unwrap();
        sbx.files().write("big.bin", vec![7u8; 3 << 20]).unwrap();
        assert_eq!(sbx.files().read_bytes("big.bin").unwrap().len(), 3 << 20);
        let term = sbx.pty().create(PtySize::new(80, 24)).unwrap();

        for (side, proxy) in [("client", &front), ("server", &upstream)] {
            assert!(proxy.cut_all() > 0, "nothing to cut on the {side} side");
            let exec = sbx.run_code("v += 1\nprint('after', v)\nv").unwrap();
            assert_eq!(
                exec.logs.stdout.concat(),
                format!("after {}\n", exec.text().unwrap())
            );
            assert_eq!(
                sbx.commands().run("echo via-nginx").unwrap().stdout,
                "via-nginx\n",
                "{side} side"
            );
            term.send_input(format!("echo {side}-$((20+22))\n"))
                .unwrap();
            let mut text = String::new();
            while !text.contains(&format!("{side}-42")) {
                match term
                    .recv_timeout(std::time::Duration::from_secs(30))
                    .unwrap()
                {
                    Some(PtyEvent::Output(t)) => text.push_str(&t),
                    Some(PtyEvent::End(end)) => panic!("terminal ended: {end:?}"),
                    Some(_) => {}
                    None => panic!("no {side}-42 in {text:?}"),
                }
            }
        }
        assert_eq!(sbx.run_code("v").unwrap().text(), Some("3"));
    });
}
