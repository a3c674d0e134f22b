//! envoyproxy/ratelimit compatibility: its YAML descriptor files, validated
//! as the reference service validates them, and the matching of RLS v3
//! request descriptors against them.
//!
//! Our extension keys (`algorithm`, `window`, `burst`, `count_denied`,
//! `limits`, `value_regex`, `failure_policy`) are optional; a file without
//! them means exactly what it means to the reference service: epoch-aligned
//! fixed windows per unit where every hit counts, denied or not.

mod load;
mod metric_key;
mod tree;
mod unit;

pub use load::{load_envoy_files, EnvoyFileOptions, EnvoyLoad};
pub use tree::{EnvoyConfig, EnvoyDescriptor, EnvoyLimit, EnvoyMatch, EnvoyPlan};
pub use unit::Unit;
