"""Docker tasks through the jobs docker executor: --cpus cap, signal + grace, resume."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fogctl.harvest import enqueue, queue, run_cycle
from fogctl.harvest.cycle import TaskOutcome
from fogctl.harvest.engine import set_policy
from fogctl.state import State

from ..conftest import need
from .conftest import Sensors, wait_for

IMAGE = "fogctl/busybox:1"

# Counts to N, one step per 50 ms; on SIGTERM saves the count and exits 85.
SCRIPT = (
    "n=0; [ -f /ckpt/n ] && n=$(cat /ckpt/n); "
    "trap 'echo $n > /ckpt/n.tmp && mv /ckpt/n.tmp /ckpt/n; exit 85' TERM; "
    "while [ $n -lt 60 ]; do n=$((n+1)); sleep 0.05; done; echo total=$n"
)


@pytest.fixture(scope="module")
def docker_image() -> str:
    try:
        from fogctl.jobs.executors import get_executor

        ok = get_executor("docker").available().reachable
    except Exception:
        ok = False
    need(ok, "Docker Engine is not reachable (.ci/services.sh starts dockerd)")
    if not ok:
        pytest.skip("no docker")
    import docker

    try:
        docker.from_env().images.get(IMAGE)
    except docker.errors.ImageNotFound:
        import subprocess
        import sys

        # the jobs command that builds the local test image (no registry)
        subprocess.run(
            [sys.executable, "-m", "fogctl.cli.main", "jobs", "image", "busybox", "-t", IMAGE],
            check=True,
            capture_output=True,
            timeout=120,
        )
    return IMAGE


def test_docker_task_preempted_with_signal_and_resumed(
    docker_image: str, state: State, sensors: Sensors, background: Any
) -> None:
    set_policy(state, {"allow_docker": True, "cpu_limit": "50%"})
    spec = {
        "metadata": {"name": "count"},
        "image": docker_image,
        "command": ["sh", "-c", SCRIPT],
        "checkpoint": {"path": "/ckpt", "gracePeriodSeconds": 5},
    }
    from fogctl.jobs import parse_spec

    (tid,) = enqueue(state, [parse_spec(spec)])
    outs: list[TaskOutcome] = []
    first = background(lambda: run_cycle(State(state.root), on_task=outs.append))
    ckdir = state.root / "harvest" / "tasks" / tid / "checkpoint"
    wait_for(lambda: queue.get_task(State(state.root), tid).state == "running", what="running")
    import time

    time.sleep(1.0)  # let it count a while (the point of preemption is arbitrary)
    sensors.update(temperature=95)
    cyc = first.result()
    assert cyc.preempted == (tid,)
    (out,) = outs
    assert out.preempt_latency is not None and out.preempt_latency < 5.0
    saved = int((ckdir / "n").read_text())
    assert 0 < saved < 60
    task = queue.get_task(state, tid)
    assert task.state == "preempted" and task.exit_code == 85

    sensors.update(temperature=40)
    done = run_cycle(State(state.root))
    assert done.completed == (tid,)
    task = queue.get_task(state, tid)
    assert task.state == "done" and task.attempts == 2
    assert task.output is not None
    assert state.blobs.get(task.output).strip().endswith(b"total=60")
    assert json.loads(json.dumps(task.progress))["checkpoint_files"] == ["n"]
