"""A decorator's (or dependency's, or throttle's) limit, as the user wrote it, per request.

``@rate_limit(key='ip', rate='10/m', ...)`` is a :class:`LimitSpec`; for each
request it becomes a declared :class:`~ratelimitd.Limit` plus whatever the
service needs to evaluate its key (a header, a descriptor holding a value
computed here). Shared by the Django, DRF and Starlette integrations, which
only differ in how they read a request (:class:`RequestReader`).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from ratelimitd.decision import Decision
from ratelimitd.limits import ALGORITHMS, Limit
from ratelimitd.rates import Rate, parse_rate

KeyFunction = Callable[..., "str | None"]
RateFunction = Callable[..., "str | None"]

# django-ratelimit's method constants.
ALL: None = None
UNSAFE: tuple[str, ...] = ("DELETE", "PATCH", "POST", "PUT")

# Named keys → the policy key language. `user` and `api_key` fall back to the
# IP for requests without one, as in django-smart-ratelimit.
_NAMED_KEYS = {
    "ip": "ip",
    "user": "user|ip",
    "user_or_ip": "user|ip",
    "api_key": "api_key|ip",
}
_ALGORITHM_CONFIG = {"bucket_size", "burst", "refill_rate", "initial_tokens"}
# Descriptor values travel as they are up to this size, hashed beyond
# (the service refuses values over its cap, 1024 bytes by default).
_MAX_VALUE_BYTES = 256


class RequestReader(Protocol):
    """How an integration reads its framework's request."""

    def method(self, request: Any) -> str:
        """The HTTP method, upper case."""

    def param(self, request: Any, source: str, name: str) -> str:
        """A query (``get``) or form (``post``) parameter; ``""`` when absent."""

    def header(self, request: Any, name: str) -> str | None:
        """A request header, ``None`` when absent."""


@dataclass(frozen=True)
class Resolved:
    """One spec for one request: the limit, and what its key needs sent along."""

    limit: Limit
    descriptors: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LimitSpec:
    """What ``@rate_limit`` was given. Checked when declared, so mistakes fail at import.

    Compared by value: the middleware finds a view's specs on the view
    before the request reaches it, the decorator meets them again inside,
    and the two must recognise one another (``method_decorator`` even
    re-applies the decorator on every call). ``group`` is empty until
    :meth:`named` gives the view's default name.
    """

    group: str
    key: str | KeyFunction = "ip"
    rate: str | RateFunction | None = None
    block: bool = True
    algorithm: str | None = None
    algorithm_config: tuple[tuple[str, float], ...] = ()
    skip_if: Callable[[Any], bool] | None = None
    methods: frozenset[str] | None = None

    def named(self, default: str) -> LimitSpec:
        """This spec with ``default`` as its group unless it was given one."""
        return self if self.group else replace(self, group=default)

    @classmethod
    def declare(
        cls,
        *,
        group: str = "",
        key: str | KeyFunction = "ip",
        rate: str | RateFunction | None = None,
        block: bool = True,
        algorithm: str | None = None,
        algorithm_config: Mapping[str, float] | None = None,
        skip_if: Callable[[Any], bool] | None = None,
        method: str | Iterable[str] | None = ALL,
    ) -> LimitSpec:
        """Validates the arguments of a decorator and normalises ``method``."""
        where = group or "rate_limit"
        if rate is None:
            raise ValueError(f"{where}: a rate is required (`N/period`, or a callable)")
        if isinstance(rate, str):
            parse_rate(rate)
        if algorithm is not None and algorithm not in ALGORITHMS:
            raise ValueError(
                f"{where}: unknown algorithm {algorithm!r}, expected one of: {', '.join(ALGORITHMS)}"
            )
        unknown = set(algorithm_config or {}) - _ALGORITHM_CONFIG
        if unknown:
            raise ValueError(
                f"{where}: unknown algorithm_config keys {sorted(unknown)}, "
                f"expected {sorted(_ALGORITHM_CONFIG)}"
            )
        if isinstance(key, str) and not _is_known_key(key):
            raise ValueError(
                f"{where}: unknown key {key!r}: expected ip, user, user_or_ip, api_key, "
                "header:<name>, get:<param>, post:<field>, a key of the policy's language, or a callable"
            )
        methods = (
            None
            if method is None
            else frozenset([method.upper()] if isinstance(method, str) else (m.upper() for m in method))
        )
        config = tuple(sorted((algorithm_config or {}).items()))
        return cls(group, key, rate, block, algorithm, config, skip_if, methods)

    def resolve(self, request: Any, reader: RequestReader) -> Resolved | None:
        """The declared limit for ``request``, or ``None`` when it does not apply to it.

        It does not apply when the method is not one of ``method``,
        ``skip_if`` says so, or a callable rate or key returns ``None``.
        """
        if not self.group:
            raise ValueError("a limit spec must be named before it is resolved")
        if self.methods is not None and reader.method(request) not in self.methods:
            return None
        if self.skip_if is not None and self.skip_if(request):
            return None
        rate_text = _call(self.rate, self.group, request) if callable(self.rate) else self.rate
        if rate_text is None:
            return None
        rate = parse_rate(rate_text)
        rate, extra = self._parameters(rate)
        keyed = self._key(request, reader)
        if keyed is None:
            return None
        part, descriptors, headers = keyed
        limit = Limit(
            name=self.group,
            rate=rate,
            key=(part,),
            algorithm=self.algorithm,  # type: ignore[arg-type]
            shadow=not self.block,
            **extra,  # type: ignore[arg-type]
        )
        return Resolved(limit, descriptors, headers)

    def _parameters(self, rate: Rate) -> tuple[Rate, dict[str, int]]:
        """``algorithm_config`` mapped: ``bucket_size`` → burst, ``refill_rate`` (per second) → rate."""
        config = dict(self.algorithm_config)
        extra: dict[str, int] = {}
        burst = config.get("bucket_size", config.get("burst"))
        if burst is not None:
            extra["burst"] = int(burst)
        if "initial_tokens" in config:
            extra["initial_tokens"] = int(config["initial_tokens"])
        if "refill_rate" in config:
            rate = Rate.per_second(float(config["refill_rate"]))
        return rate, extra

    def _key(self, request: Any, reader: RequestReader) -> tuple[str, dict[str, str], dict[str, str]] | None:
        """The key part in the policy's language, plus the descriptors and headers it reads."""
        key = self.key
        if isinstance(key, str) and "." in key and ":" not in key:
            module, _, name = key.rpartition(".")
            key = getattr(importlib.import_module(module), name)
        if callable(key):
            value = _call(key, self.group, request)
            return None if value is None else self._computed(str(value))
        if key in _NAMED_KEYS:
            return _NAMED_KEYS[key], {}, {}
        source, _, name = key.partition(":")
        if source in ("get", "post"):
            return self._computed(reader.param(request, source, name))
        if source == "header":
            value = reader.header(request, name)
            return key, {}, ({} if value is None else {name.lower(): value})
        return key, {}, {}

    def _computed(self, value: str) -> tuple[str, dict[str, str], dict[str, str]]:
        """A value computed here travels in a descriptor of its own, counted by the service."""
        if len(value.encode()) > _MAX_VALUE_BYTES:
            value = "sha256:" + hashlib.sha256(value.encode()).hexdigest()
        descriptor = f"ratelimitd.key.{self.group}"
        return f"descriptor:{descriptor}", {descriptor: value}, {}


@dataclass(frozen=True)
class Gathered:
    """Several specs resolved for one request: the limits, and the descriptors and headers their keys read."""

    limits: list[Limit]
    descriptors: dict[str, str]
    headers: dict[str, str]

    @classmethod
    def of(cls, specs: Iterable[LimitSpec], request: Any, reader: RequestReader) -> Gathered:
        """The specs that apply to ``request``, merged."""
        gathered = cls([], {}, {})
        for spec in specs:
            resolved = spec.resolve(request, reader)
            if resolved is not None:
                gathered.limits.append(resolved.limit)
                gathered.descriptors.update(resolved.descriptors)
                gathered.headers.update(resolved.headers)
        return gathered


@dataclass
class RequestState:
    """What a request's one check decided, and for which specs (kept on the request)."""

    decision: Decision | None = None
    covered: set[LimitSpec] = field(default_factory=set)
    # Specs gathered by a middleware but left to a later caller (DRF
    # throttles, which know the authenticated user) to send with its own.
    deferred: list[LimitSpec] = field(default_factory=list)

    def needs_check(self, specs: Iterable[LimitSpec]) -> bool:
        """Whether ``specs`` still need a call (nothing decided yet, or not all of them covered)."""
        return self.decision is None or not set(specs) <= self.covered

    def record(self, specs: Iterable[LimitSpec], decision: Decision) -> Decision:
        """Remembers the decision and what it covered."""
        self.decision = decision
        self.covered.update(specs)
        return decision


def response_headers(decision: Decision) -> dict[str, str]:
    """The headers of an HTTP response for ``decision``: the service's, verbatim.

    A denial decided locally has none from the service; the response still
    says when to come back (``Retry-After``, seconds rounded up).
    """
    headers = dict(decision.headers)
    if decision.code == "OVER_LIMIT" and not any(k.lower() == "retry-after" for k in headers):
        headers["Retry-After"] = str(math.ceil(decision.retry_after))
    return headers


def _is_known_key(key: str) -> bool:
    source, colon, _ = key.partition(":")
    if "." in key and not colon:
        return True  # a dotted path to a key function, as django-ratelimit takes
    if colon:
        return source in ("get", "post", "header", "descriptor")
    parts = key.split("|")
    return key in _NAMED_KEYS or all(p in ("ip", "user", "api_key", "path", "method") for p in parts)


def _call(function: Callable[..., str | None], group: str, request: Any) -> str | None:
    """``function(request)``, or ``function(group, request)`` as django-ratelimit calls it."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return function(request)
    positional = [p for p in parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return function(group, request) if len(positional) >= 2 else function(request)
