"""Records emitted by ``fogctl harvest`` (documented in fogctl-records(5))."""

from __future__ import annotations

from dataclasses import field
from typing import Any

from fogctl.harvest.status_records import HarvestStatusRecord, RuleResult
from fogctl.records import Record, record

__all__ = [
    "ChunkRecord",
    "CycleRecord",
    "HarvestStatusRecord",
    "MergeRecord",
    "PolicyRecord",
    "RuleResult",
    "TaskRecord",
    "TimerRecord",
]


@record("harvest-task")
class TaskRecord(Record):
    """A task in the local harvest queue (``state``: queued, running, preempted, done, failed)."""

    id: str
    name: str
    executor: str
    state: str
    attempts: int = 0
    preemptions: int = 0
    checkpoint: str | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    energy_j: float = 0.0
    exit_code: int | None = None
    result: str | None = None
    output: str | None = None
    error: str | None = None
    created: float = 0.0
    updated: float = 0.0


@record("harvest-policy")
class PolicyRecord(Record):
    """The harvest policy in force and where each value comes from."""

    values: dict[str, Any]
    sources: dict[str, str]
    path: str


@record("harvest-timer")
class TimerRecord(Record):
    """A file or crontab line written (``install``) or removed (``uninstall``)."""

    action: str
    method: str
    path: str
    changed: bool
    verified: str = ""


@record("harvest-cycle")
class CycleRecord(Record):
    """What one harvest cycle did."""

    outcome: str
    eligible: bool
    reasons: tuple[str, ...]
    ran: tuple[str, ...] = ()
    completed: tuple[str, ...] = ()
    preempted: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    seconds: float = 0.0


@record("harvest-chunk")
class ChunkRecord(Record):
    """One chunk of an indexed job written by ``harvest split``."""

    job: str
    chunk: int
    chunks: int
    start: int
    end: int
    path: str


@record("harvest-merge")
class MergeRecord(Record):
    """The gathered results of a split job's chunks, in index order."""

    job: str
    chunks: int
    results: tuple[Any, ...]
    output: str | None
    energy_j: float
