//! The policy crate's integration tests, one binary (each `tests/*.rs` file
//! would be a binary of its own, linking the crate again): configuration
//! errors, envoyproxy/ratelimit files, and how requests are planned.

mod auth;
mod config_errors;
mod declared;
mod envoy_files;
mod matching;
