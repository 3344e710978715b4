"""The work cycle: take queued tasks, run them capped, preempt them when eligibility goes.

One cycle (what a timer runs)::

    lock the state dir (flock; a second overlapping cycle exits at once)
    evaluate eligibility (hysteresis + back-off, memory persisted)
    while eligible and a task is queued or preempted:
        claim it (database lease), start it through the jobs executor of its kind
            (fogctl.harvest.tasks: WASM in a child process, or a Docker container)
            with the policy's CPU and memory caps
        every `poll` s: read sensors, re-evaluate with stop thresholds, renew the lease
        eligibility lost (or SIGTERM): the executor's stop (WASM: epoch interruption and
            a snapshot; Docker: the checkpoint signal), `grace` s, then a kill;
            the task goes back to `preempted` with its last checkpoint
        finished: result, output blob, CPU seconds and estimated energy recorded once
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fogctl.errors import FogError
from fogctl.harvest import queue
from fogctl.harvest.engine import decide, load_policy, power_model, sensor_source
from fogctl.harvest.lock import CycleLock
from fogctl.harvest.policy import Memory, Policy
from fogctl.harvest.power import PowerModel
from fogctl.harvest.records import CycleRecord, TaskRecord
from fogctl.harvest.sensors import SensorSource
from fogctl.state import State

__all__ = ["Supervisor", "TaskOutcome", "run_cycle", "run_loop", "run_task"]

Log = Callable[[str], None]


def _nolog(msg: str) -> None:
    pass


@dataclass
class TaskOutcome:
    task: TaskRecord
    state: str
    preempt_latency: float | None = None
    reasons: tuple[str, ...] = ()


@dataclass
class Supervisor:
    """What a running task needs from the cycle: sensors, policy, memory, stop flag."""

    state: State
    policy: Policy
    source: SensorSource
    memory: Memory
    stop: threading.Event
    owner: str
    model: PowerModel
    log: Log = _nolog
    lease: float = 30.0
    reasons: tuple[str, ...] = field(default_factory=tuple)

    def still_eligible(self, own_cpu: float) -> bool:
        if self.stop.is_set():
            self.reasons = ("stop requested (SIGTERM or SIGINT)",)
            return False
        try:
            readings = self.source.read(own_cpu)
        except FogError as exc:  # e.g. the scenario file vanished: stop safely
            self.reasons = (f"sensors: {exc}",)
            return False
        d = decide(self.policy, readings, self.memory)
        if d.memory != self.memory:
            self.memory = d.memory
            queue.save_memory(self.state, d.memory)
        self.reasons = d.reasons
        return d.eligible


def run_task(sup: Supervisor, task: TaskRecord) -> TaskOutcome:
    from fogctl.harvest.tasks import run_task as _run_task

    return _run_task(sup, task)


def run_cycle(
    state: State,
    *,
    source: SensorSource | None = None,
    stop: threading.Event | None = None,
    max_tasks: int | None = None,
    log: Log = _nolog,
    on_task: Callable[[TaskOutcome], None] | None = None,
) -> CycleRecord:
    """One harvest cycle; returns what it did. Never runs a task another cycle holds."""
    t0 = time.monotonic()
    queue.migrate(state)
    lock = CycleLock(state.subdir("harvest") / "cycle.lock")
    if not lock.acquire():
        return CycleRecord("locked", False, ("another harvest cycle holds the lock",))
    with lock:
        from fogctl.harvest.tasks import clean_cgroups

        clean_cgroups()
        # a cycle killed mid-task (SIGKILL, OOM) left its task leased: it is ours now
        orphans = queue.reclaim_orphans(state, os.uname().nodename)
        if orphans:
            log(f"reclaimed {len(orphans)} task(s) of a cycle that died: {', '.join(orphans)}")
        policy = load_policy(state)
        # the persisted CPU sample: a later `harvest status` measures from this cycle on
        src = source or sensor_source(state, policy, persist=True)
        readings = src.read()
        mem = queue.load_memory(state)
        d = decide(policy, readings, mem)
        if d.memory != mem:
            queue.save_memory(state, d.memory)
        if not d.eligible:
            return CycleRecord(
                "ineligible", False, d.reasons, seconds=round(time.monotonic() - t0, 3)
            )
        sup = Supervisor(
            state,
            policy,
            src,
            d.memory,
            stop or threading.Event(),
            owner=f"{os.uname().nodename}:{os.getpid()}:{secrets.token_hex(4)}",
            model=power_model(state, readings.battery_percent.status != "absent"),
            log=log,
            lease=max(30.0, 10 * policy.poll),
        )
        executors = ("wasm", "docker") if policy.allow_docker else ("wasm",)
        ran: list[str] = []
        done: list[str] = []
        pre: list[str] = []
        failed: list[str] = []
        outcome = "idle"
        while max_tasks is None or len(ran) < max_tasks:
            task = queue.claim(state, sup.owner, sup.lease, executors=executors)
            if task is None:
                break
            ran.append(task.id)
            res = run_task(sup, task)
            if on_task is not None:
                on_task(res)
            {"done": done, "preempted": pre, "failed": failed}[res.state].append(task.id)
            outcome = "worked"
            if res.state == "preempted":
                outcome = "preempted"
                break
        reasons = sup.reasons if pre else ()
        return CycleRecord(
            outcome,
            True,
            reasons,
            tuple(ran),
            tuple(done),
            tuple(pre),
            tuple(failed),
            round(time.monotonic() - t0, 3),
        )


def run_loop(
    state: State,
    *,
    interval: float = 60.0,
    stop: threading.Event | None = None,
    log: Log = _nolog,
    emit: Callable[[CycleRecord], None] | None = None,
) -> None:
    """Cycles every ``interval`` s until SIGTERM/SIGINT (the systemd service's job)."""
    stop = stop or threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        log(f"{signal.Signals(signum).name}: preempting the task and stopping")
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stop.is_set():
            rec = run_cycle(state, stop=stop, log=log)
            if emit is not None:
                emit(rec)
            stop.wait(interval)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
