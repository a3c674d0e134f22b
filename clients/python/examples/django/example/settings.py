"""A Django project limited by ratelimitd: decorators, the middleware and DRF throttles.

No database: sessions live in signed cookies and every visitor is anonymous,
so it runs with nothing but ratelimitd (``RATELIMITD_TARGET``, default
127.0.0.1:8081, the port of ``ratelimitd serve``).
"""

import os

SECRET_KEY = "example-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "example.urls"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "rest_framework",
    "ratelimitd.django",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication: `user` keys need the user.
    "ratelimitd.django.middleware.RateLimitMiddleware",
]
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
DATABASES: dict[str, object] = {}

# The service (the example policy accepts declared limits in `web`).
RATELIMITD = {
    "TARGET": os.environ.get("RATELIMITD_TARGET", "127.0.0.1:8081"),
    "DOMAIN": "web",
    "TIMEOUT": 0.05,
    "ON_ERROR": "open",  # the site stays up if ratelimitd does not
}
# django-smart-ratelimit's middleware settings, as they were.
RATELIMIT_MIDDLEWARE = {
    "DEFAULT_RATE": "100/m",
    "RATE_LIMITS": {"/api/": "30/m"},
    "SKIP_PATHS": ["/health/"],
}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_THROTTLE_CLASSES": [
        "ratelimitd.drf.AnonRatelimitdThrottle",
        "ratelimitd.drf.UserRatelimitdThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {"anon": "20/minute", "user": "100/minute"},
}
