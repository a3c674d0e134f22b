"""DRF throttles decided by ratelimitd: the four classes, wait(), one call for several classes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.test import Client
from rest_framework.test import APIRequestFactory

from ratelimitd.drf import AnonRatelimitdThrottle, drf_rate
from ratelimitd.rates import Rate
from tests.django_project.views import AnonUserView
from tests.server import Server


def run(ip: str, url: str, count: int, **headers: str) -> list[int]:
    client = Client(REMOTE_ADDR=ip)
    return [client.get(url, headers=headers).status_code for _ in range(count)]


def test_anon_throttle_and_one_call_for_two_classes(new_ip: Callable[[], str], ratelimitd: Server) -> None:
    client = Client(REMOTE_ADDR=new_ip())
    # DEFAULT_THROTTLE_RATES anon 2/min (DRF's spelling), user 3/minute.
    assert ratelimitd.statuses_and_calls(lambda: client.get("/drf/anon-user"), 2) == [(200, 1), (200, 1)]
    response = client.get("/drf/anon-user")
    assert response.status_code == 429
    assert response["Retry-After"] == "60"  # DRF's ceil(max(wait()))


def test_user_throttle_counts_authenticated_users(new_ip: Callable[[], str]) -> None:
    ip = new_ip()
    # The anon throttle does not apply to a user; the user throttle's 3/minute does.
    assert run(ip, "/drf/anon-user", 4, X_Test_User=f"dave-{ip}") == [200, 200, 200, 429]


def test_scoped_throttle(new_ip: Callable[[], str]) -> None:
    ip = new_ip()
    assert run(ip, "/drf/scoped", 2) == [200, 429]  # uploads: 1/m
    assert run(ip, "/drf/unscoped", 3) == [200, 200, 200]  # no throttle_scope: not throttled


def test_custom_throttle_rate(new_ip: Callable[[], str]) -> None:
    assert run(new_ip(), "/drf/custom", 3) == [200, 200, 429]


def test_wait_is_the_decisions_retry_after(new_ip: Callable[[], str]) -> None:
    factory = APIRequestFactory()
    view = AnonUserView.as_view()
    ip = new_ip()
    for _ in range(2):
        assert view(factory.get("/x", REMOTE_ADDR=ip)).status_code == 200
    throttle = AnonRatelimitdThrottle()
    request = AnonUserView().initialize_request(factory.get("/x", REMOTE_ADDR=ip))
    assert throttle.allow_request(request, AnonUserView()) is False
    wait = throttle.wait()
    assert wait is not None and 59 < wait <= 60
    assert throttle.decision is not None and throttle.decision.retry_after == wait


def test_viewset_with_decorator_throttle_and_middleware_one_call(
    settings: Any, new_ip: Callable[[], str], ratelimitd: Server
) -> None:
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "ratelimitd.django.middleware.RateLimitMiddleware"]
    settings.RATELIMIT_MIDDLEWARE = {"RATE_LIMITS": {"/drf/": "10/m"}}
    client = Client(REMOTE_ADDR=new_ip())
    # The middleware leaves the call to the throttle (after DRF's authentication),
    # which sends the path's rate and the action's @rate_limit (2/m) too.
    results = ratelimitd.statuses_and_calls(lambda: client.get("/drf/items/"), 3)
    assert results == [(200, 1), (200, 1), (429, 1)]
    assert client.get("/drf/items/")["X-RateLimit-Limit"] == "2"


def test_drf_rate_spellings() -> None:
    assert drf_rate("100/hour") == Rate(100, 3_600_000)
    assert drf_rate("5/minutely") == Rate(5, 60_000)  # DRF reads the first letter
    assert drf_rate("10/5m") == Rate(10, 300_000)


def test_viewset_with_decorator_and_throttle_without_middleware_one_call(
    new_ip: Callable[[], str], ratelimitd: Server
) -> None:
    client = Client(REMOTE_ADDR=new_ip())
    results = ratelimitd.statuses_and_calls(lambda: client.get("/drf/items/"), 3)
    assert results == [(200, 1), (200, 1), (429, 1)]
