"""``@rate_limit`` (alias ``@ratelimit``): django-smart-ratelimit's decorator, decided by ratelimitd.

Stacked decorators, and a decorator under ``RateLimitMiddleware``, make one
CheckLimit per request: each decorator records its spec on the view (the
list travels through ``functools.wraps``, hence through
``method_decorator`` and well-behaved decorators in between), the
outermost check sends them all, and inner ones reuse its decision.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from ratelimitd._spec import ALL, KeyFunction, LimitSpec, RateFunction
from ratelimitd.django import conf, core

SPECS_ATTRIBUTE = "_ratelimitd_specs"
_VIEW_ATTRIBUTE = "_ratelimitd_view"

View = TypeVar("View", bound=Callable[..., Any])


def rate_limit(
    key: str | KeyFunction = "ip",
    rate: str | RateFunction | None = None,
    block: bool = True,
    algorithm: str | None = None,
    algorithm_config: Mapping[str, float] | None = None,
    skip_if: Callable[[Any], bool] | None = None,
    group: str | None = None,
    method: str | Iterable[str] | None = ALL,
) -> Callable[[View], View]:
    """Limits a view (function, ``async def``, a class-based view's method, a DRF action).

    - ``key``: ``'ip'``, ``'user'`` (per user, per IP for anonymous users),
      ``'user_or_ip'``, ``'api_key'`` (the ``X-API-Key`` header, else per IP),
      ``'header:<name>'``, ``'get:<param>'``, ``'post:<field>'``, or a
      callable ``(request) -> str`` (or ``(group, request)``); ``None`` from
      it skips the limit.
    - ``rate``: ``'N/period'`` or a callable ``(group, request) -> str | None``.
    - ``block``: ``True`` answers 429 when over; ``False`` lets the view run
      with ``request.limited = True`` (the limit is sent in shadow mode: it
      never denies, so it never stops the other limits from counting).
    - ``algorithm``: ``'fixed_window' | 'sliding_window' | 'sliding_log' |
      'token_bucket' | 'gcra'`` (``None``: the policy's default);
      ``algorithm_config``: ``bucket_size`` (→ burst), ``refill_rate``
      (tokens a second → the rate), ``initial_tokens``.
    - ``skip_if``: ``(request) -> bool``; ``group``: the counter's name
      (default: the view's module and qualified name, with its class for
      methods); ``method``: the methods limited (``ALL``, ``UNSAFE``,
      ``'POST'``, ``['GET', 'POST']``).
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

    def decorate(view: View) -> View:
        specs: tuple[LimitSpec, ...] = (spec, *getattr(view, SPECS_ATTRIBUTE, ()))
        # Stacked directly: call the innermost view once, not each wrapper.
        inner: Callable[..., Any] = getattr(view, _VIEW_ATTRIBUTE, view)
        if inspect.iscoroutinefunction(inner):
            wrapper = _async_wrapper(inner, specs)
        else:
            wrapper = _sync_wrapper(inner, specs)
        functools.update_wrapper(wrapper, view)
        setattr(wrapper, SPECS_ATTRIBUTE, specs)
        setattr(wrapper, _VIEW_ATTRIBUTE, inner)
        return wrapper  # type: ignore[return-value]

    return decorate


ratelimit = rate_limit


def default_group(owner: type | None, view: Callable[..., Any]) -> str:
    """A view's default group: ``module.Class.method`` for methods, else ``module.function``.

    The middleware (from the view it resolved) and the decorator (from the
    call it wraps) compute the same names, so they recognise one another.
    """
    if owner is not None:
        return f"{owner.__module__}.{owner.__qualname__}.{view.__name__}"
    return f"{view.__module__}.{view.__qualname__}"


def named_specs(specs: Iterable[LimitSpec], group: str) -> list[LimitSpec]:
    """``specs``, those without a group given ``group``."""
    return [spec.named(group) for spec in specs]


def _bound(
    view: Callable[..., Any], specs: tuple[LimitSpec, ...], args: tuple[Any, ...]
) -> tuple[Any, list[LimitSpec]]:
    """The request, and the specs named for this view (a method's owner is ``self``'s class)."""
    request_at = next((i for i, a in enumerate(args[:2]) if hasattr(a, "META")), None)
    if request_at is None:
        raise TypeError("@rate_limit: the view was not given a request")
    if request_at == 1:
        owner: type | None = type(args[0])
    else:
        # method_decorator calls a partial of the method bound to the view.
        bound_to = getattr(getattr(view, "func", None), "__self__", None)
        owner = type(bound_to) if bound_to is not None else None
    return args[request_at], named_specs(specs, default_group(owner, view))


def _sync_wrapper(view: Callable[..., Any], specs: tuple[LimitSpec, ...]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not conf.service_settings()["ENABLED"]:
            return view(*args, **kwargs)
        request, named = _bound(view, specs, args)
        made_call = core.needs_check(request, named)
        denied = core.verdict(request, core.check(request, named), named)
        if denied is not None:
            return denied
        response = view(*args, **kwargs)
        return core.add_headers(response, core.state_of(request).decision) if made_call else response

    return wrapper


def _async_wrapper(view: Callable[..., Any], specs: tuple[LimitSpec, ...]) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not conf.service_settings()["ENABLED"]:
            return await view(*args, **kwargs)
        request, named = _bound(view, specs, args)
        made_call = core.needs_check(request, named)
        denied = core.verdict(request, await core.acheck(request, named), named)
        if denied is not None:
            return denied
        response = await view(*args, **kwargs)
        return core.add_headers(response, core.state_of(request).decision) if made_call else response

    return wrapper
