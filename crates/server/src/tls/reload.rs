//! A TLS configuration that follows its files: each new connection asks
//! for the acceptor, which re-reads the files when their size or
//! modification time changed (cert-manager and Kubernetes replace them,
//! often through a symbolic link). A rotation that cannot be read (files
//! half written, a key that does not match) keeps the configuration in
//! force and is logged once; open connections are never touched.

use super::files::TlsFiles;
use arc_swap::ArcSwap;
use rustls::ServerConfig;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio_rustls::TlsAcceptor;

/// What the files looked like: size and modification time of each.
type Stamp = Vec<Option<(u64, SystemTime)>>;

/// A listener's TLS configuration, reloaded when its files change.
pub struct ReloadingTls {
    files: TlsFiles,
    alpn: Vec<Vec<u8>>,
    current: ArcSwap<ServerConfig>,
    /// The files' stamp when last read (successfully or not).
    read_at: Mutex<Stamp>,
}

impl ReloadingTls {
    /// Reads `files` now: an error names the file and the problem.
    pub fn new(files: TlsFiles, alpn: &[&[u8]]) -> anyhow::Result<Self> {
        let read_at = stamp(&files);
        let config = files.server_config(alpn)?;
        Ok(Self {
            alpn: alpn.iter().map(|protocol| protocol.to_vec()).collect(),
            files,
            current: ArcSwap::from_pointee(config),
            read_at: Mutex::new(read_at),
        })
    }

    /// The acceptor for a new connection: the files re-read first if they
    /// changed since last read.
    pub fn acceptor(&self) -> TlsAcceptor {
        let now = stamp(&self.files);
        let mut read_at = self.read_at.lock().unwrap_or_else(|e| e.into_inner());
        if *read_at != now {
            *read_at = now;
            let alpn: Vec<&[u8]> = self.alpn.iter().map(Vec::as_slice).collect();
            match self.files.server_config(&alpn) {
                Ok(config) => {
                    self.current.store(Arc::new(config));
                    tracing::info!(cert = %self.files.cert.display(), "TLS files changed: reloaded");
                }
                Err(error) => tracing::warn!(
                    error = %format!("{error:#}"),
                    "TLS files changed but cannot be used; serving with the previous ones"
                ),
            }
        }
        TlsAcceptor::from(self.current.load_full())
    }
}

fn stamp(files: &TlsFiles) -> Stamp {
    files
        .paths()
        .map(|path| {
            let metadata = std::fs::metadata(path).ok()?;
            Some((metadata.len(), metadata.modified().ok()?))
        })
        .collect()
}
