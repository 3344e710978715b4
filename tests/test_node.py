"""This node's record: capacity and the measured utilisation schedulers read."""

from __future__ import annotations

import os
from typing import Any

import pytest

import fogctl.node
from fogctl.node import cpu_busy_share, node_record


def test_record_reports_capacity_and_a_busy_share_in_range(fresh_state: Any) -> None:
    rec = node_record(fresh_state)
    assert rec.cpu == float(os.cpu_count() or 1)
    assert rec.memory and rec.memory > 0
    assert rec.cpu_util is not None and 0.0 <= rec.cpu_util <= 1.0
    assert rec.memory_util is not None and 0.0 <= rec.memory_util <= 1.0


def test_cpu_util_is_the_measured_busy_share_not_the_load_average(
    monkeypatch: pytest.MonkeyPatch, fresh_state: Any
) -> None:
    """A load average far above the core count (processes queueing on a shared box)
    used to read as cpu_util 1.0: no free core anywhere. The busy share is measured."""
    import psutil

    monkeypatch.setattr(os, "getloadavg", lambda: (64.0, 64.0, 64.0))
    calls: list[Any] = []

    def percent(interval: float | None = None) -> float:
        calls.append(interval)
        return 37.5

    monkeypatch.setattr(psutil, "cpu_percent", percent)
    monkeypatch.setattr(fogctl.node, "_sampled", False)
    assert node_record(fresh_state).cpu_util == 0.375
    # the first call samples a short window; later ones report since the last call
    assert calls[0] == fogctl.node.SAMPLE_SECONDS
    assert cpu_busy_share() == 0.375 and calls[-1] is None


def test_busy_share_is_clamped(monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil

    monkeypatch.setattr(psutil, "cpu_percent", lambda interval=None: 140.0)
    assert cpu_busy_share() == 1.0
    monkeypatch.setattr(psutil, "cpu_percent", lambda interval=None: -3.0)
    assert cpu_busy_share() == 0.0


def test_a_busy_machine_can_still_be_scheduled_on(
    monkeypatch: pytest.MonkeyPatch, fresh_state: Any
) -> None:
    """The record of a machine measured 100% busy is a usable target for a job that
    fits its cores (fogctl schedule's default soft headroom)."""
    import psutil

    from fogctl.schedule.engine import schedule
    from fogctl.schedule.model import Job

    monkeypatch.setattr(psutil, "cpu_percent", lambda interval=None: 100.0)
    rec = node_record(fresh_state)
    assert rec.cpu_util == 1.0
    plan = schedule(
        [rec], [Job("tiny", cpu=min(0.5, rec.cpu or 1.0), memory=1 << 20)], generations=2
    )
    assert [a.node for a in plan.assignments] == [rec.id]
