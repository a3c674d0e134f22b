"""What the sync and async clients share: everything but the call itself.

A check is ``gate`` (answer from the denial cache, or from the failure
policy while the breaker is open), then the RPC, then ``answered`` or
``failed``. Keeping the I/O out of here is what lets :class:`~ratelimitd.Client`
and :class:`~ratelimitd.AsyncClient` behave identically.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypedDict

import grpc

from ratelimitd._proto.ratelimit.v1 import ratelimit_pb2 as pb
from ratelimitd.breaker import DEFAULT_BREAKER, BreakerOptions, BreakerState, CircuitBreaker
from ratelimitd.decision import Decision
from ratelimitd.errors import CircuitOpenError, RequestError, ServiceError, classify
from ratelimitd.ip import normalize_ip, parse_networks
from ratelimitd.limits import Limit
from ratelimitd.local import LocalLimiter

if TYPE_CHECKING:  # Unpack is in typing from 3.11; annotations are never evaluated
    from typing_extensions import Unpack

ErrorHandler = Callable[[ServiceError, pb.CheckLimitRequest], Decision]
OnError = Literal["open", "closed", "local"] | ErrorHandler
Descriptors = Mapping[str, str] | Iterable[tuple[str, str]]


class CheckAttributes(TypedDict, total=False):
    """What a check may say about a request (every argument of ``check``)."""

    limits: Iterable[Limit]
    cost: int | None
    descriptors: Descriptors
    peer_ip: str | None
    forwarded_for: str | None
    client_ip: str | None
    user: str | None
    api_key: str | None
    method: str | None
    path: str | None
    headers: Mapping[str, str] | None
    domain: str | None


# Denials remembered at most (the oldest go first).
_DENY_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class Options:
    """Every client option; see :class:`ratelimitd.Client` for their meaning."""

    target: str
    domain: str
    timeout: float = 0.05
    credentials: grpc.ChannelCredentials | None = None
    channel_options: tuple[tuple[str, object], ...] = ()
    metadata: tuple[tuple[str, str], ...] = ()
    token: str | None = None
    on_error: OnError = "open"
    local_replicas: int = 1
    trusted_proxies: tuple[str, ...] = ()
    breaker: BreakerOptions | None = DEFAULT_BREAKER
    deny_cache: bool = False
    clock: Callable[[], float] = time.monotonic

    @property
    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        """What every call sends: ``metadata``, and the bearer token when one is given."""
        if self.token is None:
            return self.metadata
        return (*self.metadata, ("authorization", f"Bearer {self.token}"))

    def __repr__(self) -> str:
        # Never print the token (dataclass reprs show every field).
        fields = ", ".join(
            f"{name}={'***' if name == 'token' and value is not None else repr(value)}"
            for name, value in self.__dict__.items()
        )
        return f"Options({fields})"

    def __post_init__(self) -> None:
        if not self.domain:
            raise ValueError("a domain is required")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive (seconds)")
        if not callable(self.on_error) and self.on_error not in ("open", "closed", "local"):
            raise ValueError(
                f"on_error must be 'open', 'closed', 'local' or a callable, not {self.on_error!r}"
            )


class Core:
    """The decision logic around one call: breaker, denial cache, failure policy."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.breaker = CircuitBreaker(options.breaker, options.clock) if options.breaker else None
        self.local = LocalLimiter(
            options.local_replicas, parse_networks(options.trusted_proxies), options.clock
        )
        self._denials: dict[bytes, tuple[float, Decision]] = {}
        self._lock = threading.Lock()

    def reset_after_fork(self) -> None:
        """Fresh locks in a forked child (the parent's may have been held by another thread)."""
        self._lock = threading.Lock()
        self.local.reset_after_fork()
        if self.breaker:
            self.breaker.reset_after_fork()

    @property
    def breaker_state(self) -> BreakerState:
        """CLOSED, OPEN or HALF_OPEN (always CLOSED without a breaker)."""
        return self.breaker.state if self.breaker else "CLOSED"

    def request(self, **attributes: Unpack[CheckAttributes]) -> pb.CheckLimitRequest:
        """The CheckLimitRequest for these attributes (``peer_ip`` normalised: ``::ffff:`` unmapped)."""
        descriptors = attributes.get("descriptors") or ()
        pairs = descriptors.items() if isinstance(descriptors, Mapping) else descriptors
        request = pb.CheckLimitRequest(
            domain=attributes.get("domain") or self.options.domain,
            descriptors=[pb.DescriptorEntry(key=k, value=v) for k, v in pairs],
            client_ip=attributes.get("client_ip") or "",
            peer_ip=normalize_ip(attributes.get("peer_ip")),
            forwarded_for=attributes.get("forwarded_for") or "",
            user=attributes.get("user") or "",
            api_key=attributes.get("api_key") or "",
            method=attributes.get("method") or "",
            path=attributes.get("path") or "",
            headers=dict(attributes.get("headers") or {}),
            limits=[limit.to_proto() for limit in attributes.get("limits") or ()],
        )
        cost = attributes.get("cost")
        if cost is not None:
            request.cost = cost
        return request

    def gate(self, request: pb.CheckLimitRequest) -> Decision | None:
        """An answer without a call (a remembered denial, or the breaker is open), else None."""
        if self.options.deny_cache:
            cached = self._cached_denial(request)
            if cached is not None:
                return cached
        if self.breaker and not self.breaker.allow():
            return self.fallback(CircuitOpenError("the client's circuit breaker is open"), request)
        return None

    def answered(self, request: pb.CheckLimitRequest, response: pb.CheckLimitResponse) -> Decision:
        """The service's answer: closes the breaker, remembers a denial if asked to."""
        if self.breaker:
            self.breaker.record_success()
        decision = Decision.from_proto(response)
        if (
            self.options.deny_cache
            and decision.code == "OVER_LIMIT"
            and decision.retry_after > 0
            and not any(limit.count_denied for limit in request.limits)
        ):
            self._remember_denial(request, decision)
        return decision

    def failed(self, request: pb.CheckLimitRequest, error: grpc.RpcError) -> Decision:
        """A failed call: raises a :class:`RequestError`, or lets the failure policy decide."""
        typed = classify(error)
        if isinstance(typed, RequestError):
            if self.breaker:
                self.breaker.record_success()  # the service is up: the request was bad
            raise typed from error
        assert isinstance(typed, ServiceError)
        if self.breaker:
            self.breaker.record_failure()
        return self.fallback(typed, request)

    def fallback(self, error: ServiceError, request: pb.CheckLimitRequest) -> Decision:
        """What ``on_error`` decides: always ``source='fallback'`` and degraded."""
        policy = self.options.on_error
        if policy == "open":
            return Decision(allowed=True, code="OK", degraded=True, source="fallback")
        if policy == "closed":
            return Decision(allowed=False, code="UNAVAILABLE", degraded=True, source="fallback")
        if policy == "local":
            return self.local.decide(request)
        decision = policy(error, request)
        return dataclasses.replace(decision, degraded=True, source="fallback")

    def _cached_denial(self, request: pb.CheckLimitRequest) -> Decision | None:
        fingerprint = _fingerprint(request)
        with self._lock:
            entry = self._denials.get(fingerprint)
            if entry is None:
                return None
            until, decision = entry
            now = self.options.clock()
            if now >= until:
                del self._denials[fingerprint]
                return None
        return dataclasses.replace(decision, retry_after=until - now, source="cache")

    def _remember_denial(self, request: pb.CheckLimitRequest, decision: Decision) -> None:
        fingerprint = _fingerprint(request)
        until = self.options.clock() + decision.retry_after
        with self._lock:
            if len(self._denials) >= _DENY_CACHE_SIZE:
                now = self.options.clock()
                self._denials = {k: v for k, v in self._denials.items() if v[0] > now}
                while len(self._denials) >= _DENY_CACHE_SIZE:
                    del self._denials[next(iter(self._denials))]
            self._denials[fingerprint] = (until, decision)


def _fingerprint(request: pb.CheckLimitRequest) -> bytes:
    """The exact request, serialized deterministically (map order fixed), hashed."""
    return hashlib.blake2b(request.SerializeToString(deterministic=True), digest_size=16).digest()
