//! Validation and compilation of a [`Document`] into a [`Policy`]. Every
//! problem is collected (not just the first) and names its path and value.
//!
//! The entry points and the `Compiler` walking the document are here; its
//! methods are split by domain: `settings.rs` for the service and its
//! backends, `rules.rs` for the rules and the `envoy:` section, `limits.rs`
//! for the limits of rules and tiers, `declared.rs` for the `declared:`
//! section, `auth.rs` for the `auth:` section and secrets.

mod auth;
mod declared;
mod limits;
mod rules;
mod settings;

use crate::backend::FailurePolicy;
use crate::condition::Family;
use crate::document::{Algorithm, Document};
use crate::error::{ConfigError, ConfigErrors, Errors};
use crate::limit::{LimitId, LimitSpec};
use crate::policy::Policy;
use ipnet::IpNet;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

/// Validates `document` (read from `file`) and compiles it.
pub fn compile(document: &Document, file: &str) -> Result<Policy, ConfigErrors> {
    let (policy, errors) = compile_partly(document, file);
    if errors.is_empty() {
        Ok(policy)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Compiles what is valid of `document`, and returns every problem found.
pub fn compile_partly(document: &Document, file: &str) -> (Policy, Vec<ConfigError>) {
    let mut compiler = Compiler {
        errors: Errors::new(file),
        limits: Vec::new(),
        group_limits: HashMap::new(),
        families: HashMap::new(),
        default_algorithm: document.settings.default_algorithm,
        default_failure_policy: document.settings.failure_policy.parse().unwrap_or_default(),
    };
    let settings = compiler.settings(document);
    let store = compiler.store(document);
    let backends = compiler.backends(&document.backends);
    let skip = document
        .skip
        .iter()
        .enumerate()
        .map(|(i, condition)| compiler.condition(&format!("skip[{i}]"), condition))
        .collect();
    let mut names = HashSet::new();
    let mut rules = Vec::new();
    for (index, rule) in document.rules.iter().enumerate() {
        let path = format!("rules[{index}]");
        if !rule.name.is_empty() && !names.insert(rule.name.as_str()) {
            compiler.errors.push(
                format!("{path}.name"),
                Some(&rule.name),
                "another rule has this name",
            );
        }
        rules.push(compiler.rule(&path, rule, &backends));
    }
    let mut by_domain: HashMap<String, Vec<usize>> = HashMap::new();
    let any_domain: Vec<usize> = (0..rules.len())
        .filter(|&i| document.rules[i].domain.is_none())
        .collect();
    for (index, rule) in document.rules.iter().enumerate() {
        if let Some(domain) = &rule.domain {
            by_domain.entry(domain.clone()).or_default().push(index);
        }
    }
    for indices in by_domain.values_mut() {
        indices.extend(&any_domain);
        indices.sort_unstable();
    }
    let envoy = compiler.envoy(&document.envoy, &backends);
    let declared = compiler.declared(&document.declared, &backends);
    let auth = compiler.auth(document.auth.as_ref());
    let Compiler { errors, limits, .. } = compiler;
    let policy = Policy {
        settings,
        store,
        skip,
        rules,
        by_domain,
        any_domain,
        limits,
        backends,
        envoy,
        declared,
        auth,
    };
    (policy, errors.into_found())
}

/// Walks a document once, collecting every error; the limits are numbered
/// as they are met, across rules and tiers.
struct Compiler {
    errors: Errors,
    limits: Vec<LimitSpec>,
    /// `(group, tier, limit name)` → the first declaration, to keep shared
    /// counters consistent.
    group_limits: HashMap<(String, String, String), LimitId>,
    /// Each distinct family, numbered in order of appearance.
    families: HashMap<Family, usize>,
    default_algorithm: Algorithm,
    default_failure_policy: FailurePolicy,
}

impl Compiler {
    /// The networks of a list (`settings.trusted_proxies`, a condition's
    /// `client_ip`), each error at its entry's path.
    fn networks(&mut self, path: &str, list: &[String]) -> Vec<IpNet> {
        list.iter()
            .enumerate()
            .filter_map(|(i, network)| {
                self.errors
                    .check(&format!("{path}[{i}]"), network, parse_network(network))
            })
            .collect()
    }
}

/// Parses `10.0.0.0/8`, `2001:db8::/32` or a bare address. IPv4-mapped
/// IPv6 networks (`::ffff:10.0.0.0/104`) become the IPv4 networks they
/// map, as client addresses are compared in their canonical form.
fn parse_network(text: &str) -> Result<IpNet, String> {
    let network = text
        .parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| "not an IP address or CIDR network".to_string())?;
    Ok(match network {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96)
                .expect("a prefix of at most 32 bits"),
            None => network,
        },
        _ => network,
    })
}
