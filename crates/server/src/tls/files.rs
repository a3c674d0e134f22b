//! The PEM files a TLS listener serves with, read into a rustls
//! `ServerConfig`; every error names the file and the problem.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Whether clients must present a certificate signed by the client CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// A client without a certificate is refused at the handshake.
    Required,
    /// A client may go without (and authenticate by token, or as
    /// anonymous); one that presents a certificate must present a valid one.
    Optional,
}

/// Where a listener's certificate, key and client CA are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain (PEM, leaf first).
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates client certificates must chain to (mutual TLS);
    /// absent: clients are not asked for one.
    pub client_ca: Option<PathBuf>,
    /// Whether a client certificate is required, with `client_ca`.
    pub client_auth: ClientAuth,
}

impl TlsFiles {
    /// The files it reads, for watching them.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
    }

    /// A server configuration offering `alpn` (e.g. `h2` for gRPC).
    pub fn server_config(&self, alpn: &[&[u8]]) -> anyhow::Result<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs = certificates(&self.cert, "certificate")?;
        let key = read(&self.key, "key")?;
        let key = PrivateKeyDer::from_pem_slice(&key).map_err(|error| {
            anyhow::anyhow!(
                "TLS key file {}: no private key in it ({error}; expecting PEM `-----BEGIN PRIVATE KEY-----`)",
                self.key.display()
            )
        })?;
        let signing_key = provider
            .key_provider
            .load_private_key(key)
            .map_err(|error| {
                anyhow::anyhow!("TLS key file {}: unusable key: {error}", self.key.display())
            })?;
        let certified = CertifiedKey::new(certs, signing_key);
        certified.keys_match().map_err(|_| {
            anyhow::anyhow!(
                "TLS key file {} does not match the certificate in {}",
                self.key.display(),
                self.cert.display()
            )
        })?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for (index, cert) in certificates(ca, "client CA")?.into_iter().enumerate() {
                    roots.add(cert).map_err(|error| {
                        anyhow::anyhow!(
                            "TLS client CA file {}: certificate {} is not a usable CA: {error}",
                            ca.display(),
                            index + 1
                        )
                    })?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider);
                let verifier = match self.client_auth {
                    ClientAuth::Required => verifier.build(),
                    ClientAuth::Optional => verifier.allow_unauthenticated().build(),
                }
                .map_err(|error| anyhow::anyhow!("TLS client CA file {}: {error}", ca.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config =
            builder.with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        Ok(config)
    }
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|error| {
        anyhow::anyhow!(
            "TLS {what} file {}: cannot read it: {error}",
            path.display()
        )
    })
}

/// Every certificate of a PEM file; at least one.
fn certificates(path: &Path, what: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = read(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| anyhow::anyhow!("TLS {what} file {}: not PEM: {error}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!(
            "TLS {what} file {}: no certificate in it (expecting PEM `-----BEGIN CERTIFICATE-----`)",
            path.display()
        );
    }
    Ok(certs)
}
