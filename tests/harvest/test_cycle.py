"""Work cycles on real wasmtime: preemption with checkpoint, resume, no double completion.

Scenario sensor files (FOGCTL_HARVEST_SENSORS) change mid-task: battery unplugged,
temperature spike, owner returns. Each time the task must be checkpointed, stopped within
the grace period, and resumed on a later cycle to the exact result.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fogctl.harvest import queue
from fogctl.harvest.cycle import TaskOutcome, run_cycle
from fogctl.harvest.tasks import task_dir
from fogctl.jobs.executors.wasm import read_snapshot_header, snapshot_file
from fogctl.state import State

from .conftest import Sensors, expected_sum, sum_job, wait_for

CHILD = "fogctl.jobs.executors.wasm"  # the jobs WASM executor's child process

SCENARIOS = {
    "battery-unplugged": ({"battery": 30, "charging": False}, "battery"),
    "temperature-spike": ({"temperature": 88}, "temperature"),
    "owner-returns": ({"idle": 2}, "idle"),
}


def _running_with_progress(state: State, task_id: str) -> bool:
    """The child has run long enough to be mid-loop (it has used real CPU)."""
    rows = state.db.query("SELECT state FROM harvest_tasks WHERE id = ?", (task_id,))
    if not rows or rows[0]["state"] != "running":
        return False
    import psutil

    for p in psutil.Process().children(recursive=True):
        try:
            if CHILD in " ".join(p.cmdline()) and p.cpu_times().user > 0.3:
                return True
        except psutil.Error:
            continue
    return False


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_preempt_checkpoint_resume(
    scenario: str, state: State, sensors: Sensors, background: Any
) -> None:
    start, end = 5, 1_500_000_005
    (task_id,) = queue.enqueue(state, [sum_job("sum", start, end)])
    outcomes: list[TaskOutcome] = []
    first = background(lambda: run_cycle(State(state.root), on_task=outcomes.append))
    wait_for(lambda: _running_with_progress(State(state.root), task_id), what="task running")
    t_lost = time.monotonic()
    change, rule_name = SCENARIOS[scenario]
    sensors.update(**change)
    cycle = first.result()
    stopped_after = time.monotonic() - t_lost

    assert cycle.outcome == "preempted" and cycle.preempted == (task_id,)
    assert any(r.startswith(rule_name + ":") for r in cycle.reasons), cycle.reasons
    (out,) = outcomes
    # checkpointed by the jobs WASM executor (a snapshot: exit code 85), not killed,
    # well within the grace period
    assert out.task.exit_code == 85
    assert out.preempt_latency is not None and out.preempt_latency < 3.0
    assert stopped_after < 5.0
    task = queue.get_task(state, task_id)
    assert task.state == "preempted" and task.preemptions == 1 and task.checkpoint
    saved_i = task.progress["globals"]["i"]
    assert start < saved_i < end
    header = read_snapshot_header(snapshot_file(task_dir(state, task_id) / "checkpoint"))
    assert header is not None and header["globals"]["i"] == saved_i

    # still ineligible: a cycle does nothing
    again = run_cycle(State(state.root))
    assert again.outcome == "ineligible" and queue.get_task(state, task_id).attempts == 1

    # conditions return to normal: resumed from the checkpoint, exact result
    sensors.set(**json.loads(json.dumps(_eligible())))
    done = run_cycle(State(state.root))
    assert done.completed == (task_id,)
    task = queue.get_task(state, task_id)
    assert task.state == "done" and task.attempts == 2
    assert json.loads(task.result or "null") == [expected_sum(start, end)]
    assert task.energy_j > 0 and task.cpu_seconds > 0
    # a done task is never claimed again
    assert run_cycle(State(state.root)).ran == ()


def _eligible() -> dict[str, Any]:
    from .conftest import ELIGIBLE

    return dict(ELIGIBLE)


def test_failing_module_is_recorded_failed_not_retried(
    state: State, sensors: Sensors, tmp_path: Path
) -> None:
    wat = tmp_path / "trap.wat"
    wat.write_text('(module (func (export "run") unreachable))')
    (tid,) = queue.enqueue(state, [{"name": "trap", "wasm": str(wat)}])
    cyc = run_cycle(State(state.root))
    assert cyc.failed == (tid,)
    task = queue.get_task(state, tid)
    assert task.state == "failed" and "unreachable" in (task.error or "")
    assert run_cycle(State(state.root)).ran == ()


def test_memory_cap_from_policy_is_enforced(state: State, sensors: Sensors, tmp_path: Path) -> None:
    from fogctl.harvest.engine import set_policy

    set_policy(state, {"mem_idle": "1%"})
    wat = tmp_path / "grow.wat"
    # asks for 16 GiB of linear memory growth (1% of RAM is far less on any machine)
    wat.write_text(
        '(module (memory (export "memory") 1 65536)'
        ' (func (export "run") (result i32) (memory.grow (i32.const 65535))))'
    )
    (tid,) = queue.enqueue(state, [{"name": "grow", "wasm": str(wat)}])
    run_cycle(State(state.root))
    task = queue.get_task(state, tid)
    assert task.state == "done" and json.loads(task.result or "[]") == [-1]


@pytest.mark.parametrize("method", ["auto", "throttle"])
def test_cpu_cap_holds_the_task_near_its_share(
    method: str, state: State, sensors: Sensors, background: Any, monkeypatch: Any
) -> None:
    """A CPU-bound WASM task capped at 40% never gets more than its share (the accuracy
    figure over 10 s is in tests/bench/bench_harvest.py)."""
    import psutil

    from fogctl.harvest.engine import set_policy
    from fogctl.jobs.executors.wasm import CpuCap

    # auto: a cgroup quota where this process may create one, else throttling
    kernel = method == "auto" and CpuCap.cgroup_method() is not None
    monkeypatch.setenv("FOGCTL_WASM_CAP_METHOD", "throttle" if method == "throttle" else "")
    set_policy(state, {"cpu_limit": "40%"})
    (tid,) = queue.enqueue(state, [sum_job("capped", 0, 10**12)])
    cyc = background(lambda: run_cycle(State(state.root)))
    wait_for(lambda: _running_with_progress(State(state.root), tid) or _child() is not None)
    child = _child()
    assert child is not None
    time.sleep(0.3)
    c0, t0 = sum(child.cpu_times()[:2]), time.monotonic()
    time.sleep(2.0)
    c1, t1 = sum(child.cpu_times()[:2]), time.monotonic()
    sensors.update(battery=10)
    cyc.result()
    share = (c1 - c0) / (t1 - t0)
    # cgroup: the kernel's quota; throttle: plus at most 0.5 s x 40% of carried-over credit
    bound = 0.48 if kernel else 0.52
    assert share <= bound, f"{method}: {share:.2f} of a CPU with a 40% cap"
    assert share > 0.05
    del psutil


def _child() -> Any:
    import psutil

    for p in psutil.Process().children(recursive=True):
        try:
            if CHILD in " ".join(p.cmdline()):
                return p
        except psutil.Error:
            continue
    return None


def test_loop_service_stops_cleanly_on_sigterm(state: State, sensors: Sensors) -> None:
    """``harvest run --loop`` (the systemd service): SIGTERM checkpoints the running task
    and exits 0 within the grace period; the task resumes later."""
    import os
    import signal

    (tid,) = queue.enqueue(state, [sum_job("loop", 0, 10**12)])
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fogctl.cli.main",
            "harvest",
            "run",
            "--loop",
            "--interval",
            "1",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )
    try:
        wait_for(lambda: _running_with_progress(State(state.root), tid), what="task running")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert took < 3.0 + 1.5
    rec = json.loads(out.splitlines()[0])
    assert rec["kind"] == "harvest-cycle" and rec["preempted"] == [tid]
    task = queue.get_task(state, tid)
    assert task.state == "preempted" and task.exit_code == 85 and task.checkpoint


def test_runner_checkpoints_when_the_cycle_dies(state: State, sensors: Sensors) -> None:
    """SIGKILL the harvest process mid-task: its WASM child gets SIGTERM (PDEATHSIG),
    checkpoints, and the very next timer cycle reclaims the task (its lease has not
    expired, but its owner is dead) and finishes it from the checkpoint."""
    import os
    import signal

    import psutil

    (tid,) = queue.enqueue(state, [sum_job("orphan", 0, 1_500_000_000)])
    proc = subprocess.Popen(
        [sys.executable, "-m", "fogctl.cli.main", "harvest", "run", "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ),
    )
    wait_for(lambda: _running_with_progress(State(state.root), tid), what="task running")
    kids = [p for p in psutil.Process(proc.pid).children() if CHILD in " ".join(p.cmdline())]
    assert len(kids) == 1
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kids[0].wait(timeout=10)  # gone: it did not outlive the cycle
    hdr = read_snapshot_header(snapshot_file(task_dir(state, tid) / "checkpoint"))
    assert hdr is not None and hdr["globals"]["i"] > 0
    # the dead cycle's lease still runs (no waiting for it to expire), and its lock
    # file is still there: what the timer runs next must recover all the same
    (row,) = state.db.query("SELECT state, lease_until FROM harvest_tasks WHERE id = ?", (tid,))
    assert row["state"] == "running" and row["lease_until"] > time.time() + 5
    assert (state.root / "harvest" / "cycle.lock").read_text().strip() == str(proc.pid)
    res = subprocess.run(
        [sys.executable, "-m", "fogctl.cli.main", "harvest", "run", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["completed"] == [tid]
    task = queue.get_task(state, tid)
    assert task.attempts == 2 and json.loads(task.result or "") == [expected_sum(0, 1_500_000_000)]
    assert task.state == "done"


def test_ctrl_c_checkpoints_and_exits_130(state: State, sensors: Sensors) -> None:
    import os
    import signal

    (tid,) = queue.enqueue(state, [sum_job("int", 0, 10**12)])
    proc = subprocess.Popen(
        [sys.executable, "-m", "fogctl.cli.main", "harvest", "run", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )
    try:
        wait_for(lambda: _running_with_progress(State(state.root), tid), what="task running")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert json.loads(out)["preempted"] == [tid]
    task = queue.get_task(state, tid)
    assert task.state == "preempted" and task.exit_code == 85


def test_sensor_file_vanishing_mid_task_preempts_safely(
    state: State, sensors: Sensors, background: Any
) -> None:
    (tid,) = queue.enqueue(state, [sum_job("gone", 0, 10**12)])
    cyc = background(lambda: run_cycle(State(state.root)))
    wait_for(lambda: _running_with_progress(State(state.root), tid), what="task running")
    sensors.path.unlink()
    rec = cyc.result()
    assert rec.preempted == (tid,) and rec.reasons[0].startswith("sensors:")
    assert queue.get_task(state, tid).exit_code == 85


COPY_WAT = """
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read"
    (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "in.txt")
  (data (i32.const 16) "out.txt")
  (func (export "_start")
    ;; open /work/in.txt (preopen fd 3) for reading, read up to 256 bytes at 1024
    (drop (call $open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 6)
      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 64)))
    (i32.store (i32.const 96) (i32.const 1024))
    (i32.store (i32.const 100) (i32.const 256))
    (drop (call $read (i32.load (i32.const 64)) (i32.const 96) (i32.const 1) (i32.const 104)))
    ;; iovec of what was read, written to stdout and to a new /work/out.txt
    (i32.store (i32.const 100) (i32.load (i32.const 104)))
    (drop (call $write (i32.const 1) (i32.const 96) (i32.const 1) (i32.const 108)))
    (drop (call $open (i32.const 3) (i32.const 0) (i32.const 16) (i32.const 7)
      (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 68)))
    (drop (call $write (i32.load (i32.const 68)) (i32.const 96) (i32.const 1) (i32.const 108)))))
"""


def test_wasi_job_sees_work_dir_inputs_and_outputs(
    state: State, sensors: Sensors, tmp_path: Path
) -> None:
    """A fogctl-job(5) WASM job gets the jobs executor's sandbox view: its inputs in
    /work, its outputs collected from /work into the blob store."""
    from fogctl.jobs import parse_spec

    (tmp_path / "copy.wat").write_text(COPY_WAT)
    (tmp_path / "data.txt").write_text("hello from the owner's idle CPU\n")
    spec = parse_spec(
        {
            "metadata": {"name": "copy"},
            "wasm": str(tmp_path / "copy.wat"),
            "inputs": [{"source": str(tmp_path / "data.txt"), "path": "in.txt"}],
            "outputs": ["out.txt"],
        }
    )
    (tid,) = queue.enqueue(state, [spec])
    (tmp_path / "data.txt").unlink()  # the queue holds its own copy
    assert run_cycle(State(state.root)).completed == (tid,)
    task = queue.get_task(state, tid)
    assert task.output is not None
    assert state.blobs.get(task.output) == b"hello from the owner's idle CPU\n"
    out = task.progress["outputs"]["out.txt"]
    assert state.blobs.get(out) == b"hello from the owner's idle CPU\n"


def test_status_counts_a_running_task_as_our_own_load(
    state: State, sensors: Sensors, background: Any
) -> None:
    from fogctl.harvest.engine import running_task_cpu

    assert running_task_cpu(state) == 0.0
    (tid,) = queue.enqueue(state, [sum_job("own", 0, 10**12)])
    cyc = background(lambda: run_cycle(State(state.root)))
    wait_for(lambda: _running_with_progress(State(state.root), tid), what="task running")
    assert running_task_cpu(State(state.root)) > 0.3
    sensors.update(idle=1)
    cyc.result()


def test_resume_from_the_blob_store_when_the_task_dir_is_gone(
    state: State, sensors: Sensors, background: Any
) -> None:
    """The snapshot of a preempted task is also in the blob store: a lost task dir (a
    cleaned cache, a restored backup) still resumes to the exact result."""
    import shutil

    start, end = 3, 1_200_000_003
    (tid,) = queue.enqueue(state, [sum_job("lost", start, end)])
    first = background(lambda: run_cycle(State(state.root)))
    wait_for(lambda: _running_with_progress(State(state.root), tid), what="task running")
    sensors.update(battery=10)
    assert first.result().preempted == (tid,)
    task = queue.get_task(state, tid)
    assert task.checkpoint and start < task.progress["globals"]["i"] < end
    saved_i = task.progress["globals"]["i"]
    shutil.rmtree(task_dir(state, tid))
    # resumed from the blob: its next snapshot is the 2nd, and further along
    sensors.set(**_eligible())
    second = background(lambda: run_cycle(State(state.root)))
    wait_for(lambda: _running_with_progress(State(state.root), tid), what="task running")
    sensors.update(battery=10)
    assert second.result().preempted == (tid,)
    task = queue.get_task(state, tid)
    assert task.progress["checkpoints"] == 2 and task.progress["globals"]["i"] > saved_i
    shutil.rmtree(task_dir(state, tid))
    sensors.set(**_eligible())
    assert run_cycle(State(state.root)).completed == (tid,)
    task = queue.get_task(state, tid)
    assert task.attempts == 3 and json.loads(task.result or "") == [expected_sum(start, end)]
