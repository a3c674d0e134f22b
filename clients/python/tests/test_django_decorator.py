"""@rate_limit on Django views, against the real service (no middleware: the decorator calls itself)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.test import AsyncClient, Client

from ratelimitd import ALGORITHMS
from ratelimitd.django import get_usage, is_ratelimited
from tests.server import Server

IP_GROUP = "tests.django_project.views.ip_view"


def forwarded(ip: str) -> dict[str, str]:
    """The ASGI test client's peer is 127.0.0.1, a trusted proxy in the test policy: the client is ip."""
    return {"X-Forwarded-For": ip}


def get(ip: str, url: str, **headers: str) -> Any:
    return Client(REMOTE_ADDR=ip).get(url, headers=headers)


def test_ip_three_a_minute_then_429_with_exact_headers(new_ip: Callable[[], str], ratelimitd: Server) -> None:
    ip = new_ip()
    for remaining in ("2", "1", "0"):
        response = get(ip, "/ip")
        assert response.status_code == 200
        assert response["X-RateLimit-Limit"] == "3"
        assert response["X-RateLimit-Remaining"] == remaining
        assert response["RateLimit-Policy"] == f'"{IP_GROUP}.default";q=3;w=60'
        assert "Retry-After" not in response
    denied = get(ip, "/ip")
    assert denied.status_code == 429
    # sliding_log (the test policy's default): the first hit leaves the
    # window a full minute after it was made, less than a second ago.
    assert denied["Retry-After"] == "60"
    assert denied["X-RateLimit-Limit"] == "3"
    assert denied["X-RateLimit-Remaining"] == "0"
    assert abs(int(denied["X-RateLimit-Reset"]) - (time.time() + 60)) <= 2
    assert get(new_ip(), "/ip").status_code == 200  # another client, another counter


def test_user_key_counts_users_and_falls_back_to_the_ip_for_anonymous(new_ip: Callable[[], str]) -> None:
    ip = new_ip()
    assert [get(ip, "/user").status_code for _ in range(3)] == [200, 200, 429]
    # Same address, logged in: the user's own counter.
    assert [get(ip, "/user", X_Test_User="alice").status_code for _ in range(3)] == [200, 200, 429]
    assert get(ip, "/user", X_Test_User="bob").status_code == 200
    # Alice from anywhere is still Alice.
    assert get(new_ip(), "/user", X_Test_User="alice").status_code == 429


def test_callable_key_and_rate(new_ip: Callable[[], str]) -> None:
    ip = new_ip()
    tenant = f"t-{ip}"
    assert [get(ip, "/callable", X_Tenant=tenant, X_Plan="free").status_code for _ in range(2)] == [200, 429]
    # Counted per tenant, not per address.
    assert get(new_ip(), "/callable", X_Tenant=tenant, X_Plan="free").status_code == 429
    other = f"u-{ip}"
    assert [get(ip, "/callable", X_Tenant=other).status_code for _ in range(4)] == [200, 200, 200, 429]
    # No tenant: the key callable returns None and the limit does not apply.
    assert [get(ip, "/callable").status_code for _ in range(4)] == [200] * 4


def test_dotted_path_key_and_api_key(new_ip: Callable[[], str]) -> None:
    tenant = f"d-{new_ip()}"
    assert get(new_ip(), "/dotted", X_Tenant=tenant).status_code == 200
    assert get(new_ip(), "/dotted", X_Tenant=tenant).status_code == 429
    key = f"k-{new_ip()}"
    assert get(new_ip(), "/api-key", X_API_Key=key).status_code == 200
    assert get(new_ip(), "/api-key", X_API_Key=key).status_code == 429  # per key, from anywhere
    ip = new_ip()
    assert [get(ip, "/api-key").status_code for _ in range(2)] == [200, 429]  # no key: per IP


def test_block_false_marks_the_request_and_runs_the_view(new_ip: Callable[[], str]) -> None:
    ip = new_ip()
    first, second, third = (get(ip, "/noblock") for _ in range(3))
    assert (first.status_code, first.json()["limited"]) == (200, False)
    assert (second.status_code, second.json()["limited"]) == (200, True)
    assert (third.status_code, third.json()["limited"]) == (200, True)
    assert second.json()["statuses"][0]["shadow"] is True


def test_skip_if(new_ip: Callable[[], str], ratelimitd: Server) -> None:
    ip = new_ip()
    before = ratelimitd.check_limit_calls()
    assert [get(ip, "/skip", X_Staff="1").status_code for _ in range(3)] == [200] * 3
    assert [get(ip, "/skip").status_code for _ in range(2)] == [200, 429]
    # Skipped requests still ask the service (its policy rules apply), without the limit.
    assert ratelimitd.check_limit_calls() - before == 5


def test_stacked_groups_make_one_call_and_both_limits_apply(
    new_ip: Callable[[], str], ratelimitd: Server
) -> None:
    ip = new_ip()
    before = ratelimitd.check_limit_calls()
    first = get(ip, "/stacked")
    assert sorted(s["rule"] for s in first.json()["statuses"]) == ["anon", "auth"]
    assert get(ip, "/stacked").status_code == 200
    denied = get(ip, "/stacked")
    assert denied.status_code == 429
    assert denied["X-RateLimit-Limit"] == "2"  # the anon group's
    assert ratelimitd.check_limit_calls() - before == 3
    # A user from that address is counted by the auth group (per user): the
    # anon group still counts the address, which is over.
    assert get(ip, "/stacked", X_Test_User="carol").status_code == 429
    assert get(new_ip(), "/stacked", X_Test_User="carol").status_code == 200


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_name_reaches_the_service(algorithm: str, new_ip: Callable[[], str]) -> None:
    (status,) = get(new_ip(), f"/algo/{algorithm}").json()["statuses"]
    assert status["rule"] == f"algo.{algorithm}"
    assert status["algorithm"] == algorithm
    if algorithm == "token_bucket":
        # bucket_size → burst (the capacity), refill_rate 2.0/s → rate 2/s.
        assert (status["limit"], status["window"]) == (5, 1.0)
    else:
        assert (status["limit"], status["window"]) == (3, 60.0)


def test_async_view_under_wsgi_and_asgi(new_ip: Callable[[], str], ratelimitd: Server) -> None:
    ip = new_ip()
    before = ratelimitd.check_limit_calls()
    # WSGI: the async view runs in a one-off loop; the sync client answers from a thread.
    assert [get(ip, "/async").status_code for _ in range(3)] == [200, 200, 429]

    async def asgi() -> list[int]:
        client, ip = AsyncClient(), new_ip()
        return [(await client.get("/async", headers=forwarded(ip))).status_code for _ in range(3)]

    # ASGI: the AsyncClient answers on the loop.
    assert asyncio.run(asgi()) == [200, 200, 429]
    assert ratelimitd.check_limit_calls() - before == 6


@pytest.mark.parametrize("url", ["/cbv/dispatch", "/cbv/method"])
def test_class_based_views(url: str, new_ip: Callable[[], str]) -> None:
    ip = new_ip()
    responses = [get(ip, url) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0]["X-RateLimit-Limit"] == "2"


def test_get_usage_and_is_ratelimited(new_ip: Callable[[], str], rf: object) -> None:
    request = rf.get("/anything", REMOTE_ADDR=new_ip())  # type: ignore[attr-defined]
    usage = get_usage(request, group="usage", key="ip", rate="2/m")
    assert usage is not None
    assert (usage["count"], usage["limit"], usage["should_limit"]) == (0, 2, False)
    assert not is_ratelimited(request, group="usage", key="ip", rate="2/m", increment=True)
    assert not is_ratelimited(request, group="usage", key="ip", rate="2/m", increment=True)
    # Peeking (cost 0) consumes nothing: the third hit would be refused.
    assert is_ratelimited(request, group="usage", key="ip", rate="2/m")
    usage = get_usage(request, group="usage", key="ip", rate="2/m")
    assert usage is not None
    assert (usage["count"], usage["should_limit"]) == (2, True)
    assert 59 < usage["time_left"] <= 60
    assert get_usage(request, group="usage", key="ip", rate="2/m", method="POST") is None
