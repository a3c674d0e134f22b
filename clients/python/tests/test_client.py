"""The core clients against the real service: decisions, errors, addresses, the denial cache."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from ratelimitd import AsyncClient, Client, FailedPreconditionError, InvalidArgumentError, Limit, Rate
from tests.server import Server


class Clock:
    """A clock the test moves."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_decision_fields_come_from_the_service(ratelimitd: Server, new_ip: Callable[[], str]) -> None:
    client = Client(ratelimitd.grpc_addr, "web", timeout=2.0)
    ip = new_ip()
    limit = Limit.of("client.fields", "2/m", "ip")
    first = client.check(limits=[limit], peer_ip=ip)
    assert (first.allowed, first.code, first.source, first.degraded) == (True, "OK", "service", False)
    assert (first.remaining, first.limit, first.retry_after) == (1, 2, 0.0)
    assert first.headers["X-RateLimit-Remaining"] == "1"
    assert 59 < first.reset_after <= 60
    client.check(limits=[limit], peer_ip=ip)
    denied = client.check(limits=[limit], peer_ip=ip)
    assert (denied.allowed, denied.code, denied.remaining, denied.limit) == (False, "OVER_LIMIT", 0, 2)
    assert 59 < denied.retry_after <= 60
    assert denied.headers["Retry-After"] == "60"
    (status,) = denied.statuses
    assert (status.rule, status.limit_name, status.algorithm, status.over_limit) == (
        "client.fields", "default", "sliding_log", True,
    )  # fmt: skip


def test_request_errors_raise_typed_exceptions(ratelimitd: Server) -> None:
    client = Client(ratelimitd.grpc_addr, "web", timeout=2.0)
    with pytest.raises(InvalidArgumentError) as invalid:
        client.check(descriptors={"": "x"})
    assert invalid.value.field == "descriptors[0].key"
    with pytest.raises(InvalidArgumentError) as too_many:
        client.check(limits=[Limit("client.big", Rate(2_000_000, 60_000))])
    assert too_many.value.field == "limits[0].rate"
    with pytest.raises(FailedPreconditionError):
        client.check(domain="partners", limits=[Limit.of("jobs", "1/m")])
    assert client.breaker_state == "CLOSED"  # the service answered: not a failure


def test_peer_ip_is_normalised_and_forwarded_for_sent_raw(
    ratelimitd: Server, new_ip: Callable[[], str]
) -> None:
    client = Client(ratelimitd.grpc_addr, "web", timeout=2.0)
    request = client.request(peer_ip="::ffff:192.0.2.9", forwarded_for="1.1.1.1, 2.2.2.2")
    assert (request.peer_ip, request.forwarded_for) == ("192.0.2.9", "1.1.1.1, 2.2.2.2")
    assert client.request(peer_ip="[2001:db8::1]:443").peer_ip == "2001:db8::1"
    ip = new_ip()
    limit = Limit.of("client.mapped", "1/m", "ip")
    assert client.check(limits=[limit], peer_ip=f"::ffff:{ip}").allowed
    assert not client.check(limits=[limit], peer_ip=ip).allowed


def test_async_client_one_channel_per_loop(ratelimitd: Server, new_ip: Callable[[], str]) -> None:
    client = AsyncClient(ratelimitd.grpc_addr, "web", timeout=2.0)
    ip = new_ip()
    limit = Limit.of("client.async", "3/m", "ip")

    async def twice() -> list[bool]:
        results = [(await client.check(limits=[limit], peer_ip=ip)).allowed for _ in range(2)]
        await client.close()
        return results

    assert asyncio.run(twice()) == [True, True]
    assert asyncio.run(twice()) == [True, False]  # another loop, another channel, same counter


def test_deny_cache_answers_denials_until_retry_after(ratelimitd: Server, new_ip: Callable[[], str]) -> None:
    clock = Clock()
    client = Client(ratelimitd.grpc_addr, "web", timeout=2.0, deny_cache=True, clock=clock)
    ip = new_ip()
    limit = Limit.of("client.cache", "1/m", "ip")
    assert client.check(limits=[limit], peer_ip=ip).allowed
    denied = client.check(limits=[limit], peer_ip=ip)
    assert (denied.allowed, denied.source) == (False, "service")
    before = ratelimitd.check_limit_calls()
    clock.now += 10
    cached = client.check(limits=[limit], peer_ip=ip)
    assert (cached.allowed, cached.source, cached.code) == (False, "cache", "OVER_LIMIT")
    assert cached.retry_after == pytest.approx(denied.retry_after - 10)
    assert ratelimitd.check_limit_calls() == before
    # Another request (another address) is not the cached one.
    assert client.check(limits=[limit], peer_ip=new_ip()).source == "service"
    clock.now += 60
    assert client.check(limits=[limit], peer_ip=ip).source == "service"


def test_deny_cache_never_holds_count_denied_limits(ratelimitd: Server, new_ip: Callable[[], str]) -> None:
    client = Client(ratelimitd.grpc_addr, "web", timeout=2.0, deny_cache=True)
    ip = new_ip()
    limit = Limit.of("client.counted", "1/m", "ip", algorithm="fixed_window", count_denied=True)
    client.check(limits=[limit], peer_ip=ip)
    before = ratelimitd.check_limit_calls()
    sources = [client.check(limits=[limit], peer_ip=ip).source for _ in range(3)]
    assert sources == ["service"] * 3
    assert ratelimitd.check_limit_calls() - before == 3
