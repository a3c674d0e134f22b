"""FastAPI/Starlette: the middleware and the dependency, exact 429s and headers, one call per request."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
from fastapi import Depends, FastAPI

from ratelimitd import AsyncClient
from ratelimitd.fastapi import rate_limit
from ratelimitd.starlette import RateLimitMiddleware
from tests.server import Server


def make_app(client: AsyncClient, middleware: bool) -> FastAPI:
    app = FastAPI()
    app.state.ratelimitd = client
    if middleware:
        app.add_middleware(
            RateLimitMiddleware,
            client=client,
            rate_limits={"/api/": "3/m"},
            default_rate="5/m",
            skip_paths=["/health"],
        )

    @app.get("/api/items")
    async def items() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/dep", dependencies=[Depends(rate_limit(key="ip", rate="2/m"))])
    async def dep() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get(
        "/api/two",
        dependencies=[
            Depends(rate_limit(key="ip", rate="2/m", group="two.ip")),
            Depends(rate_limit(key="header:x-tenant", rate="10/m", group="two.tenant")),
        ],
    )
    async def two() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"ok": "yes"}

    return app


def requests(
    server: Server, ip: str, url: str, count: int, middleware: bool, headers: dict[str, str] | None = None
) -> list[tuple[int, dict[str, str], int]]:
    async def run() -> list[tuple[int, dict[str, str], int]]:
        client = AsyncClient(server.grpc_addr, "web", timeout=2.0)
        transport = httpx.ASGITransport(app=make_app(client, middleware), client=(ip, 40000))
        results = []
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            for _ in range(count):
                before = server.check_limit_calls()
                response = await http.get(url, headers=headers)
                results.append(
                    (response.status_code, dict(response.headers), server.check_limit_calls() - before)
                )
        await client.close()
        return results

    return asyncio.run(run())


def test_dependency_exact_429_and_headers(ratelimitd: Server, new_ip: Callable[[], str]) -> None:
    results = requests(ratelimitd, new_ip(), "/dep", 3, middleware=False)
    assert [(status, calls) for status, _, calls in results] == [(200, 1), (200, 1), (429, 1)]
    assert [h["x-ratelimit-remaining"] for _, h, _ in results] == ["1", "0", "0"]
    denied = results[-1][1]
    assert (denied["retry-after"], denied["x-ratelimit-limit"]) == ("60", "2")
    assert denied["ratelimit-policy"] == '"tests.test_fastapi.make_app.<locals>.dep.default";q=2;w=60'


def test_middleware_rate_limits_default_rate_and_skip_paths(
    ratelimitd: Server, new_ip: Callable[[], str]
) -> None:
    results = requests(ratelimitd, new_ip(), "/api/items", 4, middleware=True)
    assert [(s, h["x-ratelimit-limit"]) for s, h, _ in results] == [(200, "3")] * 3 + [(429, "3")]
    assert results[-1][1]["retry-after"] == "60"
    results = requests(ratelimitd, new_ip(), "/dep", 3, middleware=True)
    # The route's dependency (2/m) beside the default rate (5/m), one call each.
    assert [(s, h["x-ratelimit-limit"], calls) for s, h, calls in results] == [
        (200, "2", 1), (200, "2", 1), (429, "2", 1),
    ]  # fmt: skip
    skipped = requests(ratelimitd, new_ip(), "/health", 3, middleware=True)
    assert [(s, "x-ratelimit-limit" in h, calls) for s, h, calls in skipped] == [(200, False, 0)] * 3


def test_several_dependencies_make_one_call(ratelimitd: Server, new_ip: Callable[[], str]) -> None:
    for middleware in (False, True):
        results = requests(ratelimitd, new_ip(), "/api/two", 3, middleware, headers={"x-tenant": new_ip()})
        assert [(s, calls) for s, _, calls in results] == [(200, 1), (200, 1), (429, 1)]
