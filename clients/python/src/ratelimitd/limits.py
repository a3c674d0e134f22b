"""Limits a request declares (``DeclaredLimit``): what ``@rate_limit`` turns into."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast, get_args

from ratelimitd._proto.ratelimit.v1 import ratelimit_pb2 as pb
from ratelimitd.rates import Rate, parse_rate

Algorithm = Literal["fixed_window", "sliding_window", "sliding_log", "token_bucket", "gcra"]
ALGORITHMS: tuple[str, ...] = get_args(Algorithm)


@dataclass(frozen=True)
class Limit:
    """One declared limit, decided by the service together with the policy's rules.

    ``name`` is the counter family (a view, a group, a scope) and the
    status's ``rule``; ``key`` what to count by in the policy's key
    language (``"ip"``, ``"user|ip"``, ``"header:x-tenant"``,
    ``"descriptor:k"``; several parts count by their combination; empty:
    one counter for the whole domain); ``rate`` ``N/period``. ``algorithm``
    ``None`` is the policy's default; ``burst`` (0: the rate's count) and
    ``initial_tokens`` for token bucket and GCRA; ``count_denied`` counts
    denied hits (window algorithms only); ``shadow`` counts and reports but
    never denies.
    """

    name: str
    rate: Rate
    key: tuple[str, ...] = ()
    algorithm: Algorithm | None = None
    burst: int = 0
    initial_tokens: int | None = None
    count_denied: bool = False
    shadow: bool = False

    @classmethod
    def of(
        cls,
        name: str,
        rate: str | Rate,
        key: str | Sequence[str] = (),
        **parameters: object,
    ) -> Limit:
        """``Limit.of('views.login', '5/m', 'ip')``: rate and key as text."""
        parsed = parse_rate(rate) if isinstance(rate, str) else rate
        parts = (key,) if isinstance(key, str) else tuple(key)
        return cls(name, parsed, parts, **parameters)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a limit needs a name")
        if self.algorithm is not None and self.algorithm not in ALGORITHMS:
            raise ValueError(
                f"unknown algorithm {self.algorithm!r}, expected one of: {', '.join(ALGORITHMS)}"
            )

    def to_proto(self) -> pb.DeclaredLimit:
        """The wire form."""
        message = pb.DeclaredLimit(
            name=self.name,
            key=list(self.key),
            rate=str(self.rate),
            algorithm=algorithm_to_proto(self.algorithm),
            burst=self.burst,
            count_denied=self.count_denied,
            shadow=self.shadow,
        )
        if self.initial_tokens is not None:
            message.initial_tokens = self.initial_tokens
        return message


def algorithm_to_proto(name: str | None) -> pb.LimitStatus.Algorithm:
    """``'token_bucket'`` → ``TOKEN_BUCKET``; ``None`` → unspecified (the policy's default)."""
    if name is None:
        return pb.LimitStatus.ALGORITHM_UNSPECIFIED
    return cast("pb.LimitStatus.Algorithm", pb.LimitStatus.Algorithm.Value(name.upper()))


def algorithm_from_proto(value: int) -> str | None:
    """The inverse of :func:`algorithm_to_proto`."""
    if value == pb.LimitStatus.ALGORITHM_UNSPECIFIED:
        return None
    return pb.LimitStatus.Algorithm.Name(value).lower()


__all__ = ["ALGORITHMS", "Algorithm", "Limit"]
