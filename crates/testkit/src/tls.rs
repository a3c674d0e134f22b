//! A standalone Redis that also listens with TLS, and the certificates for
//! it, made with the `openssl` command: a CA, a server certificate for
//! `127.0.0.1`, and a client certificate for mutual TLS.

use crate::{ports, RedisOptions, RedisServer};
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

/// PEM files made for one test.
#[derive(Debug)]
pub struct TlsFiles {
    /// The CA certificate that signed the other two.
    pub ca_cert: PathBuf,
    /// The server's certificate (`IP:127.0.0.1`) and key.
    pub server_cert: PathBuf,
    /// The server's private key.
    pub server_key: PathBuf,
    /// A client certificate for mutual TLS.
    pub client_cert: PathBuf,
    /// The client's private key.
    pub client_key: PathBuf,
    _dir: TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (install it: apt-get install openssl)");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl TlsFiles {
    /// A fresh CA, server and client certificate in a temporary directory.
    pub fn generate() -> TlsFiles {
        let dir = tempfile::Builder::new()
            .prefix("ratelimitd-tls-")
            .tempdir()
            .expect("create a temporary directory for certificates");
        let path = dir.path();
        openssl(
            path,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=ratelimitd test CA",
            ],
        );
        // Extensions make X.509 v3 certificates (rustls refuses v1).
        sign(
            path,
            "server",
            "/CN=127.0.0.1",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth",
        );
        sign(
            path,
            "client",
            "/CN=ratelimitd test client",
            "extendedKeyUsage=clientAuth",
        );
        TlsFiles {
            ca_cert: path.join("ca.crt"),
            server_cert: path.join("server.crt"),
            server_key: path.join("server.key"),
            client_cert: path.join("client.crt"),
            client_key: path.join("client.key"),
            _dir: dir,
        }
    }

    fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// Signs `name.crt` (and `name.key`) with the CA, for the subject
    /// `CN=common_name` and the extensions `ext` (OpenSSL's syntax, e.g.
    /// `subjectAltName=URI:spiffe://x\nextendedKeyUsage=clientAuth`), and
    /// returns the certificate's and key's paths.
    pub fn issue(&self, name: &str, common_name: &str, ext: &str) -> (PathBuf, PathBuf) {
        sign(self.dir(), name, &format!("/CN={common_name}"), ext)
    }

    /// A client certificate named `common_name` with the SAN `san` (e.g.
    /// `DNS:team-b.internal` or `URI:spiffe://cluster.local/ns/a/sa/b`).
    pub fn issue_client(&self, name: &str, common_name: &str, san: &str) -> (PathBuf, PathBuf) {
        self.issue(
            name,
            common_name,
            &format!("subjectAltName={san}\nextendedKeyUsage=clientAuth"),
        )
    }

    /// Replaces the server's certificate and key with a newly issued pair
    /// (as cert-manager rotates them: each file renamed into place), and
    /// returns the new certificate's PEM.
    pub fn rotate_server(&self) -> String {
        let (cert, key) = self.issue(
            "rotated",
            "127.0.0.1",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth",
        );
        std::fs::rename(&key, &self.server_key).expect("replace the server key");
        std::fs::rename(&cert, &self.server_cert).expect("replace the server certificate");
        std::fs::read_to_string(&self.server_cert).expect("read the new certificate")
    }
}

/// A Redis listening on a plain port (for [`RedisServer::cli`] and
/// readiness) and on a TLS port.
#[derive(Debug)]
pub struct TlsRedis {
    /// The server (its plain port).
    pub server: RedisServer,
    /// The TLS port.
    pub tls_port: u16,
    /// The certificates it uses.
    pub files: TlsFiles,
}

impl TlsRedis {
    /// Starts it; with `require_client_cert`, TLS clients must present a
    /// certificate signed by the CA.
    pub fn start(require_client_cert: bool) -> TlsRedis {
        let files = TlsFiles::generate();
        let tls_port = ports::free_port();
        let path = |p: &Path| p.display().to_string();
        let server = RedisServer::start_with(RedisOptions::default().with_args([
            "--tls-port".to_string(),
            tls_port.to_string(),
            "--tls-cert-file".into(),
            path(&files.server_cert),
            "--tls-key-file".into(),
            path(&files.server_key),
            "--tls-ca-cert-file".into(),
            path(&files.ca_cert),
            "--tls-auth-clients".into(),
            (if require_client_cert { "yes" } else { "no" }).into(),
        ]));
        TlsRedis {
            server,
            tls_port,
            files,
        }
    }

    /// `rediss://127.0.0.1:TLS_PORT`.
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.tls_port)
    }
}

/// Signs `name.crt` (and `name.key`) in `dir` with the CA there (`ca.crt`,
/// `ca.key`), for `subject` and the extensions `ext` (OpenSSL's syntax);
/// the certificate's and key's paths.
fn sign(dir: &Path, name: &str, subject: &str, ext: &str) -> (PathBuf, PathBuf) {
    let (key, csr, crt, ext_file) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
        format!("{name}.ext"),
    );
    std::fs::write(
        dir.join(&ext_file),
        format!("basicConstraints=CA:FALSE\n{ext}\n"),
    )
    .expect("write the extensions file");
    openssl(
        dir,
        &[
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", subject,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &ext_file,
        ],
    );
    (dir.join(crt), dir.join(key))
}
