"""A forked child (gunicorn --preload, Celery prefork) never uses its parent's channel."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from ratelimitd import Client, Limit
from tests.server import Server

# Several children: a child that reached its parent's connection failed
# about one time in three before channels kept their own.
CHILDREN = 5


def fork_and_check(client: Client, limit: Limit, ip: str) -> dict[str, Any]:
    """Forks; the child checks once and reports what it saw through a pipe."""
    inherited = client._channel
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe and the exit status only
        status = 1
        try:
            os.close(read_end)
            dropped = client._channel is None
            decision = client.check(limits=[limit], peer_ip=ip)
            own = client._channel is not None and client._channel is not inherited
            seen = {
                "dropped": dropped,
                "own": own,
                "source": decision.source,
                "remaining": decision.remaining,
            }
            os.write(write_end, json.dumps(seen).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    deadline = time.monotonic() + 30
    while True:
        done, wait_status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise AssertionError("the child hung")
        time.sleep(0.02)
    assert os.waitstatus_to_exitcode(wait_status) == 0
    with os.fdopen(read_end) as report:
        return json.loads(report.read())  # type: ignore[no-any-return]


def test_child_builds_its_own_channel_and_its_calls_succeed(
    ratelimitd: Server, new_ip: Callable[[], str]
) -> None:
    client = Client(ratelimitd.grpc_addr, "web", timeout=2.0)
    limit = Limit.of("fork", "100/m", "ip")
    ip = new_ip()
    assert client.check(limits=[limit], peer_ip=ip).remaining == 99
    inherited = client._channel
    assert inherited is not None
    before = ratelimitd.check_limit_calls()
    for child in range(CHILDREN):
        seen = fork_and_check(client, limit, ip)
        assert seen == {"dropped": True, "own": True, "source": "service", "remaining": 98 - child}
    assert ratelimitd.check_limit_calls() - before == CHILDREN  # every child's call reached the service
    # The parent's channel is untouched and still works.
    assert client._channel is inherited
    assert client.check(limits=[limit], peer_ip=ip).remaining == 98 - CHILDREN
