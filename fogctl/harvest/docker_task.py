"""Docker tasks through the jobs executors (``fogctl.jobs.executors``, entry point ``docker``).

The container gets the policy's caps (``--cpus`` = cpu_limit x max_cpus / 100, memory
from mem_idle/mem_busy), its checkpoint directory (kept in the state dir between
attempts) mounted at the spec's ``checkpoint.path``, and on preemption the spec's
checkpoint signal with the policy's grace period, then a kill (executor ``stop``).
A container exiting 85 has saved a checkpoint and asks to run again: it is requeued.
CPU seconds are estimated as cap x wall time (an upper bound: containers are capped).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from fogctl.errors import InvalidInput, ServiceUnavailable
from fogctl.harvest import queue
from fogctl.harvest.records import TaskRecord

if TYPE_CHECKING:
    from fogctl.harvest.cycle import Supervisor, TaskOutcome

__all__ = ["run_docker"]


def run_docker(sup: Supervisor, task: TaskRecord, spec: dict[str, Any]) -> TaskOutcome:
    from fogctl.harvest.cycle import TaskOutcome, task_dir

    try:
        from fogctl.jobs import parse_spec
        from fogctl.jobs.executors import Launch, get_executor
    except ImportError as exc:
        raise ServiceUnavailable(f"the jobs executors are not installed: {exc}") from None
    state, policy = sup.state, sup.policy
    raw = spec.get("raw")
    if not isinstance(raw, dict):
        raw = {"metadata": {"name": task.name}, "image": spec["image"]}
        if spec.get("command"):
            raw["command"] = spec["command"]
        if spec.get("args"):
            raw["args"] = spec["args"]
        if spec.get("env"):
            raw["env"] = spec["env"]
    job = parse_spec(raw, where=f"harvest task {task.id}")
    ex = get_executor("docker")
    avail = ex.available()
    if not avail.reachable:
        raise ServiceUnavailable(f"docker: {avail.endpoint}: {avail.detail or 'unreachable'}")
    wd = task_dir(state, task.id)
    work = wd / "work"
    work.mkdir(exist_ok=True)
    ckdir = wd / "checkpoint"
    ckdir.mkdir(exist_ok=True)
    # the container runs as nobody (65534): its two bind mounts must be writable for it
    os.chmod(work, 0o777)
    os.chmod(ckdir, 0o777)
    import psutil

    cpu = policy.cpu_limit / 100 * policy.max_cpus
    mem = policy.mem_limit_bytes(int(psutil.virtual_memory().total))
    mem = min(mem, job.memory_cap) if mem else job.memory_cap
    launch = Launch(
        job,
        run_id=f"{task.id}-{task.attempts}",
        workdir=work,
        checkpoint_dir=ckdir if job.checkpoint is not None else None,
        cpu=cpu,
        memory=mem,
        labels={"io.fogctl.harvest": task.id},
    )
    try:
        handle = ex.start(launch)
    except InvalidInput:
        raise
    t_start = time.monotonic()
    sig = job.checkpoint.signal if job.checkpoint is not None else "SIGTERM"
    last_renew = time.monotonic()
    latency: float | None = None
    result = None
    try:
        while result is None:
            result = ex.wait(handle, timeout=policy.poll)
            if result is not None:
                break
            own = cpu * (time.monotonic() - t_start)
            if time.monotonic() - last_renew > sup.lease / 3:
                queue.renew(state, task.id, sup.owner, sup.lease)
                last_renew = time.monotonic()
            if not sup.still_eligible(own):
                t0 = time.monotonic()
                ex.stop(handle, signal=sig, grace=policy.grace)
                result = ex.wait(handle, timeout=policy.grace + 10)
                latency = time.monotonic() - t0
                break
        output = b"".join(ex.logs(handle))
    finally:
        ex.remove(handle)
    cpu_s = cpu * (time.monotonic() - t_start)
    energy = sup.model.task_energy_j(cpu_s)
    out_blob = state.blobs.put(output)
    ckpt_files = sorted(p.name for p in ckdir.iterdir()) if ckdir.exists() else []
    progress = {"checkpoint_files": ckpt_files}
    if result is not None and result.ok and latency is None:
        rec = queue.release(
            state,
            task.id,
            sup.owner,
            "done",
            output=out_blob,
            exit_code=0,
            cpu_seconds=cpu_s,
            energy_j=energy,
            result=None,
            progress=progress,
        )
        return TaskOutcome(rec, "done")
    if latency is not None or (result is not None and result.reason in ("checkpointed", "stopped")):
        rec = queue.release(
            state,
            task.id,
            sup.owner,
            "preempted",
            cpu_seconds=cpu_s,
            energy_j=energy,
            preemptions=1,
            progress=progress,
            exit_code=result.exit_code if result else None,
        )
        return TaskOutcome(rec, "preempted", latency, sup.reasons)
    detail = f"{result.reason}: {result.detail}" if result else "lost"
    rec = queue.release(
        state,
        task.id,
        sup.owner,
        "failed",
        error=detail,
        output=out_blob,
        exit_code=result.exit_code if result else None,
        cpu_seconds=cpu_s,
        energy_j=energy,
    )
    return TaskOutcome(rec, "failed")
