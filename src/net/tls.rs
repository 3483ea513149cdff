//! Which certificates a sandbox's server may present for `https://` and `wss://`: chains to
//! Mozilla's roots (webpki) by default, or to the roots the caller gave (a private CA, such as
//! an Enterprise Gateway's in a company cluster), or to those of `SSL_CERT_FILE`; and exactly
//! the server certificates the caller pinned (a self-signed one, CA bit or not). A certificate
//! refused becomes [`Error::UntrustedCertificate`], which says what to do about it.

use std::fmt;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::error::{BoxError, Error};

/// Names a PEM bundle whose certificates replace the built-in roots, as for OpenSSL.
pub(crate) const SSL_CERT_FILE_ENV: &str = "SSL_CERT_FILE";

/// The trusted roots (empty means Mozilla's, webpki), and the pinned server certificates.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct TlsRoots {
    certs: Vec<CertificateDer<'static>>,
    /// Server certificates trusted as they are, whatever their issuer, names or CA bit.
    pinned: Vec<CertificateDer<'static>>,
}

impl fmt::Debug for TlsRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.certs.len(), self.pinned.len()) {
            (0, 0) => f.write_str("TlsRoots(webpki)"),
            (roots, 0) => write!(f, "TlsRoots({roots} certificates)"),
            (roots, pins) => write!(f, "TlsRoots({roots} certificates, {pins} pinned)"),
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
        Ok(TlsRoots {
            certs,
            pinned: Vec::new(),
        })
    }

    /// The same roots, also trusting each server certificate in `given` (PEM bundles or DER
    /// certificates) as it is. With pins and no roots given, only the pinned certificates are
    /// trusted: not Mozilla's roots, not `SSL_CERT_FILE`'s.
    pub(crate) fn pinning(mut self, given: &[Vec<u8>]) -> Result<TlsRoots, Error> {
        for (i, bytes) in given.iter().enumerate() {
            let parsed = parse(bytes).map_err(|e| {
                Error::InvalidArgument(format!("pinned server certificate #{}: {e}", i + 1))
            })?;
            self.pinned.extend(parsed);
        }
        Ok(self)
    }

    /// Whether certificates are pinned: then ureq's own TLS cannot check them, and agents use
    /// [`crate::net::RustlsConnector`] with [`TlsRoots::rustls`].
    pub(crate) fn has_pins(&self) -> bool {
        !self.pinned.is_empty()
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
        if self.has_pins() {
            return self.pinned_config();
        }
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

impl TlsRoots {
    /// A client that accepts the pinned certificates, and chains to the given roots if any.
    fn pinned_config(&self) -> Result<Arc<rustls::ClientConfig>, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chains = if self.certs.is_empty() {
            None
        } else {
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(self.certs.iter().cloned());
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| Error::protocol_from("cannot set up TLS", e))?;
            Some(verifier)
        };
        let verifier = Arc::new(Pinned {
            certs: self.pinned.clone(),
            chains,
            provider: provider.clone(),
        });
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::protocol_from("cannot set up TLS", e))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

/// Accepts a server whose certificate is one of `certs`, byte for byte, and proves it holds
/// its key (the handshake's signature is checked as always); names, dates and the CA bit are
/// not looked at, as for any pin. Otherwise the certificate must chain to the given roots.
#[derive(Debug)]
struct Pinned {
    certs: Vec<CertificateDer<'static>>,
    chains: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if self.certs.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
            return Ok(rustls::client::danger::ServerCertVerified::assertion());
        }
        match &self.chains {
            Some(chains) => chains.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// [`Error::UntrustedCertificate`] when `error`, or one of its causes, is rustls refusing the
/// server's certificate.
pub(crate) fn untrusted(endpoint: &str, error: BoxError) -> Result<Error, BoxError> {
    let Some(refusal) = certificate_error(&*error) else {
        return Err(error);
    };
    let (reason, hint) = advice(refusal);
    Ok(Error::UntrustedCertificate {
        endpoint: endpoint.to_string(),
        reason,
        hint,
        source: error,
    })
}

/// The rustls certificate error in `error`'s chain, looking into I/O errors that carry one.
fn certificate_error<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::CertificateError> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(rustls::Error::InvalidCertificate(c)) = e.downcast_ref::<rustls::Error>() {
            return Some(c);
        }
        let io = match e.downcast_ref::<ureq::Error>() {
            Some(ureq::Error::Rustls(rustls::Error::InvalidCertificate(c))) => return Some(c),
            // ureq's errors do not give their I/O error as a source.
            Some(ureq::Error::Io(io)) => Some(io),
            _ => e.downcast_ref::<std::io::Error>(),
        };
        let inner = io
            .and_then(|io| io.get_ref())
            .map(|i| i as &(dyn std::error::Error + 'static));
        next = inner.or_else(|| e.source());
    }
    None
}

/// What was wrong with the certificate, and what the user can do about it.
fn advice(error: &rustls::CertificateError) -> (String, &'static str) {
    use rustls::CertificateError as C;
    const PIN_OR_ROOT: &str = "if it is the server's own self-signed certificate, trust exactly \
        it with SandboxBuilder::trust_server_certificate(pem); if a private CA issued it, trust \
        the CA with SandboxBuilder::add_root_certificate(ca_pem)";
    let text = format!("{error:?}");
    if text.contains("CaUsedAsEndEntity") {
        return (
            "it is a CA certificate (CA:TRUE, as `openssl req -x509` makes by default) \
             presented as the server's own"
                .into(),
            "a root cannot also be the server's certificate: trust exactly this certificate \
             with SandboxBuilder::trust_server_certificate(pem), or give the server a \
             certificate issued by that CA (or made with -addext basicConstraints=CA:FALSE)",
        );
    }
    match error {
        C::UnknownIssuer => ("its issuer is not a trusted root".into(), PIN_OR_ROOT),
        C::ApplicationVerificationFailure => (
            "it is not a pinned certificate, nor issued by a trusted root".into(),
            "pin the certificate the server presents now with \
             SandboxBuilder::trust_server_certificate, if you trust it",
        ),
        C::NotValidForName | C::NotValidForNameContext { .. } => (
            "it does not name this host".into(),
            "connect with a host name the certificate lists (its subjectAltName), or trust \
             exactly this certificate with SandboxBuilder::trust_server_certificate(pem)",
        ),
        C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => (
            "it is outside its validity period".into(),
            "renew the server's certificate, or check this machine's clock",
        ),
        _ => (format!("{error:?}"), PIN_OR_ROOT),
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
