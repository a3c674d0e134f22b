//! The ratelimitd policy: the configuration model and the matcher. Pure: no
//! I/O, no async, no knowledge of stores or protocols.
//!
//! 1. [`parse_document`] turns a file's text (YAML or TOML) plus
//!    `RATELIMITD_*__*` environment overrides into a [`Document`].
//! 2. [`compile`] validates it into a [`Policy`], reporting every problem with
//!    file, path and value.
//! 3. [`Policy::plan`] says which limits apply to a request, under which
//!    counter keys.

mod compile;
mod condition;
mod document;
mod envoy;
mod error;
mod key;
mod load;
mod pattern;
mod policy;
mod rate;
mod request;

pub use compile::compile;
pub use condition::Condition;
pub use document::*;
pub use envoy::{
    load_envoy_files, EnvoyConfig, EnvoyDescriptor, EnvoyLimit, EnvoyLoad, EnvoyMatch, EnvoyPlan,
    Unit,
};
pub use error::{ConfigError, ConfigErrors};
pub use key::{IpMasks, KeyPart, KeySource};
pub use load::{overrides_from, parse_document, Format, ENV_PREFIX};
pub use pattern::{wildcard_match, Pattern, Specificity};
pub use policy::{
    BackendKind, BackendSpec, BreakerSpec, EnvoySettings, FailurePolicy, LimitId, LimitSpec, Plan,
    PlannedCheck, Policy, RedisSpec, RedisTopologySpec, RequestCaps, ResponseHeaderNames, Rule,
    Settings, StoreSettings, TlsSpec,
};
pub use rate::{parse_duration, parse_rate, Rate};
pub use request::{Attributes, RequestAttributes};

/// Parses and compiles a configuration in one step.
pub fn load(
    text: &str,
    format: Format,
    origin: &str,
    overrides: &[(String, String)],
) -> Result<Policy, ConfigErrors> {
    compile(&parse_document(text, format, origin, overrides)?, origin)
}
