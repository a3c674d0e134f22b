//! TLS to Redis (rustls): the CA to trust (a PEM file, or the system's
//! roots) and an optional client certificate for mutual TLS.

use fred::prelude::TlsConnector;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// TLS settings of a Redis backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisTls {
    /// PEM file of the CA(s) to trust; absent: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain, for servers that require one.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificates from {}: {e}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("no certificate in {}", path.display()));
    }
    Ok(certificates)
}

impl RedisTls {
    /// The connector these settings describe; errors name the file at fault.
    pub(crate) fn connector(&self) -> Result<TlsConnector, String> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_file {
            Some(ca_file) => {
                for certificate in certificates(ca_file)? {
                    roots
                        .add(certificate)
                        .map_err(|e| format!("bad CA certificate in {}: {e}", ca_file.display()))?;
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                let (added, _ignored) = roots.add_parsable_certificates(native.certs);
                if added == 0 {
                    return Err("no system CA certificates found: set ca_file".into());
                }
            }
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
        let config = match (&self.cert_file, &self.key_file) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert_file), Some(key_file)) => {
                let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
                    format!("cannot read a private key from {}: {e}", key_file.display())
                })?;
                builder
                    .with_client_auth_cert(certificates(cert_file)?, key)
                    .map_err(|e| format!("bad client certificate or key: {e}"))?
            }
            _ => return Err("give both cert_file and key_file for a client certificate".into()),
        };
        Ok(TlsConnector::from(config))
    }
}
