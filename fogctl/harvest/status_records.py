"""The records on ``harvest status``'s path, kept apart so the command every timer runs
imports only these (each frozen slotted dataclass costs ~1 ms to create at import).
:mod:`fogctl.harvest.records` re-exports them with the other harvest records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fogctl.records import Record, record

__all__ = ["HarvestStatusRecord", "RuleResult"]


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
