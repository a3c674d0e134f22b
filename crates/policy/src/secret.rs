//! Secrets the policy names but need not contain: a Redis password or a
//! caller's token hashes, written inline, or read from a file
//! (`password_file:`, a mounted Kubernetes Secret) or an environment
//! variable (`password_env:`). The policy stays pure: it records where a
//! secret is, and [`Policy::resolve_secrets`](crate::Policy::resolve_secrets)
//! reads it through a reader the loader provides. A secret never prints:
//! its `Debug` is `***`.

use std::fmt;

/// Where a secret's value comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Written in the policy file.
    Inline,
    /// The contents of this file (trailing newlines dropped).
    File(String),
    /// The value of this environment variable.
    Env(String),
}

/// What a secret is, for the checks its value must pass once read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// A password: any text.
    Password,
    /// SHA-256 hashes of bearer tokens: 64 hex digits each, one per line.
    TokenHashes,
}

/// A secret and where it was declared.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    /// Where its value comes from.
    pub source: SecretSource,
    /// The key that declared it, e.g. `backends[0].password_file`.
    pub path: String,
    /// What its value must be.
    pub kind: SecretKind,
    value: String,
}

impl Secret {
    /// A secret written inline.
    pub(crate) fn inline(path: String, kind: SecretKind, value: String) -> Self {
        Self {
            source: SecretSource::Inline,
            path,
            kind,
            value,
        }
    }

    /// A secret to be read later from `source`.
    pub(crate) fn unresolved(path: String, kind: SecretKind, source: SecretSource) -> Self {
        Self {
            source,
            path,
            kind,
            value: String::new(),
        }
    }

    /// The value (empty until resolved, for a file or environment secret).
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Takes the value read from the source, checked for its kind.
    pub(crate) fn set(&mut self, value: String) -> Result<(), String> {
        let value = value.trim_end_matches(['\n', '\r']).to_string();
        check_value(self.kind, &value)?;
        self.value = value;
        Ok(())
    }

    /// For token hashes: each hash's bytes.
    pub fn token_hashes(&self) -> Vec<[u8; 32]> {
        self.value.lines().filter_map(parse_sha256).collect()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} = ***)", self.path)
    }
}

/// Whether `value` is a valid secret of `kind`.
pub(crate) fn check_value(kind: SecretKind, value: &str) -> Result<(), String> {
    match kind {
        SecretKind::Password => Ok(()),
        SecretKind::TokenHashes => {
            let hashes: Vec<&str> = value.lines().map(str::trim).collect();
            if hashes.iter().all(|line| line.is_empty()) {
                return Err("no token hash in it".into());
            }
            for (line, hash) in hashes.iter().enumerate() {
                if !hash.is_empty() && parse_sha256(hash).is_none() {
                    return Err(format!(
                        "line {}: not a SHA-256 hash (64 hex digits, as `sha256sum` prints)",
                        line + 1
                    ));
                }
            }
            Ok(())
        }
    }
}

/// 64 hex digits as 32 bytes.
fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    let text = text.trim().as_bytes();
    if text.len() != 64 {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (byte, pair) in bytes.iter_mut().zip(text.chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn token_hashes_are_64_hex_digits_one_per_line() {
        let mut secret = Secret::unresolved(
            "auth.identities[0].tokens[0].sha256_file".into(),
            SecretKind::TokenHashes,
            SecretSource::File("/x".into()),
        );
        assert_eq!(
            secret.set("abc\n".into()),
            Err("line 1: not a SHA-256 hash (64 hex digits, as `sha256sum` prints)".into())
        );
        assert_eq!(secret.set("\n".into()), Err("no token hash in it".into()));
        secret
            .set(format!("{HASH}\n\n{}\n", HASH.to_uppercase()))
            .unwrap();
        let hashes = secret.token_hashes();
        assert_eq!(hashes.len(), 2);
        assert_eq!(hashes[0], hashes[1]);
        assert_eq!(hashes[0][0], 0x9f);
    }

    #[test]
    fn a_secret_never_prints_its_value() {
        let secret = Secret::inline(
            "backends[0].password".into(),
            SecretKind::Password,
            "hunter2".into(),
        );
        assert_eq!(format!("{secret:?}"), "Secret(backends[0].password = ***)");
        assert_eq!(secret.expose(), "hunter2");
    }
}
