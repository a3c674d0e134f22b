"""Django REST Framework throttles decided by ratelimitd: one CheckLimit for all of a view's.

DRF calls every throttle class of a view in turn; here the first one sends
the limits of all the view's ratelimitd throttles (and those the middleware
left to them: the path's rate and the decorators'), and the others read
the same decision. They run after DRF's authentication, so token users
count as users. A service failing closed answers 503 (:class:`Unavailable`),
never 429.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from ratelimitd._spec import LimitSpec
from ratelimitd.decision import Decision
from ratelimitd.django import core
from ratelimitd.django.middleware import class_view_specs
from ratelimitd.rates import Rate, parse_rate


class Unavailable(APIException):
    """503: the rate limiter could not decide and fails closed; not the client's fault."""

    status_code = 503
    default_detail = "Rate limiter unavailable."
    default_code = "ratelimiter_unavailable"


class RatelimitdThrottle(BaseThrottle):
    """A throttle whose rate and key are declared to ratelimitd.

    ``scope`` names the counter (``throttle.<scope>``) and finds the rate in
    ``DEFAULT_THROTTLE_RATES`` unless ``rate`` is set (DRF's ``'100/hour'``
    or ratelimitd's ``'100/5m'``); ``key`` as ``@rate_limit``'s; ``algorithm``
    ``None`` is the policy's default. ``wait()`` is the decision's
    ``retry_after``.
    """

    scope: str | None = None
    rate: str | None = None
    key: str = "ip"
    algorithm: str | None = None

    decision: Decision | None = None

    def get_scope(self, view: Any) -> str | None:
        """The scope for this view (a class attribute here; the view's for scoped throttles)."""
        return self.scope

    def get_rate(self, scope: str) -> str | None:
        """``rate``, else ``DEFAULT_THROTTLE_RATES[scope]``."""
        rate = self.rate or api_settings.DEFAULT_THROTTLE_RATES.get(scope)
        return None if rate is None else str(rate)

    def applies(self, request: Request) -> bool:
        """Whether this throttle limits ``request`` (anonymous-only throttles say no to users)."""
        return True

    def spec(self, request: Request, view: Any) -> LimitSpec | None:
        """This throttle's declared limit for the request, or ``None`` when it does not limit it."""
        scope = self.get_scope(view)
        if scope is None or not self.applies(request):
            return None
        rate = self.get_rate(scope)
        if rate is None:
            return None
        return LimitSpec.declare(
            group=f"throttle.{scope}",
            key=self.key,
            rate=str(drf_rate(rate)),
            algorithm=self.algorithm,
        )

    def allow_request(self, request: Request, view: Any) -> bool:
        """Checks once for all of the view's ratelimitd throttles.

        Raises :class:`Unavailable` (503) when the service fails closed.
        """
        state = core.state_of(request)
        # With the middleware: what it deferred (the path's rate and the
        # view's decorators). Alone: the decorators of the action that will
        # run, so that they reuse this call too.
        decorated = state.deferred or class_view_specs(
            type(view), getattr(view, "action_map", None), request.method
        )
        specs = [*decorated, *_view_throttle_specs(request, view)]
        self.decision = core.check(request, specs)
        core.mark(request, self.decision, specs)
        if self.decision.code == "UNAVAILABLE":
            raise Unavailable()
        return self.decision.allowed

    def wait(self) -> float | None:
        """Seconds until the request would be admitted (DRF's ``Retry-After``); ``None`` when allowed."""
        if self.decision is None or self.decision.allowed:
            return None
        return self.decision.retry_after


class AnonRatelimitdThrottle(RatelimitdThrottle):
    """DRF's ``AnonRateThrottle``: anonymous requests, per IP, scope ``anon``."""

    scope = "anon"

    def applies(self, request: Request) -> bool:
        """Not for authenticated users."""
        return not (request.user and request.user.is_authenticated)


class UserRatelimitdThrottle(RatelimitdThrottle):
    """DRF's ``UserRateThrottle``: per user, per IP for anonymous requests, scope ``user``."""

    scope = "user"
    key = "user"


class ScopedRatelimitdThrottle(RatelimitdThrottle):
    """DRF's ``ScopedRateThrottle``: the view's ``throttle_scope``, per user or IP; none without one."""

    key = "user"
    scope_attr = "throttle_scope"

    def get_scope(self, view: Any) -> str | None:
        """The view's ``throttle_scope``."""
        return getattr(view, self.scope_attr, None)


def drf_rate(text: str) -> Rate:
    """A rate as DRF reads it (``'100/hour'``: the period's first letter) or as ratelimitd does."""
    try:
        return parse_rate(text)
    except ValueError:
        count, _, period = text.partition("/")
        seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}.get(period[:1])
        if not count.strip().isdigit() or seconds is None:
            raise
        return Rate(int(count), seconds * 1000)


def _view_throttle_specs(request: Request, view: Any) -> list[LimitSpec]:
    specs = []
    for throttle in view.get_throttles():
        if isinstance(throttle, RatelimitdThrottle):
            spec = throttle.spec(request, view)
            if spec is not None:
                specs.append(spec)
    return specs
