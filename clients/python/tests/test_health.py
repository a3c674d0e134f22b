"""manage.py ratelimitd_health [--verbose] [--json]."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from tests.server import Server


def test_json_reports_serving_and_every_backend(ratelimitd: Server) -> None:
    out = StringIO()
    call_command("ratelimitd_health", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert (report["serving"], report["reachable"], report["client_breaker"]) == (True, True, "CLOSED")
    assert [(b["name"], b["kind"], b["usable"]) for b in report["backends"]] == [("memory", "memory", True)]


def test_verbose_text(ratelimitd: Server) -> None:
    out = StringIO()
    call_command("ratelimitd_health", "--verbose", stdout=out)
    text = out.getvalue()
    assert f"ratelimitd at {ratelimitd.grpc_addr}: SERVING" in text
    assert "\n  memory (memory): usable\n    last latency 0 us; 0 transitions\n" in text
    assert "client breaker: CLOSED" in text


def test_unreachable_service_fails(settings: Any, own_server: Server) -> None:
    settings.RATELIMITD = {"TARGET": own_server.grpc_addr}
    own_server.kill()
    out = StringIO()
    with pytest.raises(CommandError, match="unreachable"):
        call_command("ratelimitd_health", "--json", stdout=out)
    assert json.loads(out.getvalue())["reachable"] is False
