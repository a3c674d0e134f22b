"""When the service is down or hung: open, closed (503), local (exact counts), the client breaker."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from django.test import Client as DjangoClient

from ratelimitd import BreakerOptions, Client, Decision, Limit, ServiceError
from ratelimitd._proto.ratelimit.v1 import ratelimit_pb2 as pb
from tests.server import Server
from tests.test_client import Clock

LIMIT = Limit.of("failure.local", "5/m", "ip")


def killed(server: Server, client: Client) -> None:
    """One answered call (a connected channel), then the service dies."""
    assert client.check(peer_ip="192.0.2.1").source == "service"
    server.kill()


def test_open_allows_degraded_without_headers(own_server: Server) -> None:
    client = Client(own_server.grpc_addr, "web", timeout=1.0)
    killed(own_server, client)
    decision = client.check(limits=[LIMIT], peer_ip="192.0.2.1")
    assert decision == Decision(allowed=True, code="OK", degraded=True, source="fallback")
    assert dict(decision.headers) == {}


def test_closed_answers_503_never_429(own_server: Server, settings: Any, new_ip: Callable[[], str]) -> None:
    settings.RATELIMITD = {"TARGET": own_server.grpc_addr, "TIMEOUT": 1.0, "ON_ERROR": "closed"}
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "ratelimitd.django.middleware.RateLimitMiddleware"]
    own_server.kill()
    client = DjangoClient(REMOTE_ADDR=new_ip())
    for url in ("/ip", "/mw/other", "/drf/anon-user", "/drf/scoped"):
        response = client.get(url)
        assert response.status_code == 503, url
        assert "Retry-After" not in response


def test_local_decides_the_declared_limits_with_exact_counts(own_server: Server) -> None:
    clock = Clock(1000.0)  # 5/m windows: [960, 1020)
    client = Client(own_server.grpc_addr, "web", timeout=1.0, on_error="local", local_replicas=2, clock=clock)
    killed(own_server, client)
    decisions = [client.check(limits=[LIMIT], peer_ip="192.0.2.1") for _ in range(4)]
    # ceil(5 / 2) = 3 per process.
    assert [d.allowed for d in decisions] == [True, True, True, False]
    denied = decisions[-1]
    assert (denied.code, denied.source, denied.degraded) == ("OVER_LIMIT", "fallback", True)
    assert (denied.remaining, denied.limit, denied.retry_after) == (0, 3, 20.0)
    assert dict(denied.headers) == {}
    assert denied.statuses[0].failure == "local"
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    # Per client, as the service counts: another address has its own.
    assert client.check(limits=[LIMIT], peer_ip="192.0.2.2").allowed
    # A limit whose key part is absent (no user) does not apply.
    assert client.check(limits=[Limit.of("failure.user", "0/m", "user")], peer_ip="192.0.2.1").allowed
    clock.now = 1020.0  # the next window
    assert client.check(limits=[LIMIT], peer_ip="192.0.2.1").allowed


def test_local_resolves_forwarded_clients_through_trusted_proxies(own_server: Server) -> None:
    client = Client(
        own_server.grpc_addr,
        "web",
        timeout=1.0,
        on_error="local",
        trusted_proxies=["10.0.0.0/8"],
        clock=Clock(),
    )
    killed(own_server, client)
    one = Limit.of("failure.xff", "1/m", "ip")
    assert client.check(limits=[one], peer_ip="10.0.0.5", forwarded_for="6.6.6.6, 198.51.100.4").allowed
    # Another forged left-most hop, same client.
    assert not client.check(limits=[one], peer_ip="10.0.0.5", forwarded_for="7.7.7.7, 198.51.100.4").allowed


def test_callable_on_error(own_server: Server) -> None:
    seen: list[tuple[ServiceError, pb.CheckLimitRequest]] = []

    def decide(error: ServiceError, request: pb.CheckLimitRequest) -> Decision:
        seen.append((error, request))
        return Decision(
            allowed=request.path != "/admin", code="OK" if request.path != "/admin" else "UNAVAILABLE"
        )

    client = Client(own_server.grpc_addr, "web", timeout=1.0, on_error=decide)
    killed(own_server, client)
    decision = client.check(path="/admin")
    assert (decision.allowed, decision.source, decision.degraded) == (False, "fallback", True)
    assert client.check(path="/").allowed
    error, request = seen[0]
    assert error.code == grpc.StatusCode.UNAVAILABLE
    assert request.path == "/admin"


def test_breaker_pays_the_deadline_a_bounded_number_of_times(own_server: Server) -> None:
    timeout = 0.3
    clock = Clock()
    client = Client(
        own_server.grpc_addr,
        "web",
        timeout=timeout,
        breaker=BreakerOptions(failure_threshold=3, recovery_timeout=1.0, max_recovery_timeout=30.0),
        clock=clock,
    )
    assert client.check(peer_ip="192.0.2.1").source == "service"
    own_server.pause()  # connected, but nothing answers: every call waits for its deadline

    def slow_calls(count: int) -> int:
        slow = 0
        for _ in range(count):
            started = time.monotonic()
            decision = client.check(peer_ip="192.0.2.1")
            assert (decision.allowed, decision.source) == (True, "fallback")
            slow += time.monotonic() - started >= timeout * 0.8
        return slow

    assert slow_calls(20) == 3  # the threshold, then no call at all
    assert client.breaker_state == "OPEN"
    clock.now += 1.0
    assert slow_calls(5) == 1  # one probe when half open; it fails and reopens for 2 s
    clock.now += 1.0
    assert slow_calls(5) == 0
    clock.now += 1.0
    assert slow_calls(5) == 1
    own_server.resume()
    clock.now += 4.0
    assert client.check(peer_ip="192.0.2.1").source == "service"  # the probe succeeds
    assert str(client.breaker_state) == "CLOSED"  # (mypy narrowed it to OPEN above)


@pytest.mark.parametrize("bad", [0, -1])
def test_breaker_options_are_checked(bad: int) -> None:
    with pytest.raises(ValueError):
        BreakerOptions(failure_threshold=bad)
