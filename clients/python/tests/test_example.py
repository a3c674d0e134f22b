"""The example Django project runs against the service as its README says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.server import Server

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "django"

SCRIPT = """
import json, sys
import django
django.setup()
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
ip, other = sys.argv[1:]
client = Client(REMOTE_ADDR=ip)
print(json.dumps({
    "hello": [client.get("/hello/").status_code for _ in range(6)],
    "login_get": [client.get("/login/").status_code for _ in range(4)],
    "api": [Client(REMOTE_ADDR=other).get("/api/items/").status_code for _ in range(21)][-2:],
    "health": client.get("/health/").status_code,
}))
"""


def test_example_project(ratelimitd: Server, new_ip: Callable[[], str]) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example.settings",
        "RATELIMITD_TARGET": ratelimitd.grpc_addr,
    }
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, new_ip(), new_ip()],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(result.stdout.splitlines()[-1]) == {
        "hello": [200] * 5 + [429],
        "login_get": [200] * 4,
        "api": [200, 429],  # the anon throttle's 20/minute
        "health": 200,
    }
