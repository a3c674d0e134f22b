"""One check per Django request, whoever asks first: the middleware, a decorator, a throttle.

Every integration gathers its :class:`~ratelimitd._spec.LimitSpec` objects
and calls :func:`check` (or :func:`acheck`). The first call of a request
makes the one CheckLimit, with every spec it was given; later callers whose
specs it covered reuse the decision (a decorator under the middleware,
stacked decorators, several DRF throttle classes). State lives on the Django
``HttpRequest`` (``request._request`` for a DRF ``Request``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse

from ratelimitd._proto.ratelimit.v1 import ratelimit_pb2 as pb
from ratelimitd._spec import Gathered, LimitSpec, RequestState, response_headers
from ratelimitd.decision import Decision
from ratelimitd.django import conf


class Ratelimited(Exception):  # noqa: N818 (django-ratelimit's name)
    """What a ``RATELIMITD['VIEW']`` receives (as django-ratelimit's ``RATELIMIT_VIEW`` does)."""

    def __init__(self, decision: Decision) -> None:
        super().__init__("rate limited" if decision.code == "OVER_LIMIT" else "rate limiter unavailable")
        self.decision = decision


class DjangoReader:
    """How specs read a Django (or DRF) request."""

    def method(self, request: Any) -> str:
        """The method, upper case."""
        return str(request.method or "").upper()

    def param(self, request: Any, source: str, name: str) -> str:
        """``request.GET``/``request.POST``, ``""`` when absent (as django-ratelimit keys)."""
        params = request.GET if source == "get" else request.POST
        return str(params.get(name, ""))

    def header(self, request: Any, name: str) -> str | None:
        """A header, case-insensitively."""
        value = request.headers.get(name)
        return None if value is None else str(value)


READER = DjangoReader()


def django_request(request: Any) -> HttpRequest:
    """The ``HttpRequest`` under a DRF ``Request`` (or the request itself)."""
    return getattr(request, "_request", request)  # type: ignore[no-any-return]


def state_of(request: Any) -> RequestState:
    """The request's state, created on first use."""
    underlying = django_request(request)
    state: RequestState | None = getattr(underlying, "_ratelimitd", None)
    if state is None:
        state = RequestState()
        underlying._ratelimitd = state  # type: ignore[attr-defined]
    return state


def needs_check(request: Any, specs: Iterable[LimitSpec]) -> bool:
    """Whether the request still needs a call for ``specs`` (not yet decided, or not all covered)."""
    return state_of(request).needs_check(specs)


def build(
    request: Any, specs: Sequence[LimitSpec], user: Any, cost: int | None = None
) -> pb.CheckLimitRequest:
    """The CheckLimitRequest for ``request`` and ``specs``; ``user`` already fetched (sync or async)."""
    options = conf.service_settings()
    gathered = Gathered.of(specs, request, READER)
    meta = request.META
    return conf.clients().sync.request(
        limits=gathered.limits,
        cost=cost,
        descriptors=gathered.descriptors,
        peer_ip=meta.get(options["IP_META_KEY"]),
        forwarded_for=meta.get("HTTP_X_FORWARDED_FOR"),
        user=user_id(user),
        api_key=request.headers.get(options["API_KEY_HEADER"]),
        method=request.method,
        path=request.path,
        headers=gathered.headers,
    )


def user_id(user: Any) -> str | None:
    """``str(user.pk)`` of an authenticated user, else ``None`` (anonymous: counted by IP)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return str(user.pk)


def _sync_user(request: Any) -> Any:
    return getattr(request, "user", None) if conf.service_settings()["SEND_USER"] else None


async def _async_user(request: Any) -> Any:
    if not conf.service_settings()["SEND_USER"]:
        return None
    # DRF's Request authenticates lazily in sync code; Django's auser()
    # reads the session without blocking the loop.
    if hasattr(request, "_request") or not hasattr(request, "auser"):
        return await sync_to_async(_sync_user)(request)
    return await request.auser()


def check(request: Any, specs: Sequence[LimitSpec]) -> Decision:
    """The request's decision, making the one call if it has not been made (sync code)."""
    state = state_of(request)
    if not state.needs_check(specs):
        assert state.decision is not None
        return state.decision
    proto = build(request, specs, _sync_user(request))
    return state.record(specs, conf.clients().sync.decide(proto))


async def acheck(request: Any, specs: Sequence[LimitSpec]) -> Decision:
    """:func:`check` for async code.

    Under ASGI the AsyncClient answers on the server's loop; under WSGI an
    async view runs in a one-off loop, where an aio channel would be made
    per request, so the sync client answers from a thread.
    """
    state = state_of(request)
    if not state.needs_check(specs):
        assert state.decision is not None
        return state.decision
    proto = build(request, specs, await _async_user(request))
    clients = conf.clients()
    if isinstance(django_request(request), ASGIRequest):
        decision = await clients.asynchronous.decide(proto)
    else:
        decision = await sync_to_async(clients.sync.decide, thread_sensitive=False)(proto)
    return state.record(specs, decision)


def mark(request: Any, decision: Decision, specs: Iterable[LimitSpec]) -> None:
    """``request.limited`` (over a limit, blocking or not) and ``request.ratelimit`` (the decision)."""
    names = [s.group for s in specs if not s.block]
    underlying = django_request(request)
    limited = not decision.allowed or decision.over_limit(names)
    for target in {id(underlying): underlying, id(request): request}.values():
        target.limited = getattr(target, "limited", False) or limited
        target.ratelimit = decision


def verdict(request: Any, decision: Decision, specs: Iterable[LimitSpec]) -> HttpResponse | None:
    """Marks the request; the response refusing it, or ``None`` when it may go through."""
    mark(request, decision, specs)
    return None if decision.allowed else denial_response(request, decision)


def denial_response(request: Any, decision: Decision) -> HttpResponse:
    """429 when over a limit, 503 when the service failed closed (never 429: not the client's fault).

    ``RATELIMITD['VIEW']`` (a view or its dotted path) replaces the default
    body, called as ``view(request, exception)``; the headers are added to
    whatever it returns.
    """
    view = conf.resolve(conf.service_settings()["VIEW"])
    exception = Ratelimited(decision)
    if view is not None:
        response: HttpResponse = view(django_request(request), exception)
    elif decision.code == "UNAVAILABLE":
        response = HttpResponse(
            "Service Unavailable: rate limiter unavailable\n", status=503, content_type="text/plain"
        )
    else:
        response = HttpResponse("Too Many Requests\n", status=429, content_type="text/plain")
    return add_headers(response, decision)


def add_headers(response: HttpResponse, decision: Decision | None) -> HttpResponse:
    """The decision's headers (:func:`ratelimitd._spec.response_headers`) on ``response``."""
    if decision is not None:
        for name, value in response_headers(decision).items():
            response[name] = value
    return response


def get_usage(
    request: Any,
    group: str | None = None,
    fn: Any = None,
    key: Any = "ip",
    rate: Any = None,
    method: Any = None,
    increment: bool = False,
) -> dict[str, Any] | None:
    """django-ratelimit's ``get_usage``: one limit's state for this request, from the service.

    ``increment=False`` sends cost 0 (consumes nothing: ``should_limit``
    then says whether one more hit would be refused). ``None`` when the
    limit does not apply (no rate, another method, skipped). ``count`` and
    ``limit`` are ``None`` when the service could not say (a fallback
    decided). This is its own CheckLimit, beside the request's one check.
    """
    if rate is None:
        return None
    if group is None:
        if fn is None:
            raise ValueError("get_usage needs a group or a fn")
        group = f"{fn.__module__}.{fn.__qualname__}"
    spec = LimitSpec.declare(group=group, key=key, rate=rate, method=method)
    if spec.resolve(request, READER) is None:
        return None
    proto = build(request, [spec], _sync_user(request), cost=1 if increment else 0)
    decision = conf.clients().sync.decide(proto)
    status = next((s for s in decision.statuses if s.rule == group), None)
    return {
        "count": status.limit - status.remaining if status else None,
        "limit": status.limit if status else None,
        "remaining": status.remaining if status else None,
        "should_limit": status.over_limit if status else not decision.allowed,
        "time_left": status.reset_after if status else decision.reset_after,
        "decision": decision,
    }


def is_ratelimited(
    request: Any,
    group: str | None = None,
    fn: Any = None,
    key: Any = "ip",
    rate: Any = None,
    method: Any = None,
    increment: bool = False,
) -> bool:
    """django-ratelimit's ``is_ratelimited``: whether this limit refuses the request now."""
    usage = get_usage(request, group, fn, key, rate, method, increment)
    return bool(usage and usage["should_limit"])
