"""ratelimitd's Python client: ask the service before serving a request.

``Client``/``AsyncClient`` send one CheckLimit per check and return a
:class:`Decision`; ``ratelimitd.django``, ``ratelimitd.drf``,
``ratelimitd.starlette`` and ``ratelimitd.fastapi`` wire them into the
frameworks. Importing this package opens no connection.
"""

from ratelimitd.breaker import BreakerOptions, BreakerState
from ratelimitd.client import AsyncClient, Client, tls_credentials
from ratelimitd.decision import Decision, LimitStatus
from ratelimitd.errors import (
    AuthError,
    CircuitOpenError,
    FailedPreconditionError,
    InvalidArgumentError,
    RatelimitdError,
    RequestError,
    ServiceError,
)
from ratelimitd.limits import ALGORITHMS, Algorithm, Limit
from ratelimitd.rates import Rate, parse_rate

__version__ = "0.1.0"

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "AsyncClient",
    "AuthError",
    "BreakerOptions",
    "BreakerState",
    "CircuitOpenError",
    "Client",
    "Decision",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "Limit",
    "LimitStatus",
    "Rate",
    "RatelimitdError",
    "RequestError",
    "ServiceError",
    "parse_rate",
    "tls_credentials",
]
