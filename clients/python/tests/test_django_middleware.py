"""RateLimitMiddleware: the original's settings, and one CheckLimit per request with the decorators."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from django.test import AsyncClient, Client

from tests.server import Server
from tests.test_django_decorator import forwarded

MIDDLEWARE = [
    "tests.django_project.auth.HeaderUserMiddleware",
    "ratelimitd.django.middleware.RateLimitMiddleware",
]


@pytest.fixture(autouse=True)
def _middleware(settings: Any) -> None:
    settings.MIDDLEWARE = MIDDLEWARE
    settings.RATELIMIT_MIDDLEWARE = {
        "DEFAULT_RATE": "5/m",
        "RATE_LIMITS": {"/mw/api/": "3/m", "/mw/api/auth/": "1/m"},
        "SKIP_PATHS": ["/mw/health/"],
        "BLOCK": True,
    }


def statuses(ip: str, url: str, count: int) -> list[tuple[int, str | None]]:
    client = Client(REMOTE_ADDR=ip)
    responses = [client.get(url) for _ in range(count)]
    return [(r.status_code, r.headers.get("X-RateLimit-Limit")) for r in responses]


def test_rate_limits_longest_prefix_wins(new_ip: Callable[[], str]) -> None:
    ip = new_ip()
    assert statuses(ip, "/mw/api/auth/login", 2) == [(200, "1"), (429, "1")]
    # /mw/api/ has its own counter (the auth prefix's did not consume it).
    assert statuses(ip, "/mw/api/items", 4) == [(200, "3")] * 3 + [(429, "3")]


def test_default_rate_for_other_paths(new_ip: Callable[[], str]) -> None:
    assert statuses(new_ip(), "/mw/other", 6) == [(200, "5")] * 5 + [(429, "5")]


def test_skip_paths_make_no_call(new_ip: Callable[[], str], ratelimitd: Server) -> None:
    before = ratelimitd.check_limit_calls()
    assert statuses(new_ip(), "/mw/health/", 8) == [(200, None)] * 8
    assert ratelimitd.check_limit_calls() == before


def test_decorator_and_middleware_make_exactly_one_call(
    new_ip: Callable[[], str], ratelimitd: Server
) -> None:
    ip = new_ip()
    client = Client(REMOTE_ADDR=ip)
    for expected in (200, 200, 429):
        before = ratelimitd.check_limit_calls()
        response = client.get("/mw/api/decorated")
        assert ratelimitd.check_limit_calls() - before == 1
        assert response.status_code == expected
        # The view's 2/m is tighter than the path's 3/m.
        assert response["X-RateLimit-Limit"] == "2"
    assert response["Retry-After"] == "60"
    rules = {s["rule"] for s in Client(REMOTE_ADDR=new_ip()).get("/mw/api/decorated").json()["statuses"]}
    assert rules == {"middleware:/mw/api/", "tests.django_project.views.mw_decorated"}


def test_async_middleware_one_call(new_ip: Callable[[], str], ratelimitd: Server) -> None:
    async def run() -> list[tuple[int, int]]:
        client, ip = AsyncClient(), new_ip()
        results = []
        for _ in range(3):
            before = ratelimitd.check_limit_calls()
            response = await client.get("/mw/async", headers=forwarded(ip))
            results.append((response.status_code, ratelimitd.check_limit_calls() - before))
        return results

    # The async view's 2/m beside the default 5/m: one call each.
    assert asyncio.run(run()) == [(200, 1), (200, 1), (429, 1)]


def test_class_based_view_under_middleware_one_call(new_ip: Callable[[], str], ratelimitd: Server) -> None:
    client = Client(REMOTE_ADDR=new_ip())
    for url in ("/cbv/dispatch", "/cbv/method"):
        assert ratelimitd.statuses_and_calls(lambda: client.get(url), 3) == [(200, 1), (200, 1), (429, 1)]  # noqa: B023


def test_denial_view_replaces_the_body(settings: Any, new_ip: Callable[[], str]) -> None:
    settings.RATELIMITD = {**settings.RATELIMITD, "VIEW": "tests.django_project.views.denied"}
    client = Client(REMOTE_ADDR=new_ip())
    client.get("/mw/api/auth/login")
    response = client.get("/mw/api/auth/login")
    assert (response.status_code, response.json()) == (429, {"error": "slow down", "code": "OVER_LIMIT"})
    assert response["Retry-After"] == "60"


def test_client_address_is_resolved_by_the_service_from_x_forwarded_for(
    new_ip: Callable[[], str], settings: Any
) -> None:
    settings.RATELIMIT_MIDDLEWARE = {"RATE_LIMITS": {"/mw/": "1/m"}}
    client_ip = new_ip()
    # The socket's peer is a trusted proxy (loopback, in the test policy):
    # the client is the right-most untrusted hop; the left-most is forged.
    proxy = Client(REMOTE_ADDR="127.0.0.1")
    first = proxy.get("/mw/other", headers={"X-Forwarded-For": f"6.6.6.6, {client_ip}"})
    second = proxy.get("/mw/other", headers={"X-Forwarded-For": f"7.7.7.7, {client_ip}"})
    other = proxy.get("/mw/other", headers={"X-Forwarded-For": f"6.6.6.6, {new_ip()}"})
    assert (first.status_code, second.status_code, other.status_code) == (200, 429, 200)
    # IPv4-mapped peers are the IPv4 client.
    mapped = new_ip()
    assert Client(REMOTE_ADDR=f"::ffff:{mapped}").get("/mw/other").status_code == 200
    assert Client(REMOTE_ADDR=mapped).get("/mw/other").status_code == 429
