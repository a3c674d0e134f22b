"""Starlette (and FastAPI) middleware: the path's rate and the route's limits in one call.

``app.add_middleware(RateLimitMiddleware, client=AsyncClient(...),
rate_limits={'/api/': '100/m'}, default_rate=None, skip_paths=[...])``:
before the route runs it sends the path's rate (longest prefix, else
``default_rate``) together with the ``ratelimitd.fastapi.rate_limit``
dependencies of the route it will reach, so the dependencies reuse that one
decision. Headers go on every response; 429 when over, 503 when the
service fails closed. The client is also published on ``request.state``
for the dependencies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ratelimitd._spec import Gathered, KeyFunction, LimitSpec, RequestState, response_headers
from ratelimitd.client import AsyncClient
from ratelimitd.decision import Decision

SPEC_ATTRIBUTE = "_ratelimitd_spec"
UserFunction = Callable[[Request], "str | None"]


class StarletteReader:
    """How specs read a Starlette request."""

    def method(self, request: Any) -> str:
        """The method, upper case."""
        return str(request.method).upper()

    def param(self, request: Any, source: str, name: str) -> str:
        """Query parameters only: a form is read asynchronously (use a callable key)."""
        if source != "get":
            raise ValueError(
                "post:<field> keys are not available with Starlette; read the form in a callable key"
            )
        return str(request.query_params.get(name, ""))

    def header(self, request: Any, name: str) -> str | None:
        """A header, case-insensitively."""
        value = request.headers.get(name)
        return None if value is None else str(value)


READER = StarletteReader()


def default_user(request: Request) -> str | None:
    """Starlette's ``AuthenticationMiddleware`` user (its ``identity``, else ``display_name``), if any."""
    user = request.scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return str(getattr(user, "identity", None) or user.display_name)


def state_of(request: Request) -> RequestState:
    """The request's state (in its scope, shared by the middleware and the dependencies)."""
    state: RequestState | None = getattr(request.state, "ratelimitd", None)
    if state is None:
        state = RequestState()
        request.state.ratelimitd = state
    return state


async def check(
    request: Request,
    specs: Iterable[LimitSpec],
    client: AsyncClient,
    user: UserFunction = default_user,
    api_key_header: str = "X-API-Key",
) -> Decision:
    """The request's decision, making the one call if it has not been made for ``specs``."""
    specs = list(specs)
    state = state_of(request)
    if not state.needs_check(specs):
        assert state.decision is not None
        return state.decision
    gathered = Gathered.of(specs, request, READER)
    decision = await client.check(
        limits=gathered.limits,
        descriptors=gathered.descriptors,
        peer_ip=request.client.host if request.client else None,
        forwarded_for=request.headers.get("x-forwarded-for"),
        user=user(request),
        api_key=request.headers.get(api_key_header),
        method=request.method,
        path=request.url.path,
        headers=gathered.headers,
    )
    return state.record(specs, decision)


def mark(request: Request, decision: Decision, specs: Iterable[LimitSpec]) -> None:
    """``request.state.limited`` (over a limit, blocking or not) and ``request.state.ratelimit``."""
    names = [s.group for s in specs if not s.block]
    limited = not decision.allowed or decision.over_limit(names)
    request.state.limited = getattr(request.state, "limited", False) or limited
    request.state.ratelimit = decision


def denial_status(decision: Decision) -> int:
    """429 over a limit; 503 when the service failed closed (never 429: not the client's fault)."""
    return 503 if decision.code == "UNAVAILABLE" else 429


def route_specs(scope: Scope) -> list[LimitSpec]:
    """The ``rate_limit`` dependencies of the route ``scope`` will reach (FastAPI routes), named."""
    router = getattr(scope.get("app"), "router", None)
    for route in getattr(router, "routes", ()):
        match, child = route.matches(scope)
        if match == Match.FULL:
            return dependant_specs(getattr(route, "dependant", None), child.get("endpoint"))
    return []


def endpoint_group(endpoint: Any) -> str:
    """The default group of a route's limits: its endpoint's module and qualified name."""
    return f"{endpoint.__module__}.{endpoint.__qualname__}" if endpoint is not None else "endpoint"


def dependant_specs(dependant: Any, endpoint: Any) -> list[LimitSpec]:
    """Every ``rate_limit`` dependency in a FastAPI dependency tree, named after the endpoint."""
    group = endpoint_group(endpoint)
    found: list[LimitSpec] = []
    pending = list(getattr(dependant, "dependencies", ()))
    while pending:
        current = pending.pop(0)
        spec = getattr(current.call, SPEC_ATTRIBUTE, None)
        if spec is not None and spec.named(group) not in found:
            found.append(spec.named(group))
        pending.extend(current.dependencies)
    return found


class RateLimitMiddleware:
    """Pure ASGI middleware (streaming responses pass through untouched but for headers)."""

    def __init__(
        self,
        app: ASGIApp,
        client: AsyncClient,
        *,
        rate_limits: Mapping[str, str] | None = None,
        default_rate: str | None = None,
        skip_paths: Iterable[str] = (),
        key: str | KeyFunction = "ip",
        block: bool = True,
        algorithm: str | None = None,
        user: UserFunction = default_user,
        api_key_header: str = "X-API-Key",
        denied: Callable[[Request, Decision], Response] | None = None,
    ) -> None:
        """``denied(request, decision)`` replaces the default 429/503 plain-text body."""
        self.app = app
        self.client = client
        self.skip_paths = tuple(skip_paths)
        self.user = user
        self.api_key_header = api_key_header
        self.denied = denied
        # One spec per prefix, made once: a mistake fails at startup.
        rates = dict(rate_limits or {})
        self.prefixes = sorted(rates, key=len, reverse=True)
        self.specs = {
            prefix: LimitSpec.declare(
                group=f"middleware:{prefix}", key=key, rate=rate, block=block, algorithm=algorithm
            )
            for prefix, rate in rates.items()
        }
        self.default = (
            LimitSpec.declare(
                group="middleware:default",
                key=key,
                rate=default_rate,
                block=block,
                algorithm=algorithm,
            )
            if default_rate
            else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Checks HTTP requests; passes everything else through."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        request.state.ratelimitd_client = self.client
        if request.url.path.startswith(self.skip_paths) and self.skip_paths:
            await self.app(scope, receive, send)
            return
        specs = [*self._path_specs(request.url.path), *route_specs(scope)]
        decision = await check(request, specs, self.client, self.user, self.api_key_header)
        mark(request, decision, specs)
        if not decision.allowed:
            response = (
                self.denied(request, decision)
                if self.denied
                else PlainTextResponse(
                    "Too Many Requests" if denial_status(decision) == 429 else "Service Unavailable",
                    denial_status(decision),
                )
            )
            response.headers.update(response_headers(decision))
            await response(scope, receive, send)
            return
        headers = response_headers(decision)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                MutableHeaders(scope=message).update(headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _path_specs(self, path: str) -> list[LimitSpec]:
        prefix = next((p for p in self.prefixes if path.startswith(p)), None)
        if prefix is not None:
            return [self.specs[prefix]]
        return [self.default] if self.default else []
