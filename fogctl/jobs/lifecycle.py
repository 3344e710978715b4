"""The job lifecycle as a table, and the pure rules that pick the next state.

Rules:

* A job starts ``pending``; a runner moves it to ``running`` when its dependencies
  allow and a slot is free.
* An attempt that ends ``completed`` makes the job ``succeeded``.
* ``checkpointed`` (exit 85) makes it ``retrying`` at once; it does not count as a
  failure (the job asked to be run again, from its checkpoint).
* ``preempted`` (stopped to make room for an assignment that names it in
  ``preempts``) makes it ``retrying`` after one backoff base; not a failure.
* ``deadline`` makes it ``deadline-exceeded`` (activeDeadlineSeconds covers the whole
  job, all attempts, as in Kubernetes); ``stopped`` by a cancel makes it ``cancelled``.
* Any other failure counts (``interrupted``, an attempt a daemon restart stopped, and
  ``lost`` among them); while failures <= backoffLimit the job is ``retrying``
  after an exponential backoff (base, 2*base, 4*base... capped; Kubernetes uses 10 s
  and 6 min), else ``failed``. ``rejected`` and ``unavailable`` never retry.
* ``cancel`` moves any non-terminal job to ``cancelled``.
* Terminal states never change, except that ``--retry`` resubmission of a ``failed``,
  ``cancelled`` or ``deadline-exceeded`` job moves it back to ``pending``.
"""

from __future__ import annotations

from dataclasses import dataclass

from fogctl.errors import StateError
from fogctl.jobs.executors.base import Exit

__all__ = [
    "ACTIVE",
    "STATES",
    "TERMINAL",
    "TRANSITIONS",
    "Decision",
    "backoff_delay",
    "check_transition",
    "decide",
]

PENDING = "pending"
RUNNING = "running"
RETRYING = "retrying"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
DEADLINE = "deadline-exceeded"

STATES = (PENDING, RUNNING, RETRYING, SUCCEEDED, FAILED, CANCELLED, DEADLINE)
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED, DEADLINE})
ACTIVE = frozenset({PENDING, RUNNING, RETRYING})

# state -> states it may move to
TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({RUNNING, FAILED, CANCELLED, DEADLINE}),
    RUNNING: frozenset({SUCCEEDED, FAILED, RETRYING, CANCELLED, DEADLINE}),
    RETRYING: frozenset({RUNNING, FAILED, CANCELLED, DEADLINE}),
    SUCCEEDED: frozenset(),
    FAILED: frozenset({PENDING}),
    CANCELLED: frozenset({PENDING}),
    DEADLINE: frozenset({PENDING}),
}

NO_RETRY = frozenset({"rejected", "unavailable", "dependency"})
MAX_BACKOFF_SECONDS = 360.0


def check_transition(job: str, old: str, new: str) -> None:
    """Raise :class:`StateError` unless ``old -> new`` is in the table."""
    if new not in TRANSITIONS.get(old, frozenset()):
        raise StateError(f"job {job}: cannot go from {old} to {new}")


def backoff_delay(failures: int, base: float = 10.0, cap: float = MAX_BACKOFF_SECONDS) -> float:
    """Delay before retry number ``failures`` (1-based): base * 2**(failures-1), capped."""
    if failures <= 0:
        return 0.0
    return float(min(cap, base * 2 ** min(failures - 1, 40)))


@dataclass(frozen=True, slots=True)
class Decision:
    """What happens after an attempt: the new state, the failure count, the retry delay."""

    state: str
    failures: int
    delay: float = 0.0


def decide(exit: Exit, *, failures: int, backoff_limit: int, base: float = 10.0) -> Decision:
    """The job's next state after an attempt ended with ``exit``."""
    if exit.reason == "completed":
        return Decision(SUCCEEDED, failures)
    if exit.reason == "checkpointed":
        return Decision(RETRYING, failures, 0.0)
    if exit.reason == "deadline":
        return Decision(DEADLINE, failures)
    if exit.reason == "stopped":
        return Decision(CANCELLED, failures)
    if exit.reason == "preempted":
        return Decision(RETRYING, failures, base)
    failures += 1
    if exit.reason in NO_RETRY or failures > backoff_limit:
        return Decision(FAILED, failures)
    return Decision(RETRYING, failures, backoff_delay(failures, base))
