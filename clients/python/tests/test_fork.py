"""A forked child (gunicorn --preload, Celery prefork) never uses its parent's channel."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from ratelimitd import Client, Limit
from tests.server import Server


def test_child_builds_its_own_channel_and_its_calls_succeed(
    ratelimitd: Server, new_ip: Callable[[], str]
) -> None:
    client = Client(ratelimitd.grpc_addr, "web", timeout=2.0)
    limit = Limit.of("fork", "10/m", "ip")
    ip = new_ip()
    assert client.check(limits=[limit], peer_ip=ip).remaining == 9
    inherited = client._channel
    assert inherited is not None
    before = ratelimitd.check_limit_calls()
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        status = 1
        try:
            dropped = client._channel is None
            decision = client.check(limits=[limit], peer_ip=ip)
            own = client._channel is not None and client._channel is not inherited
            status = 0 if dropped and own and decision.source == "service" and decision.remaining == 8 else 3
        finally:
            os._exit(status)
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
    assert ratelimitd.check_limit_calls() - before == 1  # the child's call reached the service
    # The parent's channel still works.
    assert client._channel is inherited
    assert client.check(limits=[limit], peer_ip=ip).remaining == 7
