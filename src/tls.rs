//! Which certificate authorities a sandbox's server may present for `https://` and `wss://`:
//! Mozilla's roots (webpki) by default, or the roots the caller gave (a private CA, such as an
//! Enterprise Gateway's in a company cluster), or those of `SSL_CERT_FILE`.

use std::fmt;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::error::Error;

/// Names a PEM bundle whose certificates replace the built-in roots, as for OpenSSL.
pub(crate) const SSL_CERT_FILE_ENV: &str = "SSL_CERT_FILE";

/// The trusted roots: empty means Mozilla's (webpki) roots.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct TlsRoots {
    certs: Vec<CertificateDer<'static>>,
}

impl fmt::Debug for TlsRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.certs.is_empty() {
            f.write_str("TlsRoots(webpki)")
        } else {
            write!(f, "TlsRoots({} certificates)", self.certs.len())
        }
    }
}

impl TlsRoots {
    /// Roots from PEM bundles or DER certificates given by the caller; with none given, those
    /// of `SSL_CERT_FILE` when it is set, else Mozilla's.
    pub(crate) fn new(given: &[Vec<u8>]) -> Result<TlsRoots, Error> {
        let mut certs = Vec::new();
        for (i, bytes) in given.iter().enumerate() {
            let parsed = parse(bytes)
                .map_err(|e| Error::InvalidArgument(format!("root certificate #{}: {e}", i + 1)))?;
            certs.extend(parsed);
        }
        if certs.is_empty()
            && let Some(path) = std::env::var_os(SSL_CERT_FILE_ENV).filter(|p| !p.is_empty())
        {
            let bytes = std::fs::read(&path).map_err(|source| Error::Io {
                path: format!("{SSL_CERT_FILE_ENV}={}", path.to_string_lossy()),
                source,
            })?;
            certs = parse(&bytes).map_err(|e| {
                Error::InvalidArgument(format!(
                    "{SSL_CERT_FILE_ENV}={}: {e}",
                    path.to_string_lossy()
                ))
            })?;
            log::debug!(
                "trusting {} root certificate(s) from {SSL_CERT_FILE_ENV}",
                certs.len()
            );
        }
        Ok(TlsRoots { certs })
    }

    /// The agent's TLS settings, when they differ from ureq's default (webpki roots).
    pub(crate) fn ureq(&self) -> Option<ureq::tls::TlsConfig> {
        if self.certs.is_empty() {
            return None;
        }
        let certs: Vec<ureq::tls::Certificate<'static>> = self
            .certs
            .iter()
            .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
            .collect();
        Some(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                .build(),
        )
    }

    /// The websocket's TLS client settings.
    pub(crate) fn rustls(&self) -> Result<Arc<rustls::ClientConfig>, Error> {
        static WEBPKI: OnceLock<Result<Arc<rustls::ClientConfig>, rustls::Error>> = OnceLock::new();
        if self.certs.is_empty() {
            return WEBPKI
                .get_or_init(|| {
                    client_config(rustls::RootCertStore {
                        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                    })
                })
                .clone()
                .map_err(|e| Error::protocol_from("cannot set up TLS", e));
        }
        let mut roots = rustls::RootCertStore::empty();
        let (_, ignored) = roots.add_parsable_certificates(self.certs.iter().cloned());
        if ignored > 0 {
            log::warn!("{ignored} root certificate(s) could not be used");
        }
        client_config(roots).map_err(|e| Error::protocol_from("cannot set up TLS", e))
    }
}

fn client_config(roots: rustls::RootCertStore) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// Every certificate of a PEM bundle, or one DER certificate.
fn parse(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    if bytes.starts_with(b"-----") || bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(bytes)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("bad PEM: {e}"))?;
        if certs.is_empty() {
            return Err("no CERTIFICATE block in the PEM data".into());
        }
        return Ok(certs);
    }
    // DER: a SEQUENCE; rustls checks the rest when the store is built.
    if bytes.first() == Some(&0x30) {
        return Ok(vec![CertificateDer::from(bytes.to_vec())]);
    }
    Err("neither PEM nor DER".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_refused() {
        assert!(parse(b"hello").is_err());
        assert!(parse(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err());
        assert!(TlsRoots::new(&[b"nope".to_vec()]).is_err());
        assert_eq!(format!("{:?}", TlsRoots::default()), "TlsRoots(webpki)");
    }
}
