"""Settings (``RATELIMITD``, ``RATELIMIT_MIDDLEWARE``) and the process's clients, built lazily.

The clients are made on first use, never at import or in ``AppConfig.ready()``
(a gunicorn ``--preload`` master would hand its channel to every worker), and
rebuilt when a test overrides the settings.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from ratelimitd.breaker import BreakerOptions
from ratelimitd.client import AsyncClient, Client

DEFAULTS: dict[str, Any] = {
    "TARGET": "127.0.0.1:8081",
    "DOMAIN": "web",
    "TIMEOUT": 0.05,
    "ON_ERROR": "open",
    "LOCAL_REPLICAS": 1,
    "TRUSTED_PROXIES": [],
    "BREAKER": {},
    "DENY_CACHE": False,
    "TLS": None,
    "CREDENTIALS": None,
    "METADATA": [],
    "IP_META_KEY": "REMOTE_ADDR",
    "API_KEY_HEADER": "X-API-Key",
    "SEND_USER": True,
    "VIEW": None,
    "ENABLED": True,
}
MIDDLEWARE_DEFAULTS: dict[str, Any] = {
    "DEFAULT_RATE": None,
    "RATE_LIMITS": {},
    "SKIP_PATHS": [],
    "KEY_FUNCTION": None,
    "BLOCK": True,
    "ALGORITHM": None,
}


def service_settings() -> dict[str, Any]:
    """``RATELIMITD`` over the defaults."""
    configured = getattr(settings, "RATELIMITD", {})
    unknown = set(configured) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"RATELIMITD: unknown keys {sorted(unknown)}, expected {sorted(DEFAULTS)}")
    return {**DEFAULTS, **configured}


def middleware_settings() -> dict[str, Any]:
    """``RATELIMIT_MIDDLEWARE`` (django-smart-ratelimit's) over the defaults."""
    configured = getattr(settings, "RATELIMIT_MIDDLEWARE", {})
    unknown = set(configured) - set(MIDDLEWARE_DEFAULTS)
    if unknown:
        raise ValueError(
            f"RATELIMIT_MIDDLEWARE: unknown keys {sorted(unknown)}, expected {sorted(MIDDLEWARE_DEFAULTS)}"
        )
    return {**MIDDLEWARE_DEFAULTS, **configured}


def resolve(value: Any) -> Any:
    """A dotted path imported, anything else as it is."""
    return import_string(value) if isinstance(value, str) and "." in value else value


@dataclass(frozen=True)
class Clients:
    """The process's sync client and an async one sharing its breaker and counters."""

    sync: Client
    asynchronous: AsyncClient


@functools.cache
def clients() -> Clients:
    """Built from ``RATELIMITD`` on first use (no channel yet: that comes with the first call)."""
    options = service_settings()
    client = Client(
        options["TARGET"],
        options["DOMAIN"],
        timeout=float(options["TIMEOUT"]),
        credentials=_credentials(options),
        metadata=[tuple(pair) for pair in options["METADATA"]],
        on_error=resolve(options["ON_ERROR"])
        if options["ON_ERROR"] not in ("open", "closed", "local")
        else options["ON_ERROR"],
        local_replicas=int(options["LOCAL_REPLICAS"]),
        trusted_proxies=options["TRUSTED_PROXIES"],
        breaker=_breaker(options["BREAKER"]),
        deny_cache=bool(options["DENY_CACHE"]),
    )
    return Clients(client, AsyncClient.sharing(client))


def _breaker(config: Mapping[str, Any] | None) -> BreakerOptions | None:
    """``{'FAILURE_THRESHOLD': 5, 'RECOVERY_TIMEOUT': 1.0, 'MAX_RECOVERY_TIMEOUT': 30.0}``.

    Missing keys take these defaults; ``None`` disables the breaker.
    """
    if config is None:
        return None
    return BreakerOptions(**{key.lower(): value for key, value in config.items()})


def _credentials(options: Mapping[str, Any]) -> grpc.ChannelCredentials | None:
    """``CREDENTIALS`` (credentials, or a dotted path to a factory), else ``TLS`` file paths."""
    if options["CREDENTIALS"] is not None:
        credentials = resolve(options["CREDENTIALS"])
        made = credentials() if callable(credentials) else credentials
        assert isinstance(made, grpc.ChannelCredentials), "RATELIMITD['CREDENTIALS']: not grpc credentials"
        return made
    tls = options["TLS"]
    if tls is None:
        return None

    def read(name: str) -> bytes | None:
        path = tls.get(name)
        if path is None:
            return None
        with open(path, "rb") as file:
            return file.read()

    return grpc.ssl_channel_credentials(
        root_certificates=read("ROOT_CERTIFICATES"),
        private_key=read("PRIVATE_KEY"),
        certificate_chain=read("CERTIFICATE_CHAIN"),
    )


def _reset(*, setting: str, **_: Any) -> None:
    if setting in ("RATELIMITD", "RATELIMIT_MIDDLEWARE"):
        clients.cache_clear()


setting_changed.connect(_reset)
