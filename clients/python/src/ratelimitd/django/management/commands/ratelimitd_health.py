"""``manage.py ratelimitd_health [--verbose] [--json]``: django-smart-ratelimit's ``ratelimit_health``.

Asks the service (``Admin/Backends``) whether it is serving and how each
backend's circuit breaker stands, and reports the client's own breaker.
Exits non-zero when the service is unreachable or not serving, so it can
gate a deploy or a readiness probe.
"""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ratelimitd.django import conf
from ratelimitd.errors import RatelimitdError

# A health check may wait longer than a decision.
_TIMEOUT = 2.0


class Command(BaseCommand):
    """Health of ratelimitd and of every backend behind it."""

    help = "Checks ratelimitd's health and every backend's circuit breaker."

    def add_arguments(self, parser: ArgumentParser) -> None:
        """``--verbose`` adds latency, errors and transitions; ``--json`` prints one JSON object."""
        parser.add_argument(
            "--verbose", action="store_true", help="latency, last error, transitions, members"
        )
        parser.add_argument("--json", action="store_true", help="one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        """Prints the report; raises CommandError (exit 1) unless the service is serving."""
        settings = conf.service_settings()
        client = conf.clients().sync
        report: dict[str, Any] = {
            "target": settings["TARGET"],
            "client_breaker": client.breaker_state,
        }
        try:
            response = client.backends(timeout=max(_TIMEOUT, settings["TIMEOUT"]))
        except RatelimitdError as error:
            report.update(reachable=False, serving=False, error=str(error), backends=[])
        else:
            report.update(
                reachable=True,
                serving=response.serving,
                backends=[
                    {
                        "name": b.name,
                        "kind": b.kind,
                        "breaker": b.breaker,
                        "usable": b.usable,
                        "last_latency_us": b.last_latency_us,
                        "last_error": b.last_error,
                        "transitions": b.transitions,
                        "retry_in_ms": b.retry_in_ms,
                        "members": list(b.members),
                    }
                    for b in response.backends
                ],
            )
        if options["json"]:
            self.stdout.write(json.dumps(report, sort_keys=True))
        else:
            self._print(report, verbose=options["verbose"])
        if not report["serving"]:
            raise CommandError(
                "ratelimitd is not serving" if report["reachable"] else "ratelimitd is unreachable"
            )

    def _print(self, report: dict[str, Any], verbose: bool) -> None:
        state = "SERVING" if report["serving"] else ("NOT SERVING" if report["reachable"] else "UNREACHABLE")
        style = self.style.SUCCESS if report["serving"] else self.style.ERROR
        self.stdout.write(style(f"ratelimitd at {report['target']}: {state}"))
        if not report["reachable"]:
            self.stdout.write(f"  {report['error']}")
        for backend in report["backends"]:
            usable = "usable" if backend["usable"] else "UNUSABLE"
            breaker = f"breaker {backend['breaker']}, " if backend["breaker"] else ""  # Redis only
            self.stdout.write(f"  {backend['name']} ({backend['kind']}): {breaker}{usable}")
            if verbose:
                details = [
                    f"last latency {backend['last_latency_us']} us",
                    f"{backend['transitions']} transitions",
                ]
                if backend["retry_in_ms"]:
                    details.append(f"next probe in {backend['retry_in_ms']} ms")
                if backend["members"]:
                    details.append("members " + ", ".join(backend["members"]))
                if backend["last_error"]:
                    details.append(f"last error: {backend['last_error']}")
                self.stdout.write("    " + "; ".join(details))
        if verbose:
            self.stdout.write(f"  client breaker: {report['client_breaker']}")
