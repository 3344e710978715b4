"""Shared helpers for harvest tests: scenario sensor files, the example WASM job."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fogctl.harvest.engine import set_policy
from fogctl.state import State

ROOT = Path(__file__).resolve().parents[2]
SUM_WAT = ROOT / "examples" / "harvest-sum.wat"

ELIGIBLE: dict[str, Any] = {
    "battery": 90,
    "charging": False,
    "temperature": 45,
    "cpu_other": 3,
    "idle": 900,
    "on_ac": False,
    "battery_wh": 50,
    "mem_total": 8 * 1024**3,
}

# Fast scenario policy: quick polls, no back-off, full speed unless a test caps it.
FAST = {"poll": "0.2s", "grace": "3s", "min_backoff": "0", "cpu_limit": "100%", "idle": "60s"}


def expected_sum(start: int, end: int) -> int:
    def s(n: int) -> int:  # sum of i*i for i in [0, n)
        return (n - 1) * n * (2 * n - 1) // 6

    v = (s(end) - s(start)) % 2**64
    return v - 2**64 if v >= 2**63 else v


class Sensors:
    """A FOGCTL_HARVEST_SENSORS scenario file that tests rewrite mid-task."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.set(**ELIGIBLE)

    def set(self, **values: Any) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(values))
        os.replace(tmp, self.path)

    def update(self, **values: Any) -> None:
        data = json.loads(self.path.read_text())
        data.update(values)
        self.set(**data)


@pytest.fixture
def sensors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Sensors:
    path = tmp_path / "sensors.json"
    s = Sensors(path)
    monkeypatch.setenv("FOGCTL_HARVEST_SENSORS", str(path))
    return s


@pytest.fixture
def state(fog_home: Path) -> State:
    st = State(fog_home)
    set_policy(st, FAST)
    return State(fog_home)


def sum_job(name: str = "sum", start: int = 0, end: int = 3_000_000_000) -> dict[str, Any]:
    return {
        "name": name,
        "wasm": str(SUM_WAT),
        "env": {"FOGCTL_INDEX_START": str(start), "FOGCTL_INDEX_END": str(end)},
    }


def wait_for(cond: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


class Background:
    """Run a function in a thread; ``result()`` joins with a bound."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.value: Any = None
        self.error: BaseException | None = None

        def target() -> None:
            try:
                self.value = fn()
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def result(self, timeout: float = 60.0) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "background call did not finish"
        if self.error is not None:
            raise self.error
        return self.value


@pytest.fixture
def background() -> Iterator[type[Background]]:
    yield Background
