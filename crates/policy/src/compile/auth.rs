//! The `auth:` section, and the secrets that can be written inline, in a
//! file or in an environment variable.

use super::Compiler;
use crate::auth::{AuthSettings, Identity, Permissions};
use crate::document::{AuthDoc, IdentityDoc, PermissionsDoc};
use crate::secret::{check_value, Secret, SecretKind, SecretSource};
use std::collections::HashMap;

impl Compiler {
    pub(super) fn auth(&mut self, doc: Option<&AuthDoc>) -> AuthSettings {
        let Some(doc) = doc else {
            return AuthSettings::default();
        };
        let mut names: HashMap<&str, ()> = HashMap::new();
        let mut certificate_owners: HashMap<&str, &str> = HashMap::new();
        let mut identities = Vec::with_capacity(doc.identities.len());
        for (index, identity) in doc.identities.iter().enumerate() {
            let path = format!("auth.identities[{index}]");
            if identity.name.is_empty() {
                self.errors
                    .push(format!("{path}.name"), Some(""), "name the identity");
            } else if identity.name == "anonymous" {
                self.errors.push(
                    format!("{path}.name"),
                    Some(&identity.name),
                    "`anonymous` is the name of callers no identity matches",
                );
            } else if names.insert(&identity.name, ()).is_some() {
                self.errors.push(
                    format!("{path}.name"),
                    Some(&identity.name),
                    "another identity has this name",
                );
            }
            for (i, name) in identity.certificate_names.iter().enumerate() {
                if let Some(owner) = certificate_owners.insert(name, &identity.name) {
                    self.errors.push(
                        format!("{path}.certificate_names[{i}]"),
                        Some(name),
                        format!("identity {owner:?} already has this certificate name"),
                    );
                }
            }
            identities.push(self.identity(&path, identity));
        }
        AuthSettings {
            identities,
            anonymous: doc
                .anonymous
                .as_ref()
                .map(|permissions| self.permissions("auth.anonymous", permissions)),
            metrics_by_identity: doc.metrics_by_identity,
            configured: true,
        }
    }

    fn identity(&mut self, path: &str, doc: &IdentityDoc) -> Identity {
        if doc.tokens.is_empty() && doc.certificate_names.is_empty() {
            self.errors.push(
                path,
                None,
                "an identity needs `tokens` or `certificate_names` to be recognised by",
            );
        }
        for (i, name) in doc.certificate_names.iter().enumerate() {
            if name.is_empty() {
                self.errors.push(
                    format!("{path}.certificate_names[{i}]"),
                    Some(""),
                    "a certificate name cannot be empty",
                );
            }
        }
        let tokens = doc
            .tokens
            .iter()
            .enumerate()
            .filter_map(|(i, token)| {
                self.secret(
                    &format!("{path}.tokens[{i}]"),
                    "sha256",
                    SecretKind::TokenHashes,
                    [&token.sha256, &token.sha256_file, &token.sha256_env],
                )
            })
            .collect();
        let permissions = PermissionsDoc {
            domains: doc.domains.clone(),
            declare_limits: doc.declare_limits,
            operator: doc.operator,
        };
        Identity {
            name: doc.name.clone(),
            tokens,
            certificate_names: doc.certificate_names.clone(),
            permissions: self.permissions(path, &permissions),
        }
    }

    fn permissions(&mut self, path: &str, doc: &PermissionsDoc) -> Permissions {
        for (i, domain) in doc.domains.iter().enumerate() {
            if domain.is_empty() {
                self.errors.push(
                    format!("{path}.domains[{i}]"),
                    Some(""),
                    "a domain cannot be empty (`*` is every domain)",
                );
            }
        }
        Permissions {
            domains: doc.domains.clone(),
            declare_limits: doc.declare_limits,
            operator: doc.operator,
        }
    }

    /// The secret `{base}`, `{base}_file` or `{base}_env` at `path` (at
    /// most one of them given; `None` when none is).
    pub(super) fn secret(
        &mut self,
        path: &str,
        base: &str,
        kind: SecretKind,
        [inline, file, env]: [&Option<String>; 3],
    ) -> Option<Secret> {
        let given = [inline, file, env].iter().filter(|v| v.is_some()).count();
        if given > 1 {
            self.errors.push(
                path,
                None,
                format!("give one of `{base}`, `{base}_file` and `{base}_env`"),
            );
            return None;
        }
        if let Some(value) = inline {
            let key = format!("{path}.{base}");
            self.errors.check(&key, value, check_value(kind, value))?;
            return Some(Secret::inline(key, kind, value.clone()));
        }
        let (key, source) = match (file, env) {
            (Some(file), _) => (
                format!("{path}.{base}_file"),
                SecretSource::File(file.clone()),
            ),
            (_, Some(env)) => (format!("{path}.{base}_env"), SecretSource::Env(env.clone())),
            _ => {
                if kind == SecretKind::TokenHashes {
                    self.errors.push(
                        path,
                        None,
                        format!("give one of `{base}`, `{base}_file` and `{base}_env`"),
                    );
                }
                return None;
            }
        };
        if matches!(&source, SecretSource::File(name) | SecretSource::Env(name) if name.is_empty())
        {
            self.errors
                .push(&key, Some(""), "name the file or environment variable");
            return None;
        }
        Some(Secret::unresolved(key, kind, source))
    }
}
