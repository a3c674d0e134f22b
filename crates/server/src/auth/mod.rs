//! Who is calling, and what may they do: a caller is authenticated from a
//! bearer token (`authorization: Bearer …`, matched by its SHA-256 against
//! the hashes the policy holds, in constant time) or from the names of its
//! verified client certificate, else it is anonymous where the policy's
//! `auth.anonymous` allows. [`Caller`]'s checks give the
//! `PERMISSION_DENIED` messages. The protocol adapters ask; this module
//! knows nothing of gRPC or HTTP beyond `tonic::Status`.

pub mod certificate;

use ratelimitd_policy::{AuthSettings, Permissions};
use std::collections::HashMap;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use tonic::Status;

/// The name anonymous callers go by in messages and metrics.
pub const ANONYMOUS: &str = "anonymous";

/// An authenticated caller: the identity's name (or `anonymous`) and its
/// permissions.
#[derive(Debug, PartialEq, Eq)]
pub struct Caller {
    /// The identity's name.
    pub name: String,
    permissions: Permissions,
}

impl Caller {
    /// OK when it may check `domain` (and declare limits, when it does).
    pub fn may_check(&self, domain: &str, declares_limits: bool) -> Result<(), Status> {
        if !self.permissions.may_check(domain) {
            return Err(Status::permission_denied(format!(
                "identity {:?} may not check domain {domain:?}",
                self.name
            )));
        }
        if declares_limits && !self.permissions.declare_limits {
            return Err(Status::permission_denied(format!(
                "identity {:?} may not declare limits (the request's `limits`)",
                self.name
            )));
        }
        Ok(())
    }

    /// OK when it is an operator; `what` names what needed it.
    pub fn must_be_operator(&self, what: &str) -> Result<(), Status> {
        if self.permissions.operator {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "identity {:?} is not an operator, which {what} needs",
                self.name
            )))
        }
    }
}

/// What a caller presented.
#[derive(Debug, Default)]
pub struct Credentials<'a> {
    /// The `authorization` header's value, if any.
    pub authorization: Option<&'a str>,
    /// The names of its verified client certificate (SAN DNS names and
    /// URIs, then the subject's CN); empty without one.
    pub certificate_names: &'a [String],
}

/// The policy's `auth:` section made ready to authenticate with: built
/// once per load, swapped with the policy on reload.
#[derive(Debug)]
pub struct Authenticator {
    /// Token hashes and the caller each belongs to.
    tokens: Vec<([u8; 32], Arc<Caller>)>,
    by_certificate_name: HashMap<String, Arc<Caller>>,
    anonymous: Option<Arc<Caller>>,
    /// Label values for metrics by identity, when enabled.
    metrics_by_identity: bool,
    configured: bool,
}

impl Authenticator {
    /// From a compiled (and secret-resolved) `auth:` section.
    pub fn new(auth: &AuthSettings) -> Self {
        let mut tokens = Vec::new();
        let mut by_certificate_name = HashMap::new();
        for identity in &auth.identities {
            let caller = Arc::new(Caller {
                name: identity.name.clone(),
                permissions: identity.permissions.clone(),
            });
            for secret in &identity.tokens {
                for hash in secret.token_hashes() {
                    tokens.push((hash, caller.clone()));
                }
            }
            for name in &identity.certificate_names {
                by_certificate_name.insert(name.clone(), caller.clone());
            }
        }
        Self {
            tokens,
            by_certificate_name,
            anonymous: auth.anonymous.as_ref().map(|permissions| {
                Arc::new(Caller {
                    name: ANONYMOUS.into(),
                    permissions: permissions.clone(),
                })
            }),
            metrics_by_identity: auth.metrics_by_identity,
            configured: auth.configured,
        }
    }

    /// Whether the policy has an `auth:` section (else everyone is
    /// anonymous and may do everything).
    pub fn configured(&self) -> bool {
        self.configured
    }

    /// Whether any identity is known by its certificate (else certificates
    /// need not be read).
    pub fn reads_certificates(&self) -> bool {
        !self.by_certificate_name.is_empty()
    }

    /// The `identity` label of a caller's calls, when metrics by identity
    /// are enabled: the caller's configured name, so the values are bounded
    /// by the configuration.
    pub fn metric_label<'c>(&self, caller: &'c Caller) -> Option<&'c str> {
        self.metrics_by_identity.then_some(caller.name.as_str())
    }

    /// The caller that presented `credentials`: a token decides when one is
    /// sent, then the certificate, then anonymity where allowed.
    pub fn authenticate(&self, credentials: &Credentials<'_>) -> Result<Arc<Caller>, Status> {
        if !self.configured {
            if let Some(anyone) = &self.anonymous {
                return Ok(anyone.clone());
            }
        }
        if let Some(authorization) = credentials.authorization {
            let token = bearer_token(authorization)?;
            return self
                .by_token(token)
                .ok_or_else(|| Status::unauthenticated("the bearer token matches no identity"));
        }
        if let Some(caller) = credentials
            .certificate_names
            .iter()
            .find_map(|name| self.by_certificate_name.get(name))
        {
            return Ok(caller.clone());
        }
        self.anonymous.clone().ok_or_else(|| {
            Status::unauthenticated(if credentials.certificate_names.is_empty() {
                "anonymous callers are not allowed: send a bearer token (authorization: Bearer …) or a client certificate of a known identity".to_string()
            } else {
                format!(
                    "the client certificate (names: {}) matches no identity, and anonymous callers are not allowed",
                    credentials.certificate_names.join(", ")
                )
            })
        })
    }

    /// The identity whose token hashes to the same SHA-256, every hash
    /// compared in constant time.
    fn by_token(&self, token: &str) -> Option<Arc<Caller>> {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut found = None;
        for (hash, caller) in &self.tokens {
            if bool::from(hash[..].ct_eq(digest.as_ref())) {
                found = Some(caller.clone());
            }
        }
        found
    }
}

/// The token of `Bearer <token>` (the scheme case-insensitive).
fn bearer_token(authorization: &str) -> Result<&str, Status> {
    match authorization.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(Status::unauthenticated(
            "the authorization header is not `Bearer <token>`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratelimitd_policy::{load, Format};

    /// `test`'s SHA-256.
    const TEST_HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn authenticator(anonymous: &str) -> Authenticator {
        let policy = load(
            &format!(
                "auth:
  identities:
    - {{name: team-a, tokens: [{{sha256: {TEST_HASH}}}], domains: [team-a]}}
    - {{name: ops, certificate_names: [ops.internal], domains: ['*'], operator: true}}
{anonymous}"
            ),
            Format::Yaml,
            "conf.yaml",
            &[],
        )
        .unwrap();
        Authenticator::new(&policy.auth)
    }

    fn with(authorization: Option<&str>, names: &[String]) -> Result<String, String> {
        authenticator("")
            .authenticate(&Credentials {
                authorization,
                certificate_names: names,
            })
            .map(|caller| caller.name.clone())
            .map_err(|status| format!("{:?}: {}", status.code(), status.message()))
    }

    #[test]
    fn a_token_or_a_certificate_name_authenticates() {
        assert_eq!(with(Some("Bearer test"), &[]), Ok("team-a".into()));
        assert_eq!(with(Some("bearer  test "), &[]), Ok("team-a".into()));
        assert_eq!(
            with(None, &["x".into(), "ops.internal".into()]),
            Ok("ops".into())
        );
        // A token, once sent, decides.
        assert_eq!(
            with(Some("Bearer wrong"), &["ops.internal".into()]),
            Err("Unauthenticated: the bearer token matches no identity".into())
        );
        assert_eq!(
            with(Some("Basic dGVzdA=="), &[]),
            Err("Unauthenticated: the authorization header is not `Bearer <token>`".into())
        );
    }

    #[test]
    fn anonymous_callers_are_refused_unless_allowed() {
        assert_eq!(
            with(None, &[]),
            Err("Unauthenticated: anonymous callers are not allowed: send a bearer token (authorization: Bearer …) or a client certificate of a known identity".into())
        );
        assert_eq!(
            with(None, &["stranger".into()]),
            Err("Unauthenticated: the client certificate (names: stranger) matches no identity, and anonymous callers are not allowed".into())
        );
        let open = authenticator("  anonymous: {domains: [public]}");
        let anonymous = open.authenticate(&Credentials::default()).unwrap();
        assert_eq!(anonymous.name, ANONYMOUS);
        assert!(anonymous.may_check("public", false).is_ok());
    }

    #[test]
    fn permissions_name_what_is_missing() {
        let team_a = authenticator("")
            .authenticate(&Credentials {
                authorization: Some("Bearer test"),
                certificate_names: &[],
            })
            .unwrap();
        assert!(team_a.may_check("team-a", false).is_ok());
        let denied = |result: Result<(), Status>| {
            let status = result.unwrap_err();
            (status.code(), status.message().to_string())
        };
        assert_eq!(
            denied(team_a.may_check("billing", false)),
            (
                tonic::Code::PermissionDenied,
                "identity \"team-a\" may not check domain \"billing\"".into()
            )
        );
        assert_eq!(
            denied(team_a.may_check("team-a", true)),
            (
                tonic::Code::PermissionDenied,
                "identity \"team-a\" may not declare limits (the request's `limits`)".into()
            )
        );
        assert_eq!(
            denied(team_a.must_be_operator("/config")),
            (
                tonic::Code::PermissionDenied,
                "identity \"team-a\" is not an operator, which /config needs".into()
            )
        );
    }

    #[test]
    fn without_an_auth_section_everyone_may_do_everything() {
        let open = Authenticator::new(&AuthSettings::default());
        assert!(!open.configured());
        let caller = open.authenticate(&Credentials::default()).unwrap();
        assert!(caller.may_check("any", true).is_ok());
        assert!(caller.must_be_operator("Admin").is_ok());
    }
}
