"""A real ``ratelimitd serve`` on free loopback ports, for the tests (no fakes of the service)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[3]
BINARY = Path(os.environ.get("RATELIMITD_BIN", REPOSITORY / "target" / "debug" / "ratelimitd"))

# Declared limits in `web`; sliding_log by default so that a denial's
# Retry-After is exact (a full period after the first hit) whatever the
# wall clock, unlike an epoch-aligned fixed window. Loopback is a trusted
# proxy, so X-Forwarded-For from the test client is resolved.
POLICY = """
settings:
  default_algorithm: sliding_log
  trusted_proxies: [127.0.0.0/8]
declared:
  domains: [web]
  max_per_request: 16
rules: []
"""

_METRIC = re.compile(r'^ratelimitd_grpc_request_duration_seconds_count\{method="CheckLimit"\} (\d+)$', re.M)


def _state(task: Path) -> str:
    """A thread's state letter in /proc (after the parenthesised name, which may hold spaces)."""
    try:
        return (task / "stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return "T"  # gone is as good as stopped


class Server:
    """One ``ratelimitd serve`` process: start, addresses, metrics, pause/kill, stop."""

    def __init__(self, directory: Path, policy: str = POLICY, args: tuple[str, ...] = ()) -> None:
        config = directory / "policy.yaml"
        config.write_text(policy)
        self.process = subprocess.Popen(
            [str(BINARY), "serve", "--config", str(config), "--grpc-addr", "127.0.0.1:0",
             "--http-addr", "127.0.0.1:0", "--log-format", "json", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        self.grpc_addr, self.http_addr = self._wait_for_addresses()
        # Keep reading stderr so that the server never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()

    def _wait_for_addresses(self) -> tuple[str, str]:
        assert self.process.stderr is not None
        seen = []
        for line in self.process.stderr:
            seen.append(line)
            try:
                fields = json.loads(line)
            except ValueError:
                continue
            flat = {**fields, **fields.get("fields", {})}
            if "grpc_addr" in flat and "http_addr" in flat:
                return str(flat["grpc_addr"]), str(flat["http_addr"])
        raise RuntimeError(f"ratelimitd exited before serving:\n{''.join(seen)}")

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for _ in self.process.stderr:
            pass

    def check_limit_calls(self) -> int:
        """CheckLimit calls served so far, from the service's Prometheus metrics."""
        with urllib.request.urlopen(f"http://{self.http_addr}/metrics", timeout=5) as response:
            text = response.read().decode()
        match = _METRIC.search(text)
        return int(match.group(1)) if match else 0

    def statuses_and_calls(self, send: Callable[[], Any], count: int) -> list[tuple[int, int]]:
        """``send()`` ``count`` times: each response's status and the CheckLimit calls it made."""
        results = []
        for _ in range(count):
            before = self.check_limit_calls()
            status = send().status_code
            results.append((status, self.check_limit_calls() - before))
        return results

    def pause(self) -> None:
        """SIGSTOP: connections stay open, nothing answers (calls run into their deadline).

        Returns once every thread is stopped: the signal is asynchronous, and
        a thread on another core could otherwise answer one more call.
        """
        self.process.send_signal(signal.SIGSTOP)
        tasks = Path(f"/proc/{self.process.pid}/task")
        deadline = time.monotonic() + 10
        while not all(_state(task) in ("T", "t") for task in tasks.iterdir()):
            if time.monotonic() > deadline:
                raise RuntimeError("ratelimitd did not stop")
            time.sleep(0.005)

    def resume(self) -> None:
        """SIGCONT."""
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, as a crash: the port refuses connections from now on."""
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM (after SIGCONT, in case it was paused), then SIGKILL if it lingers."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGCONT)
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
