//! The ratelimitd policy: the configuration model and the matcher. Pure: no
//! I/O, no async, no knowledge of stores or protocols.
//!
//! 1. [`parse_document`] turns a file's text (YAML or TOML) plus
//!    `RATELIMITD_*__*` environment overrides into a [`Document`], taking
//!    out (and reporting) every unknown key and badly typed value.
//! 2. [`compile`] validates it into a [`Policy`], reporting every problem with
//!    file, path and value. [`load`] does both and reports all at once.
//! 3. [`Policy::plan`] says which limits apply to a request, under which
//!    counter keys; [`Policy::declare`] does the same for the limits the
//!    request declares, within the policy's gate.

mod auth;
mod backend;
mod compile;
mod condition;
mod declared;
mod document;
mod envoy;
mod error;
mod key;
mod limit;
mod load;
mod pattern;
mod policy;
mod rate;
mod request;
mod secret;
mod settings;

pub use auth::{AuthSettings, Identity, Permissions};
pub use backend::{
    BackendKind, BackendSpec, BreakerSpec, DenyCacheSpec, FailurePolicy, RedisSpec,
    RedisTopologySpec, StoreSettings, TlsSpec,
};
pub use compile::{compile, compile_partly};
pub use condition::Condition;
pub use declared::{
    DeclareError, Declared, DeclaredCheck, DeclaredSettings, UNNAMED_DECLARED_LABEL,
};
pub use document::*;
pub use envoy::{
    load_envoy_files, EnvoyConfig, EnvoyDescriptor, EnvoyFileOptions, EnvoyLimit, EnvoyLoad,
    EnvoyMatch, EnvoyPlan, Unit,
};
pub use error::{sort_in_document_order, ConfigError, ConfigErrors};
pub use key::{IpMasks, KeyPart, KeySource};
pub use limit::{LimitId, LimitSpec};
pub use load::{overrides_from, parse_document, Format, ParsedDocument, ENV_PREFIX};
pub use pattern::{wildcard_match, Pattern, Specificity};
pub use policy::{Plan, PlannedCheck, Policy, Rule};
pub use rate::{parse_duration, parse_rate, Rate};
pub use request::{Attributes, RequestAttributes};
pub use secret::{Secret, SecretKind, SecretSource};
pub use settings::{EnvoySettings, RequestCaps, ResponseHeaderNames, Settings};

/// Parses and compiles a configuration in one step, reporting every error.
pub fn load(
    text: &str,
    format: Format,
    origin: &str,
    overrides: &[(String, String)],
) -> Result<Policy, ConfigErrors> {
    let (policy, errors) = load_partly(text, format, origin, overrides)?;
    if errors.is_empty() {
        Ok(policy)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Parses and compiles a configuration as far as it goes: the policy made
/// of what is valid, and every error found, in document order. Callers that
/// check more (the service checks each limit's ranges against the engine)
/// add theirs before failing. Fails at once only when the text cannot be
/// read at all.
pub fn load_partly(
    text: &str,
    format: Format,
    origin: &str,
    overrides: &[(String, String)],
) -> Result<(Policy, Vec<ConfigError>), ConfigErrors> {
    let parsed = parse_document(text, format, origin, overrides)?;
    let (policy, semantic) = compile_partly(&parsed.document, origin);
    let mut errors = parsed.errors.clone();
    errors.extend(semantic.into_iter().filter(|e| !parsed.is_consequence(e)));
    sort_in_document_order(&mut errors);
    Ok((policy, errors))
}
