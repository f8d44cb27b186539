//! TLS for `fetch` to `https` origins, verified as the origin's own settings say: its
//! `ca_file` if it has one, else the system's roots; `verify_tls = false` skips the
//! certificate check (the handshake signatures are still checked), as it does for proxying.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use verge_config::Origin;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's trust roots, loaded once per process.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            if let Ok(certs) = rustls_native_certs::load_native_certs() {
                roots.add_parsable_certificates(certs);
            }
            Arc::new(roots)
        })
        .clone()
}

/// The client configuration for `origin`.
pub fn client_config(origin: &Origin) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?;
    let config = if !origin.verify_tls {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoCertificateCheck(
                provider().signature_verification_algorithms,
            )))
            .with_no_client_auth()
    } else if let Some(pem) = &origin.ca_pem {
        let mut roots = RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert =
                cert.map_err(|e| format!("the CA file of {} is not PEM: {e}", origin.name))?;
            roots
                .add(cert)
                .map_err(|e| format!("a CA certificate of {} is not usable: {e}", origin.name))?;
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .with_root_certificates(system_roots())
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// `verify_tls = false`: any certificate, but a correctly signed handshake.
#[derive(Debug)]
struct NoCertificateCheck(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoCertificateCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
