"""One harvest task through the executors of ``fogctl submit`` (``fogctl.jobs.executors``).

Both kinds go the same way: the task's spec becomes a fogctl-job(5) :class:`JobSpec`, and
one :class:`Launch` per attempt carries the policy's caps (``cpu`` = cpu_limit x
max_cpus / 100 cores; memory from mem_idle/mem_busy, at most the spec's limit), the task's
work dir (``/work``: inputs copied in on the first attempt, kept between attempts) and its
checkpoint dir (kept in the state dir between attempts). On preemption the executor's
``stop`` is called with the spec's checkpoint signal and the policy's grace period.

* WASM: ``WasmExecutor(isolation="process", snapshots=True)``. The module runs in a
  child process under a cgroup CPU quota (or CPU-time throttling) and the store's memory
  limit; ``stop`` is an epoch interruption after which the executor saves the instance's
  linear memory and mutable globals; the next attempt is a fresh instance loaded with
  them. The snapshot also goes to the blob store (the task's ``checkpoint``). CPU seconds
  are the child's own (``wait4``).
* Docker: the ``docker`` executor with ``--cpus`` and ``--memory``; the container gets the
  checkpoint signal, ``grace`` seconds, then a kill; exit 85 means it saved a checkpoint.
  CPU seconds are estimated as cap x wall time (an upper bound: containers are capped).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from fogctl.errors import FogError, InvalidInput, ServiceUnavailable
from fogctl.harvest import queue
from fogctl.harvest.records import TaskRecord

if TYPE_CHECKING:
    from fogctl.harvest.cycle import Supervisor, TaskOutcome
    from fogctl.jobs.executors import Executor
    from fogctl.jobs.executors.wasm import WasmExecutor
    from fogctl.jobs.spec import JobSpec
    from fogctl.state import State

__all__ = ["MAX_LOST_ATTEMPTS", "clean_cgroups", "run_task", "task_dir"]

#: A task whose runner vanished (killed from outside) this many times is failed.
MAX_LOST_ATTEMPTS = 10

_NAME_BAD = re.compile(r"[^a-z0-9._-]+")


def task_dir(state: State, task_id: str) -> Path:
    d = state.subdir("harvest") / "tasks" / task_id
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


def _job_name(task: TaskRecord) -> str:
    name = _NAME_BAD.sub("-", task.name.lower()).strip("-._")[:128].strip("-._")
    return name or task.id


def _wasm_job(state: State, task: TaskRecord, spec: dict[str, Any], wd: Path) -> JobSpec:
    from fogctl.jobs import parse_spec

    module = wd / "module.wasm"
    if not module.exists():
        src = state.blobs.path(spec["module"])
        try:
            os.link(src, module)
        except OSError:
            shutil.copyfile(src, module)
    env = {str(k): str(v) for k, v in (spec.get("env") or {}).items()}
    idx = spec.get("index")
    if isinstance(idx, dict):
        env.setdefault("FOGCTL_INDEX_START", str(idx.get("start")))
        env.setdefault("FOGCTL_INDEX_END", str(idx.get("end")))
    # a module without WASI reads no environment: the index range is also given as its
    # initial globals (the executor's FOGCTL_GLOBAL_<name> convention)
    for var, glob in (("FOGCTL_INDEX_START", "index_start"), ("FOGCTL_INDEX_END", "index_end")):
        if env.get(var, "").lstrip("-").isdigit():
            env.setdefault(f"FOGCTL_GLOBAL_{glob}", env[var])
    raw: dict[str, Any] = {
        "metadata": {"name": _job_name(task)},
        "wasm": str(module),
        "env": env,
        "args": [str(a) for a in spec.get("args") or []],
    }
    command = spec.get("command") or [Path(str(spec.get("name", task.name))).name]
    raw["command"] = [str(c) for c in command]
    if spec.get("checkpoint_path"):
        raw["checkpoint"] = {"path": str(spec["checkpoint_path"])}
    if spec.get("outputs"):
        raw["outputs"] = list(spec["outputs"])
    if isinstance(spec.get("resources"), dict):
        raw["resources"] = spec["resources"]
    return parse_spec(raw, where=f"harvest task {task.id}")


def _docker_job(task: TaskRecord, spec: dict[str, Any]) -> JobSpec:
    from fogctl.jobs import parse_spec

    raw = spec.get("raw")
    if not isinstance(raw, dict):
        raw = {"metadata": {"name": _job_name(task)}, "image": spec["image"]}
        for key in ("command", "args", "env"):
            if spec.get(key):
                raw[key] = spec[key]
    return parse_spec(raw, where=f"harvest task {task.id}")


def _wasm_executor() -> WasmExecutor:
    """The jobs WASM executor (for its snapshot helpers), through the plugin loader."""
    from fogctl.jobs.executors import get_executor

    return cast("WasmExecutor", get_executor("wasm"))


def clean_cgroups() -> None:
    """Empty CPU cgroups of WASM processes that died with a crashed cycle go."""
    _wasm_executor().clean_cgroups()


def _executor(sup: Supervisor, kind: str) -> Executor:
    try:
        from fogctl.jobs.executors import get_executor
    except ImportError as exc:  # pragma: no cover - part of fogctl
        raise ServiceUnavailable(f"the jobs executors are not installed: {exc}") from None
    if kind == "wasm":
        # FOGCTL_WASM_CAP_METHOD=throttle (read by the executor) skips the cgroup quota
        return get_executor(
            "wasm",
            isolation="process",
            snapshots=True,
            snapshot_interval=sup.policy.checkpoint_every,
        )
    ex = get_executor("docker")
    avail = ex.available()
    if not avail.reachable:
        raise ServiceUnavailable(f"docker: {avail.endpoint}: {avail.detail or 'unreachable'}")
    return ex


def _prepare_work(state: State, spec: dict[str, Any], job: JobSpec, work: Path) -> None:
    """The first attempt gets the inputs in /work; later ones find /work as it was left."""
    if work.exists():
        return
    tmp = work.with_name(work.name + ".new")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for item in spec.get("inputs") or []:  # WASM tasks: inputs kept in the blob store
        dest = tmp / item["path"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(state.blobs.path(item["blob"]), dest)
    if not spec.get("inputs"):
        for inp in job.inputs:  # Docker tasks: the spec's files
            dest = tmp / inp.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(inp.source, dest)
    os.replace(tmp, work)


def _stop_stale_child(wd: Path) -> None:
    """A WASM process left by a cycle that died (no parent-death signal, e.g. not Linux)
    must not run beside the new one: ask it to checkpoint, then kill it."""
    try:
        pid = int((wd / "pid").read_text())
    except (OSError, ValueError):
        return
    import signal

    import psutil

    try:
        p = psutil.Process(pid)
        cmd = " ".join(p.cmdline())
        if "fogctl.jobs.executors.wasm" not in cmd or str(wd / "work") not in cmd:
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


def run_task(sup: Supervisor, task: TaskRecord) -> TaskOutcome:
    """Run one claimed task until it ends or eligibility is lost; record the outcome."""
    from fogctl.harvest.cycle import TaskOutcome
    from fogctl.jobs.executors import Launch

    state, policy = sup.state, sup.policy
    spec = queue.task_spec(state, task.id)
    kind = spec["executor"]
    wd = task_dir(state, task.id)
    work, ckdir = wd / "work", wd / "checkpoint"
    try:
        job = _wasm_job(state, task, spec, wd) if kind == "wasm" else _docker_job(task, spec)
        ex = _executor(sup, kind)
        _prepare_work(state, spec, job, work)
    except ServiceUnavailable:
        queue.release(state, task.id, sup.owner, "preempted")
        raise
    except (FogError, OSError, KeyError) as exc:
        msg = exc.message if isinstance(exc, FogError) else f"{type(exc).__name__}: {exc}"
        return _fail(sup, task, wd, f"cannot start: {msg}")
    ckdir.mkdir(exist_ok=True)
    if kind == "docker":  # the container runs as nobody (65534): its mounts must be writable
        os.chmod(work, 0o777)
        os.chmod(ckdir, 0o777)
    if kind == "wasm":
        _stop_stale_child(wd)  # first: it could still be writing its snapshot
    snap = _wasm_executor().snapshot_file(ckdir)
    if kind == "wasm" and task.checkpoint and not snap.exists():
        snap.parent.mkdir(parents=True, exist_ok=True)  # the task dir was lost: use the blob
        shutil.copyfile(state.blobs.path(task.checkpoint), snap)

    import psutil

    cpu = policy.cpu_limit / 100 * policy.max_cpus
    mem = policy.mem_limit_bytes(int(psutil.virtual_memory().total))
    mem = min(mem, job.memory_cap) if mem else job.memory_cap
    launch = Launch(
        job,
        run_id=f"{task.id}-{task.attempts}",
        workdir=work,
        checkpoint_dir=ckdir if kind == "wasm" or job.checkpoint is not None else None,
        cpu=cpu,
        memory=mem,
        labels={"io.fogctl.harvest": task.id},
    )
    try:
        handle = ex.start(launch)
    except InvalidInput as exc:
        return _fail(sup, task, wd, f"cannot start: {exc.message}")
    except ServiceUnavailable:
        queue.release(state, task.id, sup.owner, "preempted")
        raise
    t_start = time.monotonic()
    wasm = cast("WasmExecutor", ex) if kind == "wasm" else None
    if wasm is not None:
        st = wasm.stats(handle)
        if st.pid is not None:
            (wd / "pid").write_text(f"{st.pid}\n")
        cap_how = st.cpu_cap
    else:
        cap_how = "--cpus"
    sup.log(
        f"task {task.id} ({task.name}): started on {kind}, cap {cpu:g} CPU ({cap_how}), "
        f"memory {mem // 2**20} MiB"
    )
    sig = job.checkpoint.signal if job.checkpoint is not None else "SIGTERM"

    def own_cpu() -> float:
        if wasm is not None:
            return float(wasm.stats(handle).cpu_seconds or 0.0)
        return cpu * (time.monotonic() - t_start)

    last_renew = time.monotonic()
    latency: float | None = None
    result = None
    try:
        while result is None:
            result = ex.wait(handle, timeout=policy.poll)
            if result is not None:
                break
            if time.monotonic() - last_renew > sup.lease / 3:
                queue.renew(state, task.id, sup.owner, sup.lease)
                last_renew = time.monotonic()
            if not sup.still_eligible(own_cpu()):
                t0 = time.monotonic()
                sup.log(f"task {task.id}: preempting ({'; '.join(sup.reasons)})")
                ex.stop(handle, signal=sig, grace=policy.grace)
                result = ex.wait(handle, timeout=policy.grace + 10)
                latency = time.monotonic() - t0
                break
    finally:
        if result is None:  # an error in this loop: the task must not run on unattended
            with contextlib.suppress(Exception):
                ex.stop(handle, signal=sig, grace=0)
                ex.wait(handle, timeout=10)
    cpu_s = own_cpu()
    values = wasm.returned(handle) if wasm is not None else None
    every = wasm.output_file(ckdir) if wasm is not None else None
    if wasm is not None and wasm.stats(handle).snapshotting and every and every.exists():
        output = every.read_bytes()  # every attempt's output, exactly once
    else:
        output = b"".join(ex.logs(handle))
    ex.remove(handle)
    energy = sup.model.task_energy_j(cpu_s)
    if wasm is not None:
        header = wasm.snapshot_header(ckdir)
        progress: dict[str, Any] = (
            {"checkpoints": header.get("checkpoints", 0), "globals": header.get("globals", {})}
            if header
            else {}
        )
    else:
        progress = {"checkpoint_files": sorted(p.name for p in ckdir.iterdir())}
    if result is not None and result.ok and latency is None:
        outputs = {}
        for rel in job.outputs:
            f = work / rel
            with contextlib.suppress(OSError):
                if f.is_file() and f.resolve().is_relative_to(work.resolve()):
                    outputs[rel] = state.blobs.put_file(f)
        if outputs:
            progress["outputs"] = outputs
        rec = queue.release(
            state,
            task.id,
            sup.owner,
            "done",
            output=state.blobs.put(output),
            exit_code=0,
            result=json.dumps(values) if values is not None else None,
            cpu_seconds=cpu_s,
            energy_j=energy,
            progress=progress,
        )
        shutil.rmtree(wd, ignore_errors=True)
        return TaskOutcome(rec, "done")
    reason = result.reason if result is not None else "lost"
    if latency is None and reason in ("lost", "interrupted") and task.attempts >= MAX_LOST_ATTEMPTS:
        # killed from outside (OOM killer, an operator) again and again: give up
        detail = result.detail if result is not None else "lost"
        return _fail(
            sup, task, wd, f"{detail} on {task.attempts} attempts", cpu_s=cpu_s, energy=energy
        )
    if latency is not None or reason in ("checkpointed", "stopped", "lost", "interrupted"):
        ckpt_blob = state.blobs.put_file(snap) if kind == "wasm" and snap.exists() else None
        rec = queue.release(
            state,
            task.id,
            sup.owner,
            "preempted",
            checkpoint=ckpt_blob,
            progress=progress,
            cpu_seconds=cpu_s,
            energy_j=energy,
            preemptions=1,
            exit_code=result.exit_code if result is not None else None,
        )
        return TaskOutcome(rec, "preempted", latency, sup.reasons)
    detail = f"{result.reason}: {result.detail}" if result is not None else "lost"
    return _fail(
        sup,
        task,
        wd,
        detail,
        cpu_s=cpu_s,
        energy=energy,
        output=state.blobs.put(output),
        exit_code=result.exit_code if result is not None else None,
    )


def _fail(
    sup: Supervisor,
    task: TaskRecord,
    wd: Path,
    error: str,
    *,
    cpu_s: float = 0.0,
    energy: float = 0.0,
    output: str | None = None,
    exit_code: int | None = None,
) -> TaskOutcome:
    from fogctl.harvest.cycle import TaskOutcome

    rec = queue.release(
        sup.state,
        task.id,
        sup.owner,
        "failed",
        error=error,
        output=output,
        exit_code=exit_code,
        cpu_seconds=cpu_s,
        energy_j=energy,
    )
    shutil.rmtree(wd, ignore_errors=True)
    return TaskOutcome(rec, "failed")
