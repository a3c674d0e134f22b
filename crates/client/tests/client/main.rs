//! The client against the real `ratelimitd` binary: `RATELIMITD_BIN`, or
//! `ratelimitd` beside this test's own target directory, which `cargo test
//! --workspace` builds with the server's tests (alone: `cargo build -p
//! ratelimitd-server` first).

mod check;
mod failure;
mod layer;
mod security;
mod support;
