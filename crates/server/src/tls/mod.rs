//! TLS and mutual TLS on the service's listeners (rustls, ring): the
//! certificate, key and optional client CA files (`files.rs`), reloaded
//! when they change so cert-manager's rotations take effect on new
//! connections while open ones go on (`reload.rs`), and the handshakes
//! done off the accept loop, for the gRPC port and the HTTP port
//! (`incoming.rs`).

mod files;
mod incoming;
mod reload;

pub use files::{ClientAuth, TlsFiles};
pub use incoming::{handshaken, HttpPeer, TlsListener};
pub use reload::ReloadingTls;
