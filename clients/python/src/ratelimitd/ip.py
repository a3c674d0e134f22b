"""Client addresses: what the socket saw, normalised, and (for local decisions) resolved.

The service resolves the client from ``peer_ip`` and ``forwarded_for``
through its own trusted proxies; this module only normalises what is sent,
and resolves the same way (right-most untrusted hop, never the left-most,
which the client writes itself) for the local fallback, which has to count
per client while the service is away.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_address(text: str) -> Address | None:
    """An address without port or zone, IPv4-mapped IPv6 as IPv4; ``None`` if unparsable."""
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def normalize_ip(text: str | None) -> str:
    """The address to send as ``peer_ip``: ``::ffff:192.0.2.1`` is ``192.0.2.1``; ``""`` if unusable.

    An unparsable value is dropped rather than sent: the service would
    refuse the whole request (INVALID_ARGUMENT) for it.
    """
    address = parse_address(text) if text else None
    return str(address) if address is not None else ""


def parse_networks(networks: Iterable[str]) -> tuple[Network, ...]:
    """``10.0.0.0/8``, ``192.0.2.7``, ``2001:db8::/32``; IPv4-mapped ones as IPv4."""
    parsed = []
    for text in networks:
        network = ipaddress.ip_network(text, strict=False)
        if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped:
            mapped = network.network_address.ipv4_mapped
            network = ipaddress.ip_network(f"{mapped}/{max(network.prefixlen - 96, 0)}", strict=False)
        parsed.append(network)
    return tuple(parsed)


def resolve_client(peer_ip: str, forwarded_for: str, trusted: tuple[Network, ...]) -> Address | None:
    """The client as the service resolves it (``crates/server/src/api/client_ip.rs``).

    The peer, unless it is a trusted proxy: then the right-most
    X-Forwarded-For hop that is not one (the left-most only when every hop
    is trusted); an unparsable hop stops the walk.
    """
    client = parse_address(peer_ip) if peer_ip else None
    if client is None:
        return None
    for hop in reversed(forwarded_for.split(",")):
        if not _is_trusted(client, trusted):
            break
        try:
            address = ipaddress.ip_address(hop.strip())
        except ValueError:
            break
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        client = mapped or address
    return client


def _is_trusted(address: Address, trusted: tuple[Network, ...]) -> bool:
    return any(address.version == network.version and address in network for network in trusted)
