"""Real `fogctl mesh serve` processes on loopback for the end-to-end tests."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


class Proc:
    """A running `fogctl mesh serve`; stderr is collected by a thread."""

    def __init__(self, home: Path, *args: str) -> None:
        env = {**os.environ, "FOGCTL_HOME": str(home)}
        self.home = home
        self.lines: list[str] = []
        self.p = subprocess.Popen(
            [sys.executable, "-m", "fogctl.cli.main", "mesh", "serve", "--poll", "0.2", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        self._t = threading.Thread(target=self._pump, daemon=True)
        self._t.start()

    def _pump(self) -> None:
        assert self.p.stderr is not None
        for line in self.p.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                m = rx.search(line)
                if m:
                    return m
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} in node log:\n" + "\n".join(self.lines))

    def port(self, cl: str = "tcpcl") -> int:
        return int(self.wait_for(rf"{cl} listening on [\d.]+:(\d+)").group(1))

    def stop(self) -> int:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(10)
        finally:
            self._t.join(5)


def fog(home: Path, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "FOGCTL_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "fogctl.cli.main", *args],
        input=input,
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )


def records(res: subprocess.CompletedProcess[bytes]) -> list[dict[str, object]]:
    return [json.loads(x) for x in res.stdout.decode().splitlines() if x.strip()]


def poll_until(fn: object, timeout: float = 20.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()  # type: ignore[operator]
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        p.stop()
