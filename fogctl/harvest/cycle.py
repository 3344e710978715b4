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

import contextlib
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

from fogctl.errors import FogError, ServiceUnavailable
from fogctl.harvest import queue
from fogctl.harvest.engine import decide, load_policy, power_model, sensor_source
from fogctl.harvest.lock import CycleLock
from fogctl.harvest.policy import Memory, Policy
from fogctl.harvest.power import PowerModel
from fogctl.harvest.records import CycleRecord, TaskRecord
from fogctl.harvest.sensors import SensorSource
from fogctl.harvest.wasmrun import EXIT_CHECKPOINTED, EXIT_DONE, read_header
from fogctl.state import State

__all__ = ["CpuCap", "TaskOutcome", "run_cycle", "run_loop"]

Log = Callable[[str], None]

#: A task killed from outside (not preempted by fogctl) this many times is failed.
MAX_LOST_ATTEMPTS = 10


def _nolog(msg: str) -> None:
    pass


CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PREFIX = "fogctl-harvest-"


def _cpu_ticks(pid: int) -> float | None:
    """CPU seconds used by ``pid``'s threads, in nanoseconds' precision (schedstat).

    ``/proc/PID/task/*/schedstat`` starts with the time each thread spent on a CPU;
    /proc/PID/stat's clock ticks (10 ms) are too coarse to throttle on 50 ms periods.
    """
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                total += int(f.read().split()[0])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


class CpuCap:
    """Cap a process at ``percent`` of one CPU's time.

    Where this process may create cgroups (root, or a delegated subtree), the kernel
    enforces it: cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us`` (the same CFS
    bandwidth control as ``docker --cpus``). Otherwise fogctl throttles by CPU time:
    every 50 ms it compares the CPU the task has used with ``percent`` x wall time and
    SIGSTOPs it while it is ahead, SIGCONTs it when it is not (cpulimit(1)'s method, on
    measured CPU rather than wall-clock slices, so a task starved by other load is not
    throttled a second time). ``method`` says which one is in force;
    ``FOGCTL_HARVEST_CAP_METHOD=throttle`` forces the fallback.
    """

    def __init__(self, pid: int, percent: float, name: str, period: float = 0.05) -> None:
        self.pid = pid
        self.share = max(0.0, percent / 100.0)
        self.name = name
        self.period = period
        self.method = "none"
        self.cgroup: Path | None = None
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> CpuCap:
        if self.share >= 1.0 * (os.cpu_count() or 1):
            return self
        forced = os.environ.get("FOGCTL_HARVEST_CAP_METHOD", "")
        if forced != "throttle" and self._try_cgroup():
            return self
        self.method = "throttle"
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def cgroup_method() -> str | None:
        """``cgroup-v2``/``cgroup-v1`` if this process may create CPU cgroups, else None."""
        v2 = (CGROUP_ROOT / "cgroup.controllers").exists()
        d = (CGROUP_ROOT if v2 else CGROUP_ROOT / "cpu") / f"{CGROUP_PREFIX}probe-{os.getpid()}"
        try:
            d.mkdir()
            d.rmdir()
        except OSError:
            return None
        return "cgroup-v2" if v2 else "cgroup-v1"

    def _try_cgroup(self) -> bool:
        quota = max(1000, int(self.share * 100_000))
        v2 = (CGROUP_ROOT / "cgroup.controllers").exists()
        base = CGROUP_ROOT if v2 else CGROUP_ROOT / "cpu"
        d = base / f"{CGROUP_PREFIX}{self.name}"
        try:
            d.mkdir(exist_ok=True)
            if v2:
                (d / "cpu.max").write_text(f"{quota} 100000\n")
            else:
                (d / "cpu.cfs_period_us").write_text("100000\n")
                (d / "cpu.cfs_quota_us").write_text(f"{quota}\n")
            (d / "cgroup.procs").write_text(f"{self.pid}\n")
        except OSError:
            with contextlib.suppress(OSError):
                d.rmdir()
            return False
        self.cgroup = d
        self.method = "cgroup-v2" if v2 else "cgroup-v1"
        return True

    def _signal(self, sig: int) -> bool:
        try:
            os.kill(self.pid, sig)
            return True
        except ProcessLookupError:
            return False

    def _run(self) -> None:
        t_last = time.monotonic()
        used_last = _cpu_ticks(self.pid) or 0.0
        credit = 0.0
        stopped = False
        while not self._halt.wait(self.period):
            now = time.monotonic()
            used = _cpu_ticks(self.pid)
            if used is None:
                return
            credit += self.share * (now - t_last) - (used - used_last)
            # credit left unused while other load starved the task carries over for
            # at most half a second's worth (a short catch-up burst, never a long one)
            credit = min(credit, self.share * 0.5)
            t_last, used_last = now, used
            want_stop = credit < 0
            if want_stop != stopped:
                if not self._signal(signal.SIGSTOP if want_stop else signal.SIGCONT):
                    return
                stopped = want_stop
        self._signal(signal.SIGCONT)

    def release(self) -> None:
        """Stop throttling (the process runs free, e.g. to checkpoint quickly)."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join()
        self._signal(signal.SIGCONT)

    def close(self) -> None:
        """After the process is gone: remove its cgroup."""
        self.release()
        if self.cgroup is not None:
            with contextlib.suppress(OSError):
                self.cgroup.rmdir()


def clean_cgroups() -> None:
    """Remove empty cgroups left by a cycle that crashed (rmdir fails on a busy one)."""
    for base in (CGROUP_ROOT, CGROUP_ROOT / "cpu"):
        try:
            stale = [p for p in base.iterdir() if p.name.startswith(CGROUP_PREFIX)]
        except OSError:
            continue
        for p in stale:
            with contextlib.suppress(OSError):
                p.rmdir()


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


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it (= checkpoint and exit) if the cycle dies."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _stop_stale_child(wd: Path) -> None:
    """A runner left by a cycle that died (no PDEATHSIG, e.g. not Linux) must not run
    beside the new one: ask it to checkpoint, then kill it."""
    try:
        pid = int((wd / "pid").read_text())
    except (OSError, ValueError):
        return
    import psutil

    try:
        p = psutil.Process(pid)
        if str(wd) not in " ".join(p.cmdline()):
            return
        p.send_signal(signal.SIGCONT)
        p.terminate()
        try:
            p.wait(timeout=10)
        except psutil.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)
    except psutil.Error:
        return


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
    # the same sandbox view as the jobs WASM executor: /work, the checkpoint dir
    work = wd / "work"
    if not work.exists():
        work.mkdir()
        for item in spec.get("inputs", []):
            dest = work / item["path"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(state.blobs.path(item["blob"]), dest)
    cmd += ["--preopen", f"{work}=/work"]
    env = {
        "FOGCTL_JOB_ID": task.name,
        "FOGCTL_RUN_ID": f"{task.id}-{task.attempts}",
        "FOGCTL_WORK": "/work",
        **dict(spec.get("env", {})),
    }
    if spec.get("checkpoint_path"):
        ck = wd / "app-checkpoint"
        ck.mkdir(exist_ok=True)
        cmd += ["--preopen", f"{ck}={spec['checkpoint_path']}"]
        env["FOGCTL_CHECKPOINT_DIR"] = str(spec["checkpoint_path"])
    for word in spec.get("command") or [Path(str(spec.get("name", task.name))).name]:
        cmd += ["--argv", str(word)]
    for a in spec.get("args", []):
        cmd += ["--arg", a]
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
    _stop_stale_child(wd)
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent
    )
    (wd / "pid").write_text(f"{proc.pid}\n")
    throttle = CpuCap(proc.pid, policy.cpu_limit, f"{task.id}-{proc.pid}").start()
    sup.log(
        f"task {task.id} ({task.name}): started wasm pid {proc.pid}, "
        f"cap {policy.cpu_limit:g}% ({throttle.method})"
    )
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
                throttle.release()
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
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        throttle.close()
    rc = proc.returncode
    # the reaped child's exact CPU time (RUSAGE_CHILDREN also holds the few short helper
    # processes sensors may run, e.g. loginctl; negligible beside a task)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = max(cpu, (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime))
    header = read_header(ckpt)
    progress = (
        {"checkpoints": header.get("checkpoints", 0), "globals": header.get("globals", {})}
        if header
        else {}
    )
    energy = sup.model.task_energy_j(cpu)
    ckpt_blob = state.blobs.put_file(ckpt) if header else None
    if rc == EXIT_DONE and (wd / "result.json").exists():
        result = json.loads((wd / "result.json").read_text())
        out_blob = state.blobs.put_file(wd / "stdout")
        outputs = {}
        for rel in spec.get("outputs", []):
            f = work / rel
            if f.is_file():
                outputs[rel] = state.blobs.put_file(f)
        if outputs:
            progress["outputs"] = outputs
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
    if rc < 0 and latency is None and task.attempts >= MAX_LOST_ATTEMPTS:
        # killed from outside (OOM killer, an operator) again and again: give up
        rec = queue.release(
            state,
            task.id,
            sup.owner,
            "failed",
            exit_code=rc,
            cpu_seconds=cpu,
            energy_j=energy,
            error=f"killed by signal {-rc} on {task.attempts} attempts",
        )
        shutil.rmtree(wd, ignore_errors=True)
        return TaskOutcome(rec, "failed")
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
    shutil.rmtree(wd, ignore_errors=True)
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
