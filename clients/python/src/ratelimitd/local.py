"""The local fallback (``on_error='local'``): decide in process while the service is away.

The client knows only the limits a request declares (the policy's rules live
in the service), so those are what it enforces, each limit's count (its
``burst`` for token bucket and GCRA, when larger) divided by
``local_replicas`` and rounded up, so that N app processes together stay
near the limit.

**Approximation**: every algorithm is decided as a fixed window of the
limit's period, aligned to multiples of the period on the client's clock,
with exact counts in each window: at most the divided count per window and
process, all-or-nothing across the request's limits like the service (a
denied request consumes nothing, except from ``count_denied`` limits;
``shadow`` limits never deny). Key parts are evaluated as the service
evaluates them (``ip`` resolved through the client's ``trusted_proxies``
and counted per /32 or /64, ``user|ip`` alternatives, a missing part means
the limit does not apply). Counters are per process and start empty.
"""

from __future__ import annotations

import ipaddress
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ratelimitd._proto.ratelimit.v1 import ratelimit_pb2 as pb
from ratelimitd.decision import Decision, LimitStatus, most_restrictive
from ratelimitd.ip import Network, resolve_client
from ratelimitd.limits import algorithm_from_proto
from ratelimitd.rates import parse_rate

# Counters kept before windows that have ended are swept.
_SWEEP_AT = 10_000


@dataclass
class _Counter:
    window: int
    ends_at: float
    count: int


@dataclass(frozen=True)
class _Applied:
    limit: pb.DeclaredLimit
    counter_key: tuple[object, ...]
    capacity: int
    period: float


class LocalLimiter:
    """Per-process counters for the declared limits of failed checks."""

    def __init__(
        self, replicas: int, trusted_proxies: tuple[Network, ...], clock: Callable[[], float]
    ) -> None:
        if replicas < 1:
            raise ValueError("local_replicas must be at least 1")
        self.replicas = replicas
        self._trusted = trusted_proxies
        self._clock = clock
        self._lock = threading.Lock()
        self._counters: dict[tuple[object, ...], _Counter] = {}

    def reset_after_fork(self) -> None:
        """A fresh lock in a forked child."""
        self._lock = threading.Lock()

    def decide(self, request: pb.CheckLimitRequest) -> Decision:
        """The local decision for ``request``: ``source='fallback'``, degraded, no headers."""
        cost = request.cost if request.HasField("cost") else 1
        applied = list(self._applied(request))
        with self._lock:
            now = self._clock()
            if len(self._counters) > _SWEEP_AT:
                self._sweep(now)
            counters = [self._counter(a, now) for a in applied]
            over = [c.count + cost > a.capacity for a, c in zip(applied, counters, strict=True)]
            allowed = not any(o and not a.limit.shadow for a, o in zip(applied, over, strict=True))
            for a, counter, is_over in zip(applied, counters, over, strict=True):
                if allowed or a.limit.count_denied or (a.limit.shadow and not is_over):
                    counter.count += cost
            statuses = tuple(
                self._status(a, c, o, now) for a, c, o in zip(applied, counters, over, strict=True)
            )
        tightest = most_restrictive(statuses)
        return Decision(
            allowed=allowed,
            code="OK" if allowed else "OVER_LIMIT",
            retry_after=tightest.retry_after if tightest and not allowed else 0.0,
            reset_after=tightest.reset_after if tightest else 0.0,
            remaining=tightest.remaining if tightest else None,
            limit=tightest.limit if tightest else None,
            statuses=statuses,
            degraded=True,
            shadowed=any(a.limit.shadow and o for a, o in zip(applied, over, strict=True)),
            source="fallback",
        )

    def _applied(self, request: pb.CheckLimitRequest) -> Iterator[_Applied]:
        for limit in request.limits:
            values = [self._key_value(part, request) for part in limit.key]
            if any(v is None for v in values):
                continue  # a part absent from the request: the limit does not apply
            rate = parse_rate(limit.rate)
            count = rate.count
            if algorithm_from_proto(limit.algorithm) in ("token_bucket", "gcra"):
                count = max(count, limit.burst)
            yield _Applied(
                limit=limit,
                counter_key=(limit.name, limit.algorithm, tuple(values)),
                capacity=math.ceil(count / self.replicas),
                period=rate.period_ms / 1000,
            )

    def _counter(self, applied: _Applied, now: float) -> _Counter:
        window = math.floor(now / applied.period)
        counter = self._counters.get(applied.counter_key)
        if counter is None or counter.window != window:
            ends_at = (window + 1) * applied.period
            counter = self._counters[applied.counter_key] = _Counter(window, ends_at, 0)
        return counter

    def _status(self, applied: _Applied, counter: _Counter, over: bool, now: float) -> LimitStatus:
        until_next_window = counter.ends_at - now
        return LimitStatus(
            rule=applied.limit.name,
            limit_name="default",
            algorithm=algorithm_from_proto(applied.limit.algorithm),
            limit=applied.capacity,
            window=applied.period,
            remaining=max(applied.capacity - counter.count, 0),
            reset_after=until_next_window if counter.count else 0.0,
            retry_after=until_next_window if over else 0.0,
            over_limit=over,
            shadow=applied.limit.shadow,
            failure="local",
        )

    def _sweep(self, now: float) -> None:
        # A counter whose window ended counts nothing any more.
        self._counters = {k: c for k, c in self._counters.items() if c.ends_at > now}

    def _key_value(self, part: str, request: pb.CheckLimitRequest) -> str | None:
        for source in part.split("|"):
            value = self._source_value(source.strip(), request)
            if value is not None:
                return value
        return None

    def _source_value(self, source: str, request: pb.CheckLimitRequest) -> str | None:
        kind, _, argument = source.partition(":")
        if kind == "ip":
            address = (
                ipaddress.ip_address(request.client_ip)
                if request.client_ip
                else resolve_client(request.peer_ip, request.forwarded_for, self._trusted)
            )
            if address is None:
                return None
            prefix = 32 if address.version == 4 else 64
            return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
        if kind in ("user", "api_key", "path"):
            return str(getattr(request, kind)) or None
        if kind == "method":
            return request.method.upper() or None
        if kind == "header":
            wanted = argument.lower()
            return next((v for k, v in request.headers.items() if k.lower() == wanted), None)
        if kind == "descriptor":
            return next((d.value for d in request.descriptors if d.key == argument), None)
        return None
