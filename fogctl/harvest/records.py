"""Records emitted by ``fogctl harvest`` (documented in fogctl-records(5))."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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


@dataclass(frozen=True, slots=True)
class RuleResult:
    """One eligibility rule: its sensor reading, the threshold in force and the outcome.

    ``result`` is ``pass``, ``fail``, ``absent`` (this machine has no such sensor; never
    blocks) or ``unknown`` (the sensor exists but could not be read; blocks only with
    ``strict_sensors``).
    """

    rule: str
    result: str
    reading: Any = None
    threshold: Any = None
    detail: str = ""


@record("harvest-status")
class HarvestStatusRecord(Record):
    """Eligibility now: the decision, every rule, the power estimate and the queue."""

    eligible: bool
    state: str
    rules: tuple[RuleResult, ...]
    backoff_until: float | None
    watts_idle: float
    watts_task: float
    battery_drain_pct_per_h: float | None
    power_model: str
    sensors: str
    queued: int
    running: int
    preempted: int
    done: int
    at: float


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
