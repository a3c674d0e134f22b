//! Compiled conditions: what `match`, `skip_if`, tier `when` and `skip` say.

use crate::pattern::{Pattern, Specificity};
use crate::request::Attributes;
use ipnet::IpNet;

/// A compiled condition; every part given must hold.
#[derive(Debug, Clone, Default)]
pub struct Condition {
    /// `(key, pattern)`, sorted by key.
    pub(crate) descriptors: Vec<(String, Pattern)>,
    pub(crate) path: Option<Pattern>,
    /// Upper case.
    pub(crate) methods: Vec<String>,
    /// `(lower-case name, pattern)`, sorted by name.
    pub(crate) headers: Vec<(String, Pattern)>,
    pub(crate) client_ip: Vec<IpNet>,
    pub(crate) users: Vec<String>,
    pub(crate) api_keys: Vec<String>,
}

/// What a condition constrains, regardless of the values: matching rules
/// with the same family compete, and only the most specific applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Family {
    descriptor_keys: Vec<String>,
    path: bool,
    methods: bool,
    header_names: Vec<String>,
    client_ip: bool,
    users: bool,
    api_keys: bool,
}

impl Condition {
    /// Whether `request` satisfies every part.
    pub fn matches(&self, request: &impl Attributes) -> bool {
        let listed = |list: &[String], value: Option<&str>| {
            list.is_empty() || value.is_some_and(|v| list.iter().any(|item| item == v))
        };
        self.descriptors.iter().all(|(key, pattern)| {
            request
                .descriptor(key)
                .is_some_and(|value| pattern.matches(value))
        }) && self
            .path
            .as_ref()
            .is_none_or(|pattern| request.path().is_some_and(|path| pattern.matches(path)))
            && (self.methods.is_empty()
                || request.method().is_some_and(|method| {
                    self.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
                }))
            && self.headers.iter().all(|(name, pattern)| {
                request
                    .header(name)
                    .is_some_and(|value| pattern.matches(value))
            })
            && (self.client_ip.is_empty()
                || request
                    .client_ip()
                    .map(|ip| ip.to_canonical())
                    .is_some_and(|ip| self.client_ip.iter().any(|net| net.contains(&ip))))
            && listed(&self.users, request.user())
            && listed(&self.api_keys, request.api_key())
    }

    /// Ranks this condition against others of its family: descriptor entries
    /// in key order, then the path; exact beats pattern beats presence.
    pub(crate) fn specificity(&self) -> Vec<Specificity> {
        self.descriptors
            .iter()
            .chain(&self.path.as_ref().map(|p| (String::new(), p.clone())))
            .map(|(_, pattern)| pattern.specificity())
            .collect()
    }

    pub(crate) fn family(&self) -> Family {
        Family {
            descriptor_keys: self.descriptors.iter().map(|(k, _)| k.clone()).collect(),
            path: self.path.is_some(),
            methods: !self.methods.is_empty(),
            header_names: self.headers.iter().map(|(n, _)| n.clone()).collect(),
            client_ip: !self.client_ip.is_empty(),
            users: !self.users.is_empty(),
            api_keys: !self.api_keys.is_empty(),
        }
    }

    /// The descriptor keys this condition names, in key order.
    pub(crate) fn descriptor_keys(&self) -> impl Iterator<Item = &str> {
        self.descriptors.iter().map(|(key, _)| key.as_str())
    }
}
