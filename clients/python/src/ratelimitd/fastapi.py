"""FastAPI dependency: ``Depends(rate_limit(key='ip', rate='10/m'))``, ``@rate_limit``'s options.

Under ``ratelimitd.starlette.RateLimitMiddleware`` the middleware has
already sent the route's dependencies with the path's rate, and this reuses
that decision. Alone, the first ``rate_limit`` dependency of a route sends
all of the route's (one call), the others reuse it. The client comes from
``client=``, else the middleware, else ``app.state.ratelimitd``. Denied:
``HTTPException`` 429 (503 when the service fails closed) with the headers;
allowed: the headers go on the response (when the endpoint returns data,
not its own ``Response``). The dependency's value is the :class:`Decision`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from fastapi import HTTPException, Request, Response

from ratelimitd._spec import ALL, KeyFunction, LimitSpec, RateFunction, response_headers
from ratelimitd.client import AsyncClient
from ratelimitd.decision import Decision
from ratelimitd.starlette import (
    SPEC_ATTRIBUTE,
    check,
    default_user,
    denial_status,
    dependant_specs,
    endpoint_group,
    mark,
)


def rate_limit(
    key: str | KeyFunction = "ip",
    rate: str | RateFunction | None = None,
    block: bool = True,
    algorithm: str | None = None,
    algorithm_config: Mapping[str, float] | None = None,
    skip_if: Callable[[Any], bool] | None = None,
    group: str | None = None,
    method: str | Iterable[str] | None = ALL,
    client: AsyncClient | None = None,
) -> Callable[[Request, Response], Awaitable[Decision]]:
    """A dependency limiting the route; the options of ``ratelimitd.django.rate_limit``.

    Callables receive the Starlette ``Request``; ``post:`` keys are not
    available (read the form in a callable key). The default group is the
    endpoint's module and qualified name.
    """
    spec = LimitSpec.declare(
        group=group or "",
        key=key,
        rate=rate,
        block=block,
        algorithm=algorithm,
        algorithm_config=algorithm_config,
        skip_if=skip_if,
        method=method,
    )

    async def dependency(request: Request, response: Response) -> Decision:
        endpoint = request.scope.get("endpoint")
        specs = dependant_specs(getattr(request.scope.get("route"), "dependant", None), endpoint)
        own = spec.named(endpoint_group(endpoint))
        if own not in specs:
            specs.append(own)
        state_client = (
            client
            or getattr(request.state, "ratelimitd_client", None)
            or getattr(request.app.state, "ratelimitd", None)
        )
        if state_client is None:
            raise RuntimeError(
                "ratelimitd: pass client=, add RateLimitMiddleware, or set app.state.ratelimitd"
            )
        decision = await check(request, specs, state_client, default_user)
        mark(request, decision, specs)
        if not decision.allowed:
            raise HTTPException(denial_status(decision), headers=response_headers(decision))
        response.headers.update(response_headers(decision))
        return decision

    setattr(dependency, SPEC_ATTRIBUTE, spec)
    return dependency
