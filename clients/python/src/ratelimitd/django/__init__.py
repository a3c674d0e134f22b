"""Django integration: ``@rate_limit``, ``RateLimitMiddleware``, ``is_ratelimited``/``get_usage``.

Settings: ``RATELIMITD`` (the service and the client) and the original's
``RATELIMIT_MIDDLEWARE``; see the package README.
"""

from ratelimitd._spec import ALL, UNSAFE
from ratelimitd.django.core import Ratelimited, get_usage, is_ratelimited
from ratelimitd.django.decorators import rate_limit, ratelimit

__all__ = ["ALL", "UNSAFE", "Ratelimited", "get_usage", "is_ratelimited", "rate_limit", "ratelimit"]
