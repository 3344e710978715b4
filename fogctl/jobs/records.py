"""Records of the jobs domain (listed in fogctl-records(5))."""

from __future__ import annotations

from typing import Any

from fogctl.records import Record, record

__all__ = ["ImageRecord", "JobRecord"]


@record("job")
class JobRecord(Record):
    """A job and where it stands. ``state`` is one of pending, running, retrying,
    succeeded, failed, cancelled, deadline-exceeded; ``reason`` says why the last attempt
    ended (completed, exit-code, checkpointed, oom, deadline, fuel, stopped, preempted, rejected,
    lost, interrupted, dependency, unavailable, error); ``attempt`` counts started attempts;
    ``logs`` is the blob digest of the last attempt's output; ``outputs`` maps each
    declared output path to its blob digest; times are ISO 8601 UTC; ``retry_at`` is
    when a retrying job starts again; ``queue`` is ``harvest`` for jobs handed to
    ``fogctl harvest``; ``spec`` (with ``fogctl jobs show``) is the canonical spec.
    """

    id: str
    state: str
    executor: str | None = None
    node: str | None = None
    attempt: int = 0
    reason: str | None = None
    exit_code: int | None = None
    detail: str | None = None
    created: str | None = None
    started: str | None = None
    finished: str | None = None
    retry_at: str | None = None
    ref: str | None = None
    logs: str | None = None
    outputs: dict[str, Any] | None = None
    queue: str | None = None
    spec: dict[str, Any] | None = None


@record("job-image")
class ImageRecord(Record):
    """A local image built by ``fogctl jobs image`` (``size`` in bytes)."""

    tag: str
    id: str
    size: int = 0
    seconds: float | None = None
