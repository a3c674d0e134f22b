//! Counting keys: which request values a rule counts by, and the counter
//! identity built from them.

use crate::request::Attributes;
use std::borrow::Cow;
use std::net::IpAddr;

/// One source of a counting key's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The client IP, masked to the configured prefix.
    Ip,
    /// The user.
    User,
    /// The API key.
    ApiKey,
    /// A header's value.
    Header(String),
    /// A descriptor entry's value.
    Descriptor(String),
    /// The path.
    Path,
    /// The method, upper-cased.
    Method,
}

/// A key part: its sources in order of preference (`user|ip`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPart(pub Vec<KeySource>);

/// How client addresses are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpMasks {
    /// IPv4 prefix length.
    pub v4: u8,
    /// IPv6 prefix length.
    pub v6: u8,
}

impl KeySource {
    /// Parses `ip`, `user`, `api_key`, `path`, `method`, `header:<name>`,
    /// `descriptor:<key>`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let named = |prefix: &str| {
            text.strip_prefix(prefix)
                .filter(|name| !name.is_empty())
                .map(str::to_string)
        };
        Ok(match text {
            "ip" => Self::Ip,
            "user" => Self::User,
            "api_key" => Self::ApiKey,
            "path" => Self::Path,
            "method" => Self::Method,
            _ => {
                if let Some(name) = named("header:") {
                    Self::Header(name.to_ascii_lowercase())
                } else if let Some(key) = named("descriptor:") {
                    Self::Descriptor(key)
                } else {
                    return Err(format!(
                        "`{text}` is not a key part (ip, user, api_key, path, method, header:<name>, descriptor:<key>)"
                    ));
                }
            }
        })
    }

    fn tag(&self) -> &str {
        match self {
            Self::Ip => "ip",
            Self::User => "user",
            Self::ApiKey => "api_key",
            Self::Header(name) => name,
            Self::Descriptor(key) => key,
            Self::Path => "path",
            Self::Method => "method",
        }
    }

    fn value<'r>(&self, request: &'r impl Attributes, masks: IpMasks) -> Option<Cow<'r, str>> {
        match self {
            Self::Ip => request
                .client_ip()
                .map(|ip| Cow::Owned(mask(ip.to_canonical(), masks))),
            Self::User => request.user().map(Cow::Borrowed),
            Self::ApiKey => request.api_key().map(Cow::Borrowed),
            Self::Header(name) => request.header(name).map(Cow::Borrowed),
            Self::Descriptor(key) => request.descriptor(key).map(Cow::Borrowed),
            Self::Path => request.path().map(Cow::Borrowed),
            Self::Method => request.method().map(|m| Cow::Owned(m.to_ascii_uppercase())),
        }
    }
}

fn mask(ip: IpAddr, masks: IpMasks) -> String {
    let prefix = if ip.is_ipv4() { masks.v4 } else { masks.v6 };
    ipnet::IpNet::new(ip, prefix)
        .map(|net| net.trunc().to_string())
        .unwrap_or_else(|_| ip.to_string())
}

/// Appends `field` length-prefixed, so no value can forge another key.
/// (Without `format!`: keys are built for every limit of every request.)
pub(crate) fn push_field(key: &mut String, field: &str) {
    key.push_str(itoa::Buffer::new().format(field.len()));
    key.push(':');
    key.push_str(field);
}

/// The counter identity of one limit for one request, or `None` when a key
/// part has no value in the request (the rule then does not apply).
///
/// Shaped `{namespace, tier, parts}limit`: the braces are a Redis Cluster
/// hash tag, so every limit of one rule for one client lives in one slot and
/// is decided in one script call. (A value containing `}` ends the tag early,
/// still identically for all of the rule's limits.)
pub(crate) fn counter_key(
    namespace: &str,
    limit: &str,
    tier: &str,
    parts: &[KeyPart],
    request: &impl Attributes,
    masks: IpMasks,
) -> Option<String> {
    let mut key = String::with_capacity(64);
    key.push('{');
    push_field(&mut key, namespace);
    push_field(&mut key, tier);
    for KeyPart(sources) in parts {
        let (source, value) = sources
            .iter()
            .find_map(|source| source.value(request, masks).map(|value| (source, value)))?;
        push_field(&mut key, source.tag());
        push_field(&mut key, &value);
    }
    key.push('}');
    push_field(&mut key, limit);
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::RequestAttributes;

    const MASKS: IpMasks = IpMasks { v4: 32, v6: 64 };

    fn part(text: &str) -> KeyPart {
        KeyPart(
            text.split('|')
                .map(|s| KeySource::parse(s).unwrap())
                .collect(),
        )
    }

    #[test]
    fn masks_ipv6_to_its_64_and_keeps_ipv4_whole() {
        let v6 = RequestAttributes {
            client_ip: Some("2001:db8:1:2:aaaa::1".parse().unwrap()),
            ..RequestAttributes::new("d")
        };
        let key = counter_key("r", "l", "", &[part("ip")], &v6, MASKS).unwrap();
        assert!(key.contains(":2001:db8:1:2::/64}"), "{key}");
        let v4 = RequestAttributes {
            client_ip: Some("10.1.2.3".parse().unwrap()),
            ..RequestAttributes::new("d")
        };
        let key =
            counter_key("r", "l", "", &[part("ip")], &v4, IpMasks { v4: 24, v6: 64 }).unwrap();
        assert!(key.contains(":10.1.2.0/24}"), "{key}");
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_the_ipv4_client() {
        let key = |ip: &str| {
            let request = RequestAttributes {
                client_ip: Some(ip.parse().unwrap()),
                ..RequestAttributes::new("d")
            };
            counter_key("r", "l", "", &[part("ip")], &request, MASKS).unwrap()
        };
        assert_eq!(key("::ffff:198.51.100.7"), key("198.51.100.7"));
        assert_ne!(key("::ffff:198.51.100.7"), key("::ffff:198.51.100.8"));
    }

    #[test]
    fn alternatives_take_the_first_present_and_missing_parts_give_none() {
        let anonymous = RequestAttributes {
            client_ip: Some("10.0.0.1".parse().unwrap()),
            ..RequestAttributes::new("d")
        };
        let key = counter_key("r", "l", "", &[part("user|ip")], &anonymous, MASKS).unwrap();
        assert!(key.contains("ip"), "{key}");
        assert_eq!(
            counter_key("r", "l", "", &[part("user")], &anonymous, MASKS),
            None
        );
    }

    #[test]
    fn values_cannot_forge_other_keys() {
        let a = RequestAttributes::new("d")
            .descriptor("a", "x2:yy")
            .descriptor("b", "z");
        let b = RequestAttributes::new("d")
            .descriptor("a", "x")
            .descriptor("b", "yy2:z");
        let parts = [part("descriptor:a"), part("descriptor:b")];
        assert_ne!(
            counter_key("r", "l", "", &parts, &a, MASKS),
            counter_key("r", "l", "", &parts, &b, MASKS)
        );
        let user = RequestAttributes {
            user: "10.0.0.1/32".into(),
            ..RequestAttributes::new("d")
        };
        let ip = RequestAttributes {
            client_ip: Some("10.0.0.1".parse().unwrap()),
            ..RequestAttributes::new("d")
        };
        assert_ne!(
            counter_key("r", "l", "", &[part("user|ip")], &user, MASKS),
            counter_key("r", "l", "", &[part("user|ip")], &ip, MASKS)
        );
    }

    #[test]
    fn a_rules_limits_share_one_hash_tag() {
        let request = RequestAttributes {
            user: "al}ice".into(),
            ..RequestAttributes::new("d")
        };
        let burst = counter_key("rule:r", "burst", "", &[part("user")], &request, MASKS).unwrap();
        let hourly = counter_key("rule:r", "hourly", "", &[part("user")], &request, MASKS).unwrap();
        let tag = |key: &str| key[..=key.find('}').unwrap()].to_string();
        assert!(burst.starts_with('{'));
        assert_ne!(burst, hourly);
        assert_eq!(tag(&burst), tag(&hourly));
        assert_eq!(burst, "{6:rule:r0:4:user6:al}ice}5:burst");
    }

    #[test]
    fn rejects_unknown_parts() {
        assert!(KeySource::parse("cookie").unwrap_err().contains("`cookie`"));
        assert!(KeySource::parse("header:").is_err());
    }
}
