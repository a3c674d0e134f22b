"""The client's circuit breaker: stop paying the deadline while the service is down.

Same vocabulary as the server's backend breakers (CLOSED, OPEN, HALF_OPEN).
After ``failure_threshold`` consecutive failures it opens: no call is made
and the failure policy answers at once. After ``recovery_timeout`` one
request probes (HALF_OPEN); success closes it, failure reopens it for twice
as long, up to ``max_recovery_timeout``. So while the service is down, the
deadline is paid ``failure_threshold`` times and then once per probe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

BreakerState = Literal["CLOSED", "OPEN", "HALF_OPEN"]


@dataclass(frozen=True)
class BreakerOptions:
    """How quickly the breaker opens and how long it stays open."""

    failure_threshold: int = 5
    recovery_timeout: float = 1.0
    max_recovery_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if not 0 < self.recovery_timeout <= self.max_recovery_timeout:
            raise ValueError("need 0 < recovery_timeout <= max_recovery_timeout")


DEFAULT_BREAKER = BreakerOptions()


class CircuitBreaker:
    """Thread-safe; ``clock`` (seconds, monotonic) is injectable for tests."""

    def __init__(self, options: BreakerOptions, clock: Callable[[], float] = time.monotonic) -> None:
        self.options = options
        self._clock = clock
        self._lock = threading.Lock()
        self._state: BreakerState = "CLOSED"
        self._failures = 0
        self._open_for = options.recovery_timeout
        self._opened_at = 0.0
        self._probe_started: float | None = None

    @property
    def state(self) -> BreakerState:
        """The state now (an OPEN breaker whose timeout passed reads HALF_OPEN)."""
        with self._lock:
            if self._state == "OPEN" and self._clock() >= self._opened_at + self._open_for:
                return "HALF_OPEN"
            return self._state

    def reset_after_fork(self) -> None:
        """A fresh lock in a forked child: the parent's may have been held mid-call."""
        self._lock = threading.Lock()
        self._probe_started = None

    def allow(self) -> bool:
        """Whether a call may be made now (claims the probe when half open)."""
        with self._lock:
            now = self._clock()
            if self._state == "CLOSED":
                return True
            if self._state == "OPEN":
                if now < self._opened_at + self._open_for:
                    return False
                self._state = "HALF_OPEN"
            # HALF_OPEN: one probe at a time; a probe that never reported
            # (a cancelled task) is given up after one recovery period.
            if self._probe_started is not None and now < self._probe_started + self._open_for:
                return False
            self._probe_started = now
            return True

    def record_success(self) -> None:
        """The service answered: close and forget the failures."""
        with self._lock:
            self._state = "CLOSED"
            self._failures = 0
            self._open_for = self.options.recovery_timeout
            self._probe_started = None

    def record_failure(self) -> None:
        """The service failed: count it, and open after the threshold (or a failed probe)."""
        with self._lock:
            if self._state == "HALF_OPEN":
                self._open_for = min(self._open_for * 2, self.options.max_recovery_timeout)
                self._open(self._clock())
                return
            self._failures += 1
            if self._state == "CLOSED" and self._failures >= self.options.failure_threshold:
                self._open(self._clock())

    def _open(self, now: float) -> None:
        self._state = "OPEN"
        self._opened_at = now
        self._probe_started = None
