//! The protocol adapters: each translates its protocol into the decision
//! core's checks and the core's outcomes back, and nothing more.
//!
//! - `check_limit/`: ratelimitd's own `CheckLimit` (and `Admin/Inspect`);
//! - `rls/`: Envoy's rate limit service v3, a drop-in for
//!   envoyproxy/ratelimit (and its JSON form);
//! - `ext_authz`: Envoy's ext_authz v3, mapped onto `CheckLimit`;
//! - `admin`, `health`: the backends and the truth about serving;
//! - `grpc` (every gRPC service behind `layer`: timing, deadline budget),
//!   `http` (the HTTP port: health, metrics, `/config`, `/json`), both
//!   within `limits` (message and body sizes, streams, connections); the
//!   gRPC port's connections through `coalesce` (responses written
//!   together).

pub mod admin;
pub mod authorize;
pub mod check_limit;
mod client_ip;
mod coalesce;
mod config_view;
pub mod ext_authz;
mod fields;
pub mod grpc;
mod health;
pub mod http;
pub mod layer;
pub mod limits;
pub mod rls;
