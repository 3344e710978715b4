"""The work cycle: take queued tasks, run them capped, preempt them when eligibility goes.

One cycle (what a timer runs)::

    lock the state dir (flock; a second overlapping cycle exits at once)
    evaluate eligibility (hysteresis + back-off, memory persisted)
    while eligible and a task is queued or preempted:
        claim it (database lease), start it (WASM child or Docker container)
        every `poll` s: read sensors, re-evaluate with stop thresholds, renew the lease
        CPU cap: duty cycling (SIGSTOP/SIGCONT, 100 ms period) for WASM, --cpus for Docker
        eligibility lost (or SIGTERM): checkpoint request, wait `grace`, then kill;
            the task goes back to `preempted` with its last checkpoint
        finished: result, output blob, CPU seconds and estimated energy recorded once
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fogctl.errors import ServiceUnavailable
from fogctl.harvest import queue
from fogctl.harvest.engine import decide, load_policy, power_model, sensor_source
from fogctl.harvest.lock import CycleLock
from fogctl.harvest.policy import Memory, Policy
from fogctl.harvest.power import PowerModel
from fogctl.harvest.records import CycleRecord, TaskRecord
from fogctl.harvest.sensors import SensorSource
from fogctl.harvest.wasmrun import EXIT_CHECKPOINTED, EXIT_DONE, read_header
from fogctl.state import State

__all__ = ["DutyCycle", "TaskOutcome", "run_cycle", "run_loop"]

Log = Callable[[str], None]


def _nolog(msg: str) -> None:
    pass


class DutyCycle:
    """Cap a process tree at ``percent`` of one CPU's time by SIGSTOP/SIGCONT."""

    def __init__(self, pid: int, percent: float, period: float = 0.1) -> None:
        self.pid = pid
        self.on = max(0.0, min(1.0, percent / 100.0))
        self.period = period
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> DutyCycle:
        if self.on < 1.0:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _signal(self, sig: int) -> bool:
        try:
            os.kill(self.pid, sig)
            return True
        except ProcessLookupError:
            return False

    def _run(self) -> None:
        deadline = time.monotonic()
        while not self._halt.is_set():
            deadline += self.period * self.on
            if not self._signal(signal.SIGCONT):
                return
            self._halt.wait(max(0.0, deadline - time.monotonic()))
            if self._halt.is_set():
                break
            deadline += self.period * (1 - self.on)
            if not self._signal(signal.SIGSTOP):
                return
            self._halt.wait(max(0.0, deadline - time.monotonic()))
        self._signal(signal.SIGCONT)

    def stop(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join()
        self._signal(signal.SIGCONT)


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
            self.reasons = ("stop requested (SIGTERM)",)
            return False
        readings = self.source.read(own_cpu)
        d = decide(self.policy, readings, self.memory)
        if d.memory != self.memory:
            self.memory = d.memory
            queue.save_memory(self.state, d.memory)
        self.reasons = d.reasons
        return d.eligible


def _cpu_seconds(pid: int) -> float:
    import psutil

    try:
        t = psutil.Process(pid).cpu_times()
        return float(t.user + t.system + t.children_user + t.children_system)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return 0.0


def task_dir(state: State, task_id: str) -> Path:
    d = state.subdir("harvest") / "tasks" / task_id
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


def _run_wasm(sup: Supervisor, task: TaskRecord, spec: dict[str, Any]) -> TaskOutcome:
    state, policy = sup.state, sup.policy
    wd = task_dir(state, task.id)
    ckpt = wd / "checkpoint.bin"
    if task.checkpoint and not ckpt.exists():
        shutil.copyfile(state.blobs.path(task.checkpoint), ckpt)
    import psutil

    mem_limit = policy.mem_limit_bytes(int(psutil.virtual_memory().total)) or 0
    cmd = [
        sys.executable,
        "-m",
        "fogctl.harvest.wasmrun",
        "--module",
        str(state.blobs.path(spec["module"])),
        "--workdir",
        str(wd),
        "--name",
        task.name,
        "--mem-limit",
        str(mem_limit),
        "--checkpoint-every",
        str(policy.checkpoint_every),
    ]
    if spec.get("entry"):
        cmd += ["--entry", str(spec["entry"])]
    for a in spec.get("args", []):
        cmd += ["--arg", a]
    env = dict(spec.get("env", {}))
    idx = spec.get("index")
    if isinstance(idx, dict):
        env.setdefault("FOGCTL_INDEX_START", str(idx.get("start")))
        env.setdefault("FOGCTL_INDEX_END", str(idx.get("end")))
    for k, v in env.items():
        cmd += ["--env", f"{k}={v}"]
    for var, glob in (("FOGCTL_INDEX_START", "index_start"), ("FOGCTL_INDEX_END", "index_end")):
        if env.get(var, "").lstrip("-").isdigit():
            cmd += ["--set-global", f"{glob}={env[var]}"]
    for f in ("result.json", "error.txt"):
        (wd / f).unlink(missing_ok=True)
    import resource

    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True)
    throttle = DutyCycle(proc.pid, policy.cpu_limit).start()
    sup.log(f"task {task.id} ({task.name}): started wasm pid {proc.pid}, cap {policy.cpu_limit:g}%")
    cpu = 0.0
    last_renew = time.monotonic()
    latency: float | None = None
    try:
        while True:
            try:
                proc.wait(timeout=policy.poll)
                break
            except subprocess.TimeoutExpired:
                pass
            cpu = max(cpu, _cpu_seconds(proc.pid))
            if time.monotonic() - last_renew > sup.lease / 3:
                queue.renew(state, task.id, sup.owner, sup.lease)
                last_renew = time.monotonic()
            if not sup.still_eligible(cpu):
                t0 = time.monotonic()
                sup.log(f"task {task.id}: preempting ({'; '.join(sup.reasons)})")
                throttle.stop()
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=policy.grace)
                except subprocess.TimeoutExpired:
                    sup.log(f"task {task.id}: no checkpoint within {policy.grace:g} s; killed")
                    proc.kill()
                    proc.wait()
                latency = time.monotonic() - t0
                break
    finally:
        throttle.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rc = proc.returncode
    # the reaped child's exact CPU time (RUSAGE_CHILDREN also holds the few short helper
    # processes sensors may run, e.g. loginctl; negligible beside a task)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = max(cpu, (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime))
    header = read_header(ckpt)
    progress = (
        {"checkpoints": header.get("checkpoints", 0), "globals": header["globals"]}
        if header
        else {}
    )
    energy = sup.model.task_energy_j(cpu)
    ckpt_blob = state.blobs.put_file(ckpt) if header else None
    if rc == EXIT_DONE and (wd / "result.json").exists():
        result = json.loads((wd / "result.json").read_text())
        out_blob = state.blobs.put_file(wd / "stdout")
        rec = queue.release(
            state,
            task.id,
            sup.owner,
            "done",
            result=json.dumps(result["values"]),
            output=out_blob,
            exit_code=0,
            cpu_seconds=cpu,
            energy_j=energy,
            progress=progress,
        )
        shutil.rmtree(wd, ignore_errors=True)
        return TaskOutcome(rec, "done")
    if latency is not None or rc == EXIT_CHECKPOINTED or rc < 0:
        rec = queue.release(
            state,
            task.id,
            sup.owner,
            "preempted",
            checkpoint=ckpt_blob,
            progress=progress,
            cpu_seconds=cpu,
            energy_j=energy,
            preemptions=1,
            exit_code=rc,
        )
        return TaskOutcome(rec, "preempted", latency, sup.reasons)
    err = (wd / "error.txt").read_text().strip() if (wd / "error.txt").exists() else f"exit {rc}"
    rec = queue.release(
        state,
        task.id,
        sup.owner,
        "failed",
        error=err,
        exit_code=rc,
        cpu_seconds=cpu,
        energy_j=energy,
    )
    return TaskOutcome(rec, "failed")


def run_task(sup: Supervisor, task: TaskRecord) -> TaskOutcome:
    spec = queue.task_spec(sup.state, task.id)
    if spec["executor"] == "wasm":
        return _run_wasm(sup, task, spec)
    from fogctl.harvest.docker_task import run_docker

    try:
        return run_docker(sup, task, spec)
    except ServiceUnavailable:
        queue.release(sup.state, task.id, sup.owner, "preempted")
        raise


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
        policy = load_policy(state)
        src = source or sensor_source(state, policy, persist=False)
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
        log(f"signal {signum}: preempting and stopping")
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
