"""``RateLimitMiddleware``: django-smart-ratelimit's settings, one CheckLimit per request.

In ``process_view`` it knows the view, so it sends in one call the path's
rate (``RATE_LIMITS``, longest prefix first, else ``DEFAULT_RATE``) and
every ``@rate_limit`` of the view; the decorators then reuse that decision
(the original counted twice). The policy's own rules apply to every request
it checks. It adds the decision's headers to every response and answers
429 (over a limit) or 503 (service failing closed) itself.

Put it after ``AuthenticationMiddleware`` (``user`` keys need the user).
For DRF views with ratelimitd throttles it leaves the call to the
throttles, which run after DRF's authentication, and they send the path's
and the decorators' limits too; if the view never reaches them (a 401),
the check is made after the view, so every request is still counted once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

from ratelimitd._spec import LimitSpec
from ratelimitd.django import conf, core
from ratelimitd.django.decorators import SPECS_ATTRIBUTE, default_group, named_specs

GetResponse = Callable[[HttpRequest], Any]


class RateLimitMiddleware:
    """Sync and async capable: under ASGI it checks on the event loop with the AsyncClient."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)
            # Django adapts process_view to the handler's mode by its type.
            self.process_view = self._aprocess_view  # type: ignore[method-assign,assignment]

    def __call__(self, request: HttpRequest) -> Any:
        """Runs the view, makes a check left undone (deferred, never reached), adds the headers."""
        if self.async_mode:
            return self.__acall__(request)
        response = self.get_response(request)
        state = core.state_of(request)
        if state.deferred and state.decision is None:
            denied = core.verdict(request, core.check(request, state.deferred), state.deferred)
            response = denied or response
        return core.add_headers(response, state.decision)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        response = await self.get_response(request)
        state = core.state_of(request)
        if state.deferred and state.decision is None:
            denied = core.verdict(request, await core.acheck(request, state.deferred), state.deferred)
            response = denied or response
        return core.add_headers(response, state.decision)

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponse | None:
        """Checks before the view runs (sync handler)."""
        specs = self._specs_to_check(request, view_func)
        if specs is None:
            return None
        return core.verdict(request, core.check(request, specs), specs)

    async def _aprocess_view(
        self, request: HttpRequest, view_func: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponse | None:
        specs = self._specs_to_check(request, view_func)
        if specs is None:
            return None
        return core.verdict(request, await core.acheck(request, specs), specs)

    def _specs_to_check(self, request: HttpRequest, view_func: Callable[..., Any]) -> list[LimitSpec] | None:
        """What to send now; ``None`` when nothing is checked here (disabled, skipped, or deferred)."""
        if not conf.service_settings()["ENABLED"]:
            return None
        settings = conf.middleware_settings()
        if any(request.path_info.startswith(prefix) for prefix in settings["SKIP_PATHS"]):
            return None  # the view's own decorators still check, by themselves
        specs = [*path_specs(request.path_info, settings), *view_specs(view_func, request)]
        if _has_ratelimitd_throttles(view_func):
            core.state_of(request).deferred = specs
            return None
        return specs


def path_specs(path: str, settings: dict[str, Any]) -> list[LimitSpec]:
    """The path's rate: the longest ``RATE_LIMITS`` prefix, else ``DEFAULT_RATE``, else none."""
    prefixes = [p for p in settings["RATE_LIMITS"] if path.startswith(p)]
    if prefixes:
        prefix = max(prefixes, key=len)
        group, rate = f"middleware:{prefix}", settings["RATE_LIMITS"][prefix]
    elif settings["DEFAULT_RATE"]:
        group, rate = "middleware:default", settings["DEFAULT_RATE"]
    else:
        return []
    return [
        LimitSpec.declare(
            group=group,
            key=conf.resolve(settings["KEY_FUNCTION"]) or "ip",
            rate=rate,
            block=bool(settings["BLOCK"]),
            algorithm=settings["ALGORITHM"],
        )
    ]


def view_specs(view_func: Callable[..., Any], request: HttpRequest) -> list[LimitSpec]:
    """The ``@rate_limit`` specs of the view that will handle ``request``, named as the decorators name them.

    A function view carries them; a class-based view (Django's ``view_class``,
    DRF's ``cls`` and viewset ``actions``) has them on ``dispatch`` or the
    method handling the request.
    """
    cls: type | None = getattr(view_func, "view_class", None) or getattr(view_func, "cls", None)
    if cls is None:
        return named_specs(getattr(view_func, SPECS_ATTRIBUTE, ()), default_group(None, view_func))
    return class_view_specs(cls, getattr(view_func, "actions", None), request.method)


def class_view_specs(cls: type, actions: dict[str, str] | None, method: str | None) -> list[LimitSpec]:
    """The specs on a class-based view's ``dispatch`` and on the handler of ``method`` (or its action)."""
    method = (method or "get").lower()
    actions = actions or {}
    found: list[LimitSpec] = []
    for name in ("dispatch", actions.get(method, method)):
        handler = getattr(cls, name, None)
        if handler is not None:
            # A handler decorated directly (or via method_decorator) is named
            # after its class and name, as the decorator names it at call time.
            group = f"{cls.__module__}.{cls.__qualname__}.{name}"
            named = named_specs(getattr(handler, SPECS_ATTRIBUTE, ()), group)
            found.extend(s for s in named if s not in found)
    return found


def _has_ratelimitd_throttles(view_func: Callable[..., Any]) -> bool:
    try:
        from ratelimitd.drf import RatelimitdThrottle
    except ImportError:  # DRF is optional
        return False

    cls = getattr(view_func, "cls", None)
    return cls is not None and any(
        isinstance(t, type) and issubclass(t, RatelimitdThrottle)
        for t in getattr(cls, "throttle_classes", ())
    )
