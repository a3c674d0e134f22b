//! `auth:` who may call the service and what each caller may do. The
//! server authenticates a caller (a bearer token, or the names of its
//! verified client certificate) to one of these identities, or to the
//! anonymous permissions; this is the model it asks.

use crate::pattern::wildcard_match;
use crate::secret::Secret;

/// The compiled `auth:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// The known callers.
    pub identities: Vec<Identity>,
    /// What a caller that is none of them may do; `None`: it is refused
    /// (`UNAUTHENTICATED`).
    pub anonymous: Option<Permissions>,
    /// Whether the metrics count calls per identity name (label values only
    /// from `identities`, plus `anonymous`).
    pub metrics_by_identity: bool,
    /// Whether the file had an `auth:` section at all: without one, every
    /// caller is anonymous and may do everything (a plain local run).
    pub configured: bool,
}

impl Default for AuthSettings {
    /// No `auth:` section: everyone is anonymous and may do everything.
    fn default() -> Self {
        Self {
            identities: Vec::new(),
            anonymous: Some(Permissions::everything()),
            metrics_by_identity: false,
            configured: false,
        }
    }
}

/// One known caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Its name, in messages, logs and (when enabled) metrics.
    pub name: String,
    /// The SHA-256 hashes of its bearer tokens (each secret may hold
    /// several, one per line, for rotation).
    pub tokens: Vec<Secret>,
    /// Names its client certificate may carry (a SAN DNS name or URI, or the
    /// subject's common name), matched exactly.
    pub certificate_names: Vec<String>,
    /// What it may do.
    pub permissions: Permissions,
}

/// What a caller may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    /// The domains it may check (CheckLimit, ShouldRateLimit, ext_authz,
    /// the HTTP API): exact names or globs with `*`.
    pub domains: Vec<String>,
    /// Whether it may declare limits (CheckLimit's `limits`).
    pub declare_limits: bool,
    /// Whether it may call the `ratelimit.v1.Admin` service and read
    /// `/config`.
    pub operator: bool,
}

impl Permissions {
    /// Every domain, declared limits and operator.
    pub fn everything() -> Self {
        Self {
            domains: vec!["*".into()],
            declare_limits: true,
            operator: true,
        }
    }

    /// Whether `domain` is one it may check.
    pub fn may_check(&self, domain: &str) -> bool {
        self.domains
            .iter()
            .any(|pattern| wildcard_match(pattern, domain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_match_exactly_or_by_glob() {
        let permissions = Permissions {
            domains: vec!["team-a".into(), "team-a-*".into()],
            declare_limits: false,
            operator: false,
        };
        assert!(permissions.may_check("team-a"));
        assert!(permissions.may_check("team-a-batch"));
        assert!(!permissions.may_check("team-b"));
        assert!(!permissions.may_check("team-ab"));
        assert!(Permissions::everything().may_check("anything"));
    }
}
