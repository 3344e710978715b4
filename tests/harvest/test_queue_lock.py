"""Two cycles at once never run one task twice: the state-dir lock and the leases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fogctl.errors import InvalidInput, StateError
from fogctl.harvest import enqueue, queue
from fogctl.harvest.lock import CycleLock
from fogctl.state import State

from .conftest import Sensors, expected_sum, sum_job, wait_for


def test_overlapping_cycles_run_each_task_once(state: State, sensors: Sensors) -> None:
    """A timer fires while the previous cycle still works: the newcomers see the lock and
    leave; every task runs exactly once."""
    ids = enqueue(state, [sum_job("a", 0, 2_000_000_000), sum_job("b", 0, 300_000_000)])
    cmd = [sys.executable, "-m", "fogctl.cli.main", "harvest", "run", "--json"]
    env = dict(os.environ)
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    wait_for(
        lambda: queue.get_task(State(state.root), ids[0]).state == "running",
        what="the first cycle's task running",
    )
    late = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for _ in range(2)
    ]
    outs = [json.loads(p.communicate(timeout=60)[0]) for p in [first, *late]]
    assert all(p.returncode == 0 for p in [first, *late])
    assert [o["outcome"] for o in outs[1:]] == ["locked", "locked"]
    assert sorted(outs[0]["ran"]) == sorted(ids)
    for tid, (lo, hi) in zip(ids, [(0, 2_000_000_000), (0, 300_000_000)], strict=True):
        t = queue.get_task(state, tid)
        assert t.state == "done" and t.attempts == 1
        assert json.loads(t.result or "") == [expected_sum(lo, hi)]


def test_lock_is_exclusive_and_released_on_exit(tmp_path: Path) -> None:
    a, b = CycleLock(tmp_path / "l"), CycleLock(tmp_path / "l")
    assert a.acquire()
    assert not b.acquire()
    a.release()
    assert b.acquire()
    b.release()
    # a holder that dies releases the lock (flock), no stale lock file to clean up
    code = (
        "import sys,time;from fogctl.harvest.lock import CycleLock;"
        f"CycleLock(__import__('pathlib').Path({str(tmp_path / 'l')!r})).acquire();"
        "print('x',flush=True);time.sleep(30)"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert p.stdout is not None and p.stdout.readline().strip() == b"x"
    assert not a.acquire()
    p.kill()
    p.wait()
    assert a.acquire()
    a.release()


def test_leases(state: State) -> None:
    (tid,) = enqueue(state, [sum_job("a")])
    other = State(state.root)
    t = queue.claim(state, "one", lease=30, now=1e12)
    assert t is not None and t.id == tid and t.state == "running"
    assert queue.claim(other, "two", lease=30, now=1e12 + 1) is None
    with pytest.raises(StateError):
        queue.release(other, tid, "two", "done")
    # the lease expires (holder died): the task is reclaimable, the old owner is locked out
    t2 = queue.claim(other, "two", lease=30, now=1e13)
    assert t2 is not None and t2.id == tid and t2.attempts == 2
    with pytest.raises(StateError):
        queue.release(state, tid, "one", "done")
    queue.release(other, tid, "two", "done", result="[1]")
    assert queue.get_task(state, tid).state == "done"
    with pytest.raises(ValueError):
        queue.release(other, tid, "two", "running")


def test_enqueue_rejects_bad_specs_atomically(state: State, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        enqueue(state, [sum_job("ok"), {"name": "x", "wasm": str(tmp_path / "nope.wasm")}])
    assert queue.list_tasks(state) == []
    bad = tmp_path / "bad.wat"
    bad.write_text("(module (func")
    with pytest.raises(InvalidInput, match="invalid WAT"):
        enqueue(state, [{"name": "bad", "wasm": str(bad)}])
    with pytest.raises(InvalidInput):
        enqueue(state, [{"name": "c"}])


def test_enqueue_accepts_jobspecs_from_the_jobs_package(state: State, tmp_path: Path) -> None:
    from fogctl.jobs import load_specs

    from .conftest import ROOT

    specs = load_specs(ROOT / "examples" / "harvest-sum.yaml")
    (tid,) = enqueue(state, specs)
    t = queue.get_task(state, tid)
    assert t.name == "harvest-sum" and t.executor == "wasm" and t.state == "queued"
    spec = queue.task_spec(state, tid)
    assert state.blobs.path(spec["module"]).exists()


def test_reclaim_orphans_takes_only_tasks_of_dead_cycles_on_this_host(state: State) -> None:
    ids = enqueue(state, [sum_job(n) for n in ("dead", "alive", "remote", "odd")])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # reaped: its pid names no process now
    owners = {
        ids[0]: f"h1:{dead.pid}:aa",
        ids[1]: f"h1:{os.getpid()}:bb",  # alive (this very process)
        ids[2]: f"h2:{dead.pid}:cc",  # another host: only its lease can tell
        ids[3]: "not-an-owner",
    }
    for _ in owners:
        assert queue.claim(state, "placeholder", lease=300) is not None
    with state.db.transaction() as conn:
        for tid, owner in owners.items():
            conn.execute("UPDATE harvest_tasks SET lease_owner = ? WHERE id = ?", (owner, tid))
    assert queue.reclaim_orphans(state, "h1") == [ids[0]]
    states = {t.id: t.state for t in queue.list_tasks(state)}
    assert states == {ids[0]: "preempted", ids[1]: "running", ids[2]: "running", ids[3]: "running"}
    # the reclaimed task is claimable at once, and the dead owner can no longer finish it
    again = queue.claim(state, "h1:1:new", lease=300)
    assert again is not None and again.id == ids[0] and again.attempts == 2
    with pytest.raises(StateError):
        queue.release(state, ids[0], owners[ids[0]], "done")
    assert queue.reclaim_orphans(state, "h1") == []
