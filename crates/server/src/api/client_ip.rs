//! The client's address from what a caller saw: its peer (the socket's
//! address) and the `X-Forwarded-For` it received, believed only as far as
//! the policy's `settings.trusted_proxies` go. One resolution for every
//! protocol: ext_authz's source address and CheckLimit's `peer_ip` and
//! `forwarded_for` alike.

use ipnet::IpNet;
use std::net::IpAddr;

/// The client's address: `source`, unless it is a trusted proxy, in which
/// case the right-most `x-forwarded-for` entry that is not a trusted proxy
/// (the left-most only when every hop is trusted). IPv4-mapped IPv6
/// addresses (`::ffff:198.51.100.7`, what dual-stack sockets report) are
/// taken as the IPv4 addresses they are.
pub fn client_ip(
    source: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let mut client = source?.to_canonical();
    let hops = forwarded_for.unwrap_or_default().rsplit(',').map(str::trim);
    for hop in hops {
        if !trusted.iter().any(|network| network.contains(&client)) {
            break;
        }
        match hop.parse::<IpAddr>() {
            Ok(address) => client = address.to_canonical(),
            Err(_) => break,
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_hop() {
        let trusted = nets(&["10.0.0.0/8"]);
        // Through two trusted proxies.
        assert_eq!(
            client_ip(ip("10.0.0.1"), Some("203.0.113.7, 10.0.0.2"), &trusted),
            ip("203.0.113.7")
        );
        // A forged left-most entry is never believed.
        assert_eq!(
            client_ip(ip("10.0.0.1"), Some("1.1.1.1, 203.0.113.7"), &trusted),
            ip("203.0.113.7")
        );
        // An untrusted peer's x-forwarded-for is ignored.
        assert_eq!(
            client_ip(ip("198.51.100.9"), Some("1.1.1.1"), &trusted),
            ip("198.51.100.9")
        );
        // Nothing trusted by default.
        assert_eq!(
            client_ip(ip("10.0.0.1"), Some("1.1.1.1"), &[]),
            ip("10.0.0.1")
        );
        // Garbage stops the walk at the last good address.
        assert_eq!(
            client_ip(ip("10.0.0.1"), Some("1.1.1.1, junk"), &trusted),
            ip("10.0.0.1")
        );
        // Every hop trusted: the left-most.
        assert_eq!(
            client_ip(ip("10.0.0.1"), Some("10.9.9.9"), &trusted),
            ip("10.9.9.9")
        );
        assert_eq!(client_ip(None, Some("1.1.1.1"), &trusted), None);
    }

    #[test]
    fn ipv4_mapped_addresses_are_ipv4_clients_and_proxies() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.1"), Some("::ffff:203.0.113.7"), &trusted),
            ip("203.0.113.7")
        );
        assert_eq!(
            client_ip(ip("::ffff:198.51.100.9"), None, &trusted),
            ip("198.51.100.9")
        );
    }
}
