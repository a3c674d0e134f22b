"""Fixtures: the real ratelimitd (built if missing), Django settings pointing at it, unique client IPs."""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.server import BINARY, REPOSITORY, Server

_addresses = itertools.count(1)


@pytest.fixture(scope="session")
def ratelimitd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The session's service; every test uses its own keys (IPs, groups), so they never share counters."""
    if not BINARY.exists():
        subprocess.run(["cargo", "build", "-p", "ratelimitd-server"], cwd=REPOSITORY, check=True)
    server = Server(tmp_path_factory.mktemp("ratelimitd"))
    yield server
    server.stop()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    """A service of the test's own, which it may pause or kill."""
    server = Server(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def new_ip() -> Callable[[], str]:
    """A client address no other test uses."""

    def make() -> str:
        n = next(_addresses)
        return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"

    return make


@pytest.fixture(autouse=True)
def _service_settings(settings: object, ratelimitd: Server) -> None:
    """RATELIMITD points at the session's service (a generous deadline: debug builds on shared CPUs)."""
    settings.RATELIMITD = {"TARGET": ratelimitd.grpc_addr, "DOMAIN": "web", "TIMEOUT": 2.0}  # type: ignore[attr-defined]
