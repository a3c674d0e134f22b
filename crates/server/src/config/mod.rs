//! The configuration: where it comes from ([`Sources`]), loading and
//! validating it into what the service runs ([`LoadedPolicy`],
//! [`LoadedEnvoy`]), and the conversion of its specs into engine values.
//! Knows nothing of the running service: putting a configuration in force
//! is `service::reload`'s job.

mod engine;
mod envoy_env;
mod load;
mod sources;

pub use engine::{
    breaker_options, deny_cache_options, memory_store_options, override_limits, redis_options,
    request_limits,
};
pub use envoy_env::EnvoyEnvironment;
pub use load::{LoadedEnvoy, LoadedPolicy, EXAMPLE_POLICY_NAME, EXAMPLE_POLICY_PATH};
pub use sources::{GeneratedPolicy, Loaded, Sources};
