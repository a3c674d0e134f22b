"""Rates as ratelimitd reads them: ``N/period`` (``10/m``, ``100/5m``, ``10/minute``).

The client parses rates itself for two reasons: a bad rate in a decorator
fails when the view is declared (not on the first request), and the local
fallback (``on_error='local'``) needs the count and period. The grammar is
the server's (``crates/policy/src/rate.rs``), so what parses here parses
there, and :meth:`Rate.__str__` writes the canonical form the server prints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

_UNIT_MS = {
    **dict.fromkeys(("ms", "millisecond", "milliseconds"), 1),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1_000),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60_000),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3_600_000),
    **dict.fromkeys(("d", "day", "days"), 86_400_000),
}
_PERIOD = re.compile(r"(\d*)\s*(\D*)")


@dataclass(frozen=True)
class Rate:
    """``count`` hits per ``period_ms`` milliseconds."""

    count: int
    period_ms: int

    def __str__(self) -> str:
        for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
            if self.period_ms % size == 0:
                multiple = self.period_ms // size
                return f"{self.count}/{unit}" if multiple == 1 else f"{self.count}/{multiple}{unit}"
        return f"{self.count}/{self.period_ms}ms"

    @classmethod
    def per_second(cls, tokens: float) -> Rate:
        """The rate refilling ``tokens`` a second (the seed's ``refill_rate``), exactly.

        ``2.0`` is ``2/s``, ``0.5`` is ``1/2s``: a fraction with a denominator
        of at most 1000 seconds, so periods stay within what a policy allows.
        """
        if tokens <= 0:
            raise ValueError(f"a refill rate must be positive, not {tokens!r}")
        fraction = Fraction(tokens).limit_denominator(1000)
        return cls(fraction.numerator, fraction.denominator * 1_000)


def parse_rate(text: str) -> Rate:
    """Parses ``N/period``; ``ValueError`` saying why when it is not one."""
    count_text, slash, period_text = text.partition("/")
    if not slash:
        raise ValueError(f"{text!r}: a rate is `N/period`, e.g. `10/m`, `100/5m`, `1000/hour`")
    count_text = count_text.strip()
    if not count_text.isdigit():
        raise ValueError(f"{text!r}: `{count_text}` is not a whole number of hits")
    match = _PERIOD.fullmatch(period_text.strip())
    multiple_text, unit = match.groups() if match else ("", period_text.strip())
    unit = unit.strip()
    if unit not in _UNIT_MS:
        raise ValueError(f"{text!r}: `{unit}` is not a unit (ms, s, m, h or d)")
    period_ms = (int(multiple_text) if multiple_text else 1) * _UNIT_MS[unit]
    if period_ms == 0:
        raise ValueError(f"{text!r}: `{period_text.strip()}` is not a usable period")
    return Rate(int(count_text), period_ms)
