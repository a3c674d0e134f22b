//! Service and backend settings: `settings:`, `store:` and `backends:`
//! (Redis topologies, breakers, deny caches, TLS, failover chains), and the durations
//! and addresses they are written with.

use super::Compiler;
use crate::backend::{
    BackendKind, BackendSpec, BackendType, BreakerSpec, DenyCacheSpec, RedisSpec,
    RedisTopologySpec, StoreSettings, TimeSource, TlsSpec,
};
use crate::document::{BackendDoc, BreakerDoc, DenyCacheDoc, Document, NoMatchDoc, WhenFullDoc};
use crate::error::Errors;
use crate::key::IpMasks;
use crate::rate::parse_duration;
use crate::secret::SecretKind;
use crate::settings::{RequestCaps, Settings};
use std::collections::HashSet;
use std::time::Duration;

impl Compiler {
    pub(super) fn settings(&mut self, document: &Document) -> Settings {
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
        let trusted_proxies = self.networks("settings.trusted_proxies", &s.trusted_proxies);
        if s.ext_authz_domain.is_empty() {
            self.errors
                .push("settings.ext_authz_domain", Some(""), "must not be empty");
        }
        Settings {
            failure_policy,
            default_algorithm: s.default_algorithm,
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

    pub(super) fn store(&mut self, document: &Document) -> StoreSettings {
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

    pub(super) fn backends(&mut self, docs: &[BackendDoc]) -> Vec<BackendSpec> {
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
            ("password_file", Redis, doc.password_file.is_some()),
            ("password_env", Redis, doc.password_env.is_some()),
            ("pool_size", Redis, doc.pool_size.is_some()),
            ("command_timeout", Redis, doc.command_timeout.is_some()),
            ("connect_timeout", Redis, doc.connect_timeout.is_some()),
            ("key_prefix", Redis, doc.key_prefix.is_some()),
            ("time_source", Redis, doc.time_source.is_some()),
            ("tls", Redis, doc.tls.is_some()),
            ("breaker", Redis, doc.breaker.is_some()),
            ("deny_cache", Redis, doc.deny_cache.is_some()),
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
            password: self.secret(
                path,
                "password",
                SecretKind::Password,
                [&doc.password, &doc.password_file, &doc.password_env],
            ),
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
            deny_cache: self.deny_cache(
                &format!("{path}.deny_cache"),
                doc.deny_cache.as_ref(),
                redis_time,
            ),
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

    /// On by default, except where Redis's clock decides: the cache counts
    /// a denial down on the service's clock, which is then not the one
    /// deciding, so its answers could not be Redis's.
    fn deny_cache(
        &mut self,
        path: &str,
        doc: Option<&DenyCacheDoc>,
        redis_time: bool,
    ) -> Option<DenyCacheSpec> {
        let doc = doc.cloned().unwrap_or_default();
        let max_entries = doc.max_entries.unwrap_or(100_000);
        if max_entries == 0 {
            self.errors.push(
                format!("{path}.max_entries"),
                Some("0"),
                "must be at least 1 (`enabled: false` turns the cache off)",
            );
        }
        match doc.enabled {
            Some(true) if redis_time => {
                self.errors.push(
                    format!("{path}.enabled"),
                    Some("true"),
                    "a deny cache counts down on the service's clock, so it cannot answer for `time_source: redis`",
                );
                None
            }
            Some(false) => None,
            _ if redis_time => None,
            _ => Some(DenyCacheSpec {
                max_entries: max_entries.max(1),
            }),
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

    pub(super) fn positive_duration(
        &mut self,
        path: &str,
        text: Option<&str>,
        default: Duration,
    ) -> Duration {
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
}
