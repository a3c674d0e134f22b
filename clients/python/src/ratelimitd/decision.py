"""What a check answers, wherever the answer came from (the service, a fallback, the cache)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from ratelimitd._proto.ratelimit.v1 import ratelimit_pb2 as pb
from ratelimitd.limits import algorithm_from_proto

Code = Literal["OK", "OVER_LIMIT", "UNAVAILABLE"]
Source = Literal["service", "fallback", "cache"]
Failure = Literal["none", "fail_open", "fail_closed", "local"]


@dataclass(frozen=True)
class LimitStatus:
    """One limit that applied, after the decision (times in seconds)."""

    rule: str
    limit_name: str
    algorithm: str | None
    limit: int
    window: float
    remaining: int
    reset_after: float
    retry_after: float
    over_limit: bool
    shadow: bool = False
    tier: str = ""
    failure: Failure = "none"
    backend: str = ""

    @classmethod
    def from_proto(cls, status: pb.LimitStatus) -> LimitStatus:
        """From the wire."""
        return cls(
            rule=status.rule,
            limit_name=status.limit_name,
            algorithm=algorithm_from_proto(status.algorithm),
            limit=status.limit,
            window=status.window_ms / 1000,
            remaining=status.remaining,
            reset_after=status.reset_after_ms / 1000,
            retry_after=status.retry_after_ms / 1000,
            over_limit=status.over_limit,
            shadow=status.shadow,
            tier=status.tier,
            failure=pb.LimitStatus.Failure.Name(status.failure).removeprefix("FAILURE_").lower(),  # type: ignore[arg-type]
            backend=status.backend,
        )


@dataclass(frozen=True)
class Decision:
    """Whether the request may go through, and what to tell the client.

    ``retry_after`` and ``reset_after`` (seconds) and ``remaining``/``limit``
    describe the limit the headers describe (the most restrictive; ``None``
    when no limit applied). ``headers`` are the service's, verbatim, to add
    to the HTTP response; empty when the service did not decide. ``source``:
    ``'service'``, ``'fallback'`` (the failure policy decided: ``degraded``
    is then true) or ``'cache'`` (a denial remembered until its retry_after).
    """

    allowed: bool
    code: Code
    retry_after: float = 0.0
    reset_after: float = 0.0
    remaining: int | None = None
    limit: int | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    statuses: tuple[LimitStatus, ...] = ()
    degraded: bool = False
    shadowed: bool = False
    source: Source = "service"

    @classmethod
    def from_proto(cls, response: pb.CheckLimitResponse) -> Decision:
        """The service's answer."""
        statuses = tuple(LimitStatus.from_proto(s) for s in response.statuses)
        tightest = most_restrictive(statuses)
        return cls(
            allowed=response.allowed,
            code=pb.CheckLimitResponse.Code.Name(response.code),  # type: ignore[arg-type]
            retry_after=response.retry_after_ms / 1000,
            reset_after=response.reset_after_ms / 1000,
            remaining=tightest.remaining if tightest else None,
            limit=tightest.limit if tightest else None,
            headers=MappingProxyType(dict(response.headers)),
            statuses=statuses,
            degraded=response.degraded,
            shadowed=response.shadowed,
        )

    def over_limit(self, names: Iterable[str]) -> bool:
        """Whether a limit named in ``names`` (a status's ``rule``) is over, shadow or not."""
        wanted = set(names)
        return any(s.over_limit and s.rule in wanted for s in self.statuses)


def most_restrictive(statuses: Iterable[LimitStatus]) -> LimitStatus | None:
    """The limit the headers describe, chosen as the service chooses it.

    Among enforced limits (not shadow, decided by a backend or locally): a
    denying one with the longest wait, else the one with the least
    remaining; the first on ties (``crates/server/src/api/check_limit/headers.rs``).
    """
    enforced = [s for s in statuses if not s.shadow and s.failure in ("none", "local")]
    if not enforced:
        return None
    return min(enforced, key=lambda s: (not s.over_limit, -s.retry_after, s.remaining))
