//! Validation and compilation of a [`Document`] into a [`Policy`]. Every
//! problem is collected (not just the first) and names its path and value.

use crate::backend::{
    BackendKind, BackendSpec, BackendType, BreakerSpec, FailurePolicy, RedisSpec,
    RedisTopologySpec, StoreSettings, TimeSource, TlsSpec,
};
use crate::condition::{Condition, Family};
use crate::document::{
    Algorithm, BackendDoc, BreakerDoc, ConditionDoc, Document, EnvoyDoc, LimitDoc, NoMatchDoc,
    RuleDoc, WhenFullDoc,
};
use crate::error::{ConfigError, ConfigErrors, Errors};
use crate::key::{IpMasks, KeyPart, KeySource};
use crate::pattern::Pattern;
use crate::policy::{LimitId, LimitSet, LimitSpec, Policy, Rule, Tier};
use crate::rate::{parse_duration, parse_rate};
use crate::settings::{EnvoySettings, RequestCaps, ResponseHeaderNames, Settings};
use ipnet::IpNet;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

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
    };
    (policy, errors.into_found())
}

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
    fn settings(&mut self, document: &Document) -> Settings {
        let s = &document.settings;
        if s.ipv4_prefix > 32 {
            let value = s.ipv4_prefix.to_string();
            self.errors.push(
                "settings.ipv4_prefix",
                Some(&value),
                "an IPv4 prefix length is at most 32",
            );
        }
        if s.ipv6_prefix > 128 {
            let value = s.ipv6_prefix.to_string();
            self.errors.push(
                "settings.ipv6_prefix",
                Some(&value),
                "an IPv6 prefix length is at most 128",
            );
        }
        let caps = &s.request;
        for (name, value) in [
            ("max_descriptors", caps.max_descriptors as u64),
            ("max_value_bytes", caps.max_value_bytes as u64),
            ("max_headers", caps.max_headers as u64),
            ("max_cost", caps.max_cost),
        ] {
            if value == 0 {
                self.errors.push(
                    format!("settings.request.{name}"),
                    Some("0"),
                    "must be at least 1",
                );
            }
        }
        let failure_policy = self
            .errors
            .check(
                "settings.failure_policy",
                &s.failure_policy,
                s.failure_policy.parse(),
            )
            .unwrap_or_default();
        if s.local_replicas == 0 {
            self.errors
                .push("settings.local_replicas", Some("0"), "must be at least 1");
        }
        let trusted_proxies = s
            .trusted_proxies
            .iter()
            .enumerate()
            .filter_map(|(i, network)| {
                self.errors.check(
                    &format!("settings.trusted_proxies[{i}]"),
                    network,
                    parse_network(network),
                )
            })
            .collect();
        if s.ext_authz_domain.is_empty() {
            self.errors
                .push("settings.ext_authz_domain", Some(""), "must not be empty");
        }
        Settings {
            failure_policy,
            local_replicas: s.local_replicas.max(1),
            trusted_proxies,
            ext_authz_domain: s.ext_authz_domain.clone(),
            shadow_mode: s.shadow_mode,
            deny_unmatched: s.on_no_match == NoMatchDoc::Deny,
            ip_masks: IpMasks {
                v4: s.ipv4_prefix,
                v6: s.ipv6_prefix,
            },
            caps: RequestCaps {
                max_descriptors: caps.max_descriptors,
                max_value_bytes: caps.max_value_bytes,
                max_headers: caps.max_headers,
                max_cost: caps.max_cost,
            },
        }
    }

    fn store(&mut self, document: &Document) -> StoreSettings {
        let store = &document.store;
        if store.max_keys == 0 {
            self.errors
                .push("store.max_keys", Some("0"), "must be at least 1");
        }
        let interval = parse_duration(&store.sweep_interval).and_then(|interval| {
            if interval.is_zero() {
                Err("the sweep interval must be longer than 0".to_string())
            } else {
                Ok(interval)
            }
        });
        let sweep_interval = self
            .errors
            .check("store.sweep_interval", &store.sweep_interval, interval)
            .unwrap_or(std::time::Duration::from_secs(10));
        StoreSettings {
            max_keys: store.max_keys,
            deny_when_full: store.when_full == WhenFullDoc::Deny,
            sweep_interval,
        }
    }

    fn backends(&mut self, docs: &[BackendDoc]) -> Vec<BackendSpec> {
        if docs.is_empty() {
            return vec![BackendSpec {
                name: "memory".into(),
                kind: BackendKind::Memory,
            }];
        }
        let mut names = HashSet::new();
        for (i, doc) in docs.iter().enumerate() {
            if doc.name.is_empty() {
                self.errors.push(
                    format!("backends[{i}].name"),
                    Some(""),
                    "a backend needs a name",
                );
            } else if !names.insert(doc.name.as_str()) {
                self.errors.push(
                    format!("backends[{i}].name"),
                    Some(&doc.name),
                    "another backend has this name",
                );
            }
        }
        docs.iter()
            .enumerate()
            .map(|(i, doc)| {
                let path = format!("backends[{i}]");
                let written = doc.kind.parse();
                let kind = match self
                    .errors
                    .check(&format!("{path}.type"), &doc.kind, written)
                {
                    Some(kind) => {
                        self.only_fields(&path, doc, kind);
                        match kind {
                            BackendType::Memory => BackendKind::Memory,
                            BackendType::Redis => {
                                BackendKind::Redis(Box::new(self.redis_backend(&path, doc)))
                            }
                            BackendType::Failover => {
                                BackendKind::Failover(self.failover_members(&path, doc, docs))
                            }
                        }
                    }
                    None => BackendKind::Memory,
                };
                BackendSpec {
                    name: doc.name.clone(),
                    kind,
                }
            })
            .collect()
    }

    /// Reports every field given that belongs to another kind of backend
    /// than `kind`, naming the kind it belongs to.
    fn only_fields(&mut self, path: &str, doc: &BackendDoc, kind: BackendType) {
        use BackendType::{Failover, Memory, Redis};
        let given = [
            ("url", Redis, doc.url.is_some()),
            ("sentinel", Redis, doc.sentinel.is_some()),
            ("cluster", Redis, doc.cluster.is_some()),
            ("username", Redis, doc.username.is_some()),
            ("password", Redis, doc.password.is_some()),
            ("pool_size", Redis, doc.pool_size.is_some()),
            ("command_timeout", Redis, doc.command_timeout.is_some()),
            ("connect_timeout", Redis, doc.connect_timeout.is_some()),
            ("key_prefix", Redis, doc.key_prefix.is_some()),
            ("time_source", Redis, doc.time_source.is_some()),
            ("tls", Redis, doc.tls.is_some()),
            ("breaker", Redis, doc.breaker.is_some()),
            ("members", Failover, !doc.members.is_empty()),
        ];
        for (field, owner, present) in given {
            if present && owner != kind {
                let hint = if kind == Memory && owner == Redis {
                    " (a memory backend is sized by `store:`)"
                } else {
                    ""
                };
                self.errors.push(
                    format!("{path}.{field}"),
                    None,
                    format!("applies to {} backends only{hint}", owner.as_str()),
                );
            }
        }
    }

    /// A failover chain's members: other, non-failover backends.
    fn failover_members(
        &mut self,
        path: &str,
        doc: &BackendDoc,
        docs: &[BackendDoc],
    ) -> Vec<usize> {
        if doc.members.len() < 2 {
            self.errors.push(
                format!("{path}.members"),
                None,
                "a failover chain needs at least two members",
            );
        }
        doc.members
            .iter()
            .enumerate()
            .filter_map(|(i, member)| {
                let member_path = format!("{path}.members[{i}]");
                match docs.iter().position(|other| &other.name == member) {
                    None => {
                        self.errors
                            .push(member_path, Some(member), "no backend has this name");
                        None
                    }
                    Some(index) if docs[index].kind.parse() == Ok(BackendType::Failover) => {
                        self.errors.push(
                            member_path,
                            Some(member),
                            "a failover chain cannot contain another chain",
                        );
                        None
                    }
                    Some(_) if doc.members[..i].contains(member) => {
                        self.errors
                            .push(member_path, Some(member), "listed twice in this chain");
                        None
                    }
                    Some(index) => Some(index),
                }
            })
            .collect()
    }

    fn redis_backend(&mut self, path: &str, doc: &BackendDoc) -> RedisSpec {
        let topology = match (&doc.url, &doc.sentinel, &doc.cluster) {
            (Some(url), None, None) => {
                if !url.starts_with("redis://") && !url.starts_with("rediss://") {
                    self.errors.push(
                        format!("{path}.url"),
                        Some(url),
                        "a Redis URL starts with redis:// (or rediss:// for TLS)",
                    );
                }
                RedisTopologySpec::Standalone(url.clone())
            }
            (None, Some(sentinel), None) => {
                if sentinel.service.is_empty() {
                    self.errors.push(
                        format!("{path}.sentinel.service"),
                        Some(""),
                        "name the monitored service",
                    );
                }
                self.addresses(&format!("{path}.sentinel.addresses"), &sentinel.addresses);
                RedisTopologySpec::Sentinel {
                    service: sentinel.service.clone(),
                    addresses: sentinel.addresses.clone(),
                }
            }
            (None, None, Some(cluster)) => {
                self.addresses(&format!("{path}.cluster.nodes"), &cluster.nodes);
                RedisTopologySpec::Cluster(cluster.nodes.clone())
            }
            _ => {
                self.errors.push(
                    path,
                    None,
                    "a redis backend needs exactly one of `url`, `sentinel` or `cluster`",
                );
                RedisTopologySpec::Standalone(String::new())
            }
        };
        let pool_size = doc.pool_size.unwrap_or(4);
        if pool_size == 0 {
            self.errors
                .push(format!("{path}.pool_size"), Some("0"), "must be at least 1");
        }
        let key_prefix = doc.key_prefix.clone().unwrap_or_else(|| "rl:".into());
        if key_prefix.contains(['{', '}']) {
            self.errors.push(
                format!("{path}.key_prefix"),
                Some(&key_prefix),
                "must not contain braces (Redis Cluster hash tags)",
            );
        }
        let time_source = doc.time_source.as_deref().and_then(|text| {
            self.errors
                .check(&format!("{path}.time_source"), text, text.parse())
        });
        let redis_time = time_source == Some(TimeSource::Redis);
        RedisSpec {
            topology,
            username: doc.username.clone(),
            password: doc.password.clone(),
            pool_size,
            command_timeout: self.positive_duration(
                &format!("{path}.command_timeout"),
                doc.command_timeout.as_deref(),
                Duration::from_millis(20),
            ),
            connect_timeout: self.positive_duration(
                &format!("{path}.connect_timeout"),
                doc.connect_timeout.as_deref(),
                Duration::from_secs(5),
            ),
            key_prefix,
            redis_time,
            breaker: self.breaker(&format!("{path}.breaker"), doc.breaker.as_ref()),
            tls: doc.tls.as_ref().map(|tls| {
                if tls.cert_file.is_some() != tls.key_file.is_some() {
                    self.errors.push(
                        format!("{path}.tls"),
                        None,
                        "give both cert_file and key_file for a client certificate",
                    );
                }
                TlsSpec {
                    ca_file: tls.ca_file.clone(),
                    cert_file: tls.cert_file.clone(),
                    key_file: tls.key_file.clone(),
                }
            }),
        }
    }

    fn breaker(&mut self, path: &str, doc: Option<&BreakerDoc>) -> BreakerSpec {
        let doc = doc.cloned().unwrap_or_default();
        let count = |errors: &mut Errors, field: &str, value: Option<u32>, default: u32| {
            let value = value.unwrap_or(default);
            if value == 0 {
                errors.push(format!("{path}.{field}"), Some("0"), "must be at least 1");
            }
            value.max(1)
        };
        let failure_threshold = count(
            &mut self.errors,
            "failure_threshold",
            doc.failure_threshold,
            5,
        );
        let half_open_max_calls = count(
            &mut self.errors,
            "half_open_max_calls",
            doc.half_open_max_calls,
            1,
        );
        let recovery_timeout = self.positive_duration(
            &format!("{path}.recovery_timeout"),
            doc.recovery_timeout.as_deref(),
            Duration::from_secs(1),
        );
        let max_recovery_timeout = self.positive_duration(
            &format!("{path}.max_recovery_timeout"),
            doc.max_recovery_timeout.as_deref(),
            Duration::from_secs(30).max(recovery_timeout),
        );
        if max_recovery_timeout < recovery_timeout {
            self.errors.push(
                format!("{path}.max_recovery_timeout"),
                doc.max_recovery_timeout.as_deref(),
                "must not be shorter than recovery_timeout",
            );
        }
        BreakerSpec {
            failure_threshold,
            failure_window: self.positive_duration(
                &format!("{path}.failure_window"),
                doc.failure_window.as_deref(),
                Duration::from_secs(10),
            ),
            recovery_timeout,
            max_recovery_timeout,
            half_open_max_calls,
        }
    }

    fn addresses(&mut self, path: &str, addresses: &[String]) {
        if addresses.is_empty() {
            self.errors.push(path, None, "give at least one host:port");
        }
        for (i, address) in addresses.iter().enumerate() {
            let valid = address
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !valid {
                self.errors
                    .push(format!("{path}[{i}]"), Some(address), "not host:port");
            }
        }
    }

    fn positive_duration(&mut self, path: &str, text: Option<&str>, default: Duration) -> Duration {
        let Some(text) = text else { return default };
        let parsed = parse_duration(text).and_then(|duration| {
            if duration.is_zero() {
                Err("must be longer than 0".to_string())
            } else {
                Ok(duration)
            }
        });
        self.errors.check(path, text, parsed).unwrap_or(default)
    }

    fn rule(&mut self, path: &str, doc: &RuleDoc, backends: &[BackendSpec]) -> Rule {
        if doc.name.trim().is_empty() {
            self.errors.push(
                format!("{path}.name"),
                Some(&doc.name),
                "a rule needs a name",
            );
        }
        if doc.domain.as_deref() == Some("") {
            self.errors.push(
                format!("{path}.domain"),
                Some(""),
                "the domain must not be empty (omit it to match every domain)",
            );
        }
        let matches = self.condition(&format!("{path}.match"), &doc.matches);
        let skip_if = doc
            .skip_if
            .as_ref()
            .map(|condition| self.condition(&format!("{path}.skip_if"), condition));
        let key = match &doc.key {
            Some(parts) => self.key(&format!("{path}.key"), parts),
            None => matches
                .descriptor_keys()
                .map(|key| KeyPart(vec![KeySource::Descriptor(key.to_string())]))
                .collect(),
        };
        let (namespace, group) = match &doc.group {
            Some(group) if group.is_empty() => {
                self.errors
                    .push(format!("{path}.group"), Some(""), "a group needs a name");
                (String::new(), None)
            }
            Some(group) => (format!("group:{group}"), Some(group.as_str())),
            None => (format!("rule:{}", doc.name), None),
        };
        let limits = self.limit_set(
            path,
            LimitSource {
                rate: doc.rate.as_deref(),
                beside_rate: BesideRate {
                    algorithm: doc.algorithm,
                    burst: doc.burst,
                    initial_tokens: doc.initial_tokens,
                    count_denied: doc.count_denied,
                },
                limits: &doc.limits,
                unlimited: doc.unlimited,
            },
            group,
            "",
        );
        let mut tier_names = HashSet::new();
        let tiers = doc
            .tiers
            .iter()
            .enumerate()
            .map(|(i, tier)| {
                let tier_path = format!("{path}.tiers[{i}]");
                if tier.name.is_empty() {
                    self.errors
                        .push(format!("{tier_path}.name"), Some(""), "a tier needs a name");
                } else if !tier_names.insert(tier.name.as_str()) {
                    self.errors.push(
                        format!("{tier_path}.name"),
                        Some(&tier.name),
                        "another tier of this rule has this name",
                    );
                }
                Tier {
                    name: tier.name.clone(),
                    when: self.condition(&format!("{tier_path}.when"), &tier.when),
                    limits: self.limit_set(
                        &tier_path,
                        LimitSource {
                            rate: tier.rate.as_deref(),
                            beside_rate: BesideRate {
                                algorithm: tier.algorithm,
                                burst: tier.burst,
                                initial_tokens: tier.initial_tokens,
                                count_denied: tier.count_denied,
                            },
                            limits: &tier.limits,
                            unlimited: tier.unlimited,
                        },
                        group,
                        &tier.name,
                    ),
                }
            })
            .collect();
        let backend =
            self.backend_index(&format!("{path}.backend"), doc.backend.as_ref(), backends);
        let failure_policy = match &doc.failure_policy {
            None => self.default_failure_policy,
            Some(text) => self
                .errors
                .check(&format!("{path}.failure_policy"), text, text.parse())
                .unwrap_or_default(),
        };
        Rule {
            name: doc.name.clone(),
            shadow: doc.shadow,
            backend,
            failure_policy,
            family: self.family_id(matches.family()),
            specificity: matches.specificity(),
            matches,
            skip_if,
            key,
            limits,
            tiers,
            namespace,
        }
    }

    /// The index of the backend `name` (the first when absent).
    fn backend_index(
        &mut self,
        path: &str,
        name: Option<&String>,
        backends: &[BackendSpec],
    ) -> usize {
        let Some(name) = name else {
            return 0;
        };
        backends
            .iter()
            .position(|backend| &backend.name == name)
            .unwrap_or_else(|| {
                let known: Vec<&str> = backends.iter().map(|b| b.name.as_str()).collect();
                self.errors.push(
                    path,
                    Some(name),
                    format!("no backend has this name (backends: {})", known.join(", ")),
                );
                0
            })
    }

    /// `envoy:`.
    fn envoy(&mut self, doc: &EnvoyDoc, backends: &[BackendSpec]) -> EnvoySettings {
        let failure_policy = match &doc.failure_policy {
            None => self.default_failure_policy,
            Some(text) => self
                .errors
                .check("envoy.failure_policy", text, text.parse())
                .unwrap_or_default(),
        };
        let headers = &doc.response_headers;
        for (name, value) in [
            ("limit", &headers.limit),
            ("remaining", &headers.remaining),
            ("reset", &headers.reset),
        ] {
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                self.errors.push(
                    format!("envoy.response_headers.{name}"),
                    Some(value),
                    "not a valid HTTP header name",
                );
            }
        }
        EnvoySettings {
            config_dir: doc.config_dir.clone(),
            backend: self.backend_index("envoy.backend", doc.backend.as_ref(), backends),
            failure_policy,
            response_headers: headers.enabled.then(|| ResponseHeaderNames {
                limit: headers.limit.clone(),
                remaining: headers.remaining.clone(),
                reset: headers.reset.clone(),
            }),
        }
    }

    fn family_id(&mut self, family: Family) -> usize {
        let next = self.families.len();
        *self.families.entry(family).or_insert(next)
    }

    fn limit_set(
        &mut self,
        path: &str,
        source: LimitSource<'_>,
        group: Option<&str>,
        tier: &str,
    ) -> LimitSet {
        let given = [
            source.rate.is_some(),
            !source.limits.is_empty(),
            source.unlimited,
        ]
        .iter()
        .filter(|given| **given)
        .count();
        if given != 1 {
            self.errors.push(
                path,
                None,
                "give exactly one of `rate`, `limits` or `unlimited: true`",
            );
            return LimitSet::Unlimited;
        }
        let beside_rate = source.beside_rate;
        if source.rate.is_none() {
            for field in beside_rate.given() {
                self.errors.push(
                    format!("{path}.{field}"),
                    None,
                    format!("`{field}` goes with `rate:`; each entry of `limits:` takes its own"),
                );
            }
        }
        if source.unlimited {
            return LimitSet::Unlimited;
        }
        if let Some(rate) = source.rate {
            let shorthand = LimitDoc {
                name: None,
                rate: rate.to_string(),
                algorithm: beside_rate.algorithm,
                burst: beside_rate.burst,
                initial_tokens: beside_rate.initial_tokens,
                count_denied: beside_rate.count_denied.unwrap_or(false),
            };
            let id = self.limit(
                LimitPlace::Shorthand(path),
                &shorthand,
                "default",
                group,
                tier,
            );
            return LimitSet::Limits(id.into_iter().collect());
        }
        let mut names = HashSet::new();
        let ids = source
            .limits
            .iter()
            .enumerate()
            .filter_map(|(i, limit)| {
                let limit_path = format!("{path}.limits[{i}]");
                let name = match &limit.name {
                    Some(name) if !name.is_empty() => name.clone(),
                    Some(_) => {
                        self.errors.push(
                            format!("{limit_path}.name"),
                            Some(""),
                            "a limit name must not be empty",
                        );
                        return None;
                    }
                    None if source.limits.len() == 1 => "default".to_string(),
                    None => {
                        self.errors.push(
                            format!("{limit_path}.name"),
                            None,
                            "name each limit of a rule with several limits",
                        );
                        return None;
                    }
                };
                if !names.insert(name.clone()) {
                    self.errors.push(
                        format!("{limit_path}.name"),
                        Some(&name),
                        "another limit of this rule has this name",
                    );
                }
                self.limit(LimitPlace::Entry(&limit_path), limit, &name, group, tier)
            })
            .collect();
        LimitSet::Limits(ids)
    }

    fn limit(
        &mut self,
        place: LimitPlace<'_>,
        doc: &LimitDoc,
        name: &str,
        group: Option<&str>,
        tier: &str,
    ) -> Option<LimitId> {
        let field = |name: &str| place.field(name);
        let rate = self
            .errors
            .check(&field("rate"), &doc.rate, parse_rate(&doc.rate))?;
        let algorithm = doc.algorithm.unwrap_or(self.default_algorithm);
        let burst = doc.burst.unwrap_or(rate.count);
        let initial_tokens = doc.initial_tokens.unwrap_or(burst);
        let mut valid = true;
        if doc.burst.is_some() && !matches!(algorithm, Algorithm::TokenBucket | Algorithm::Gcra) {
            self.errors.push(
                field("burst"),
                Some(&burst.to_string()),
                "burst applies to token_bucket and gcra only",
            );
            valid = false;
        }
        if doc.burst == Some(0) && rate.count > 0 {
            self.errors.push(
                field("burst"),
                Some("0"),
                "a burst of 0 admits nothing: use a rate of 0 to block",
            );
            valid = false;
        }
        if doc.initial_tokens.is_some() && algorithm != Algorithm::TokenBucket {
            self.errors.push(
                field("initial_tokens"),
                Some(&initial_tokens.to_string()),
                "initial_tokens applies to token_bucket only",
            );
            valid = false;
        } else if initial_tokens > burst {
            self.errors.push(
                field("initial_tokens"),
                Some(&initial_tokens.to_string()),
                format!("initial_tokens exceed the bucket's capacity ({burst})"),
            );
            valid = false;
        }
        if doc.count_denied
            && !matches!(algorithm, Algorithm::FixedWindow | Algorithm::SlidingWindow)
        {
            self.errors.push(
                field("count_denied"),
                Some("true"),
                "count_denied applies to fixed_window and sliding_window only",
            );
            valid = false;
        }
        if !valid {
            return None;
        }
        let spec = LimitSpec {
            id: self.limits.len(),
            name: name.to_string(),
            rate,
            algorithm,
            burst,
            initial_tokens,
            count_denied: doc.count_denied,
            path: place.spec_path(),
        };
        if let Some(group) = group {
            let shared = (group.to_string(), tier.to_string(), name.to_string());
            if let Some(&first) = self.group_limits.get(&shared) {
                let first = &self.limits[first];
                if (
                    first.rate,
                    first.algorithm,
                    first.burst,
                    first.initial_tokens,
                    first.count_denied,
                ) != (
                    spec.rate,
                    spec.algorithm,
                    spec.burst,
                    spec.initial_tokens,
                    spec.count_denied,
                ) {
                    let message = format!(
                        "group `{group}` shares limit `{name}` with {}, which declares it differently",
                        first.path
                    );
                    self.errors
                        .push(spec.path.clone(), Some(&doc.rate), message);
                    return None;
                }
            } else {
                self.group_limits.insert(shared, spec.id);
            }
        }
        self.limits.push(spec);
        Some(self.limits.len() - 1)
    }

    fn key(&mut self, path: &str, parts: &[String]) -> Vec<KeyPart> {
        parts
            .iter()
            .enumerate()
            .filter_map(|(i, part)| {
                let sources: Result<Vec<KeySource>, String> =
                    part.split('|').map(KeySource::parse).collect();
                self.errors
                    .check(&format!("{path}[{i}]"), part, sources)
                    .map(KeyPart)
            })
            .collect()
    }

    fn condition(&mut self, path: &str, doc: &ConditionDoc) -> Condition {
        let mut descriptors = Vec::new();
        for (i, entry) in doc.descriptors.iter().enumerate() {
            let entry_path = format!("{path}.descriptors[{i}]");
            if entry.key.is_empty() {
                self.errors.push(
                    format!("{entry_path}.key"),
                    Some(""),
                    "a descriptor key must not be empty",
                );
                continue;
            }
            let pattern = match (&entry.value, &entry.regex) {
                (Some(_), Some(_)) => {
                    self.errors
                        .push(entry_path, None, "give `value` or `regex`, not both");
                    continue;
                }
                (Some(value), None) => Pattern::from_glob(value),
                (None, Some(regex)) => {
                    let Some(pattern) = self.errors.check(
                        &format!("{entry_path}.regex"),
                        regex,
                        Pattern::regex(regex),
                    ) else {
                        continue;
                    };
                    pattern
                }
                (None, None) => Pattern::Any,
            };
            if descriptors.iter().any(|(key, _)| key == &entry.key) {
                self.errors.push(
                    format!("{entry_path}.key"),
                    Some(&entry.key),
                    "this key is already matched in this condition",
                );
                continue;
            }
            descriptors.push((entry.key.clone(), pattern));
        }
        descriptors.sort_by(|a, b| a.0.cmp(&b.0));
        let path_pattern = match (&doc.path, &doc.path_prefix) {
            (Some(_), Some(_)) => {
                self.errors
                    .push(path, None, "give `path` or `path_prefix`, not both");
                None
            }
            (Some(exact_or_glob), None) => Some(Pattern::from_glob(exact_or_glob)),
            (None, Some(prefix)) => Some(Pattern::Wildcard(format!("{prefix}*"))),
            (None, None) => None,
        };
        let methods = doc
            .methods
            .iter()
            .enumerate()
            .filter_map(|(i, method)| {
                let valid = !method.is_empty() && method.chars().all(|c| c.is_ascii_alphabetic());
                self.errors
                    .check(
                        &format!("{path}.methods[{i}]"),
                        method,
                        if valid {
                            Ok(())
                        } else {
                            Err("not an HTTP method".into())
                        },
                    )
                    .map(|()| method.to_ascii_uppercase())
            })
            .collect();
        let headers = doc
            .headers
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), Pattern::from_glob(value)))
            .collect();
        let client_ip = doc
            .client_ip
            .iter()
            .enumerate()
            .filter_map(|(i, network)| {
                self.errors.check(
                    &format!("{path}.client_ip[{i}]"),
                    network,
                    parse_network(network),
                )
            })
            .collect();
        Condition {
            descriptors,
            path: path_pattern,
            methods,
            headers,
            client_ip,
            users: doc.users.clone(),
            api_keys: doc.api_keys.clone(),
        }
    }
}

/// Where a rule or tier declares its limits.
struct LimitSource<'d> {
    rate: Option<&'d str>,
    beside_rate: BesideRate,
    limits: &'d [LimitDoc],
    unlimited: bool,
}

/// What a rule or tier may write beside its `rate:` shorthand.
#[derive(Clone, Copy)]
struct BesideRate {
    algorithm: Option<Algorithm>,
    burst: Option<u64>,
    initial_tokens: Option<u64>,
    count_denied: Option<bool>,
}

impl BesideRate {
    /// The fields written, by name.
    fn given(&self) -> impl Iterator<Item = &'static str> {
        [
            ("algorithm", self.algorithm.is_some()),
            ("burst", self.burst.is_some()),
            ("initial_tokens", self.initial_tokens.is_some()),
            ("count_denied", self.count_denied.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
    }
}

/// Where a limit is written: an entry of `limits:` (`rules[0].limits[1]`),
/// or the `rate:` shorthand, whose fields sit on the rule or tier itself
/// (`rules[0]`, with the rate at `rules[0].rate`).
#[derive(Clone, Copy)]
enum LimitPlace<'p> {
    Entry(&'p str),
    Shorthand(&'p str),
}

impl LimitPlace<'_> {
    /// The path of one of the limit's fields.
    fn field(self, name: &str) -> String {
        let (Self::Entry(path) | Self::Shorthand(path)) = self;
        format!("{path}.{name}")
    }

    /// The path naming the limit in errors about it as a whole: the entry,
    /// or the shorthand's rate.
    fn spec_path(self) -> String {
        match self {
            Self::Entry(path) => path.to_string(),
            Self::Shorthand(_) => self.field("rate"),
        }
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
