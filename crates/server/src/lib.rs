//! ratelimitd, the service: protocol adapters over one decision core, the
//! policy and the engine.
//!
//! # Layout
//!
//! - [`service`]: the composition root. [`service::start`] connects the
//!   backends and starts everything from a loaded configuration;
//!   [`service::Service::run`] serves until told to stop, then drains.
//!   `service::reload` puts a new configuration in force, all or nothing.
//! - [`api`]: the protocol adapters (CheckLimit, Envoy's RLS and ext_authz,
//!   Admin, health, the HTTP port), each a translation into the decision
//!   core's checks and back, behind one per-RPC layer.
//! - [`decide`]: the decision core: route checks to their backends within
//!   the caller's budget, apply failure policies, record the outcomes.
//! - [`state`]: what the running service decides with (the configuration
//!   in force, the backends, metrics, draining).
//! - [`backends`]: the backends connected once at startup.
//! - [`config`]: where the configuration comes from, loading and
//!   validating it, and turning its specs into engine values.
//! - [`telemetry`]: metrics, logs, traces and denial events.
//!
//! The `ratelimitd` binary (`main.rs`, `cli/`) parses the command line,
//! calls [`service::start`], and holds the client commands (`check`,
//! `inspect`, `health`, `bench`).

pub mod api;
pub mod auth;
pub mod backends;
pub mod config;
pub mod decide;
pub mod service;
pub mod state;
pub mod telemetry;
pub mod tls;
