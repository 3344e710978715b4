"""The pipeline the issue names, end to end on the real Docker Engine:
this node's record -> fogctl schedule -> fogctl submit --wait -."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import need

from .conftest import nodes_jsonl, spec_yaml


def docker_up() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        res = subprocess.run(["docker", "info"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0


def test_schedule_then_submit_runs_the_plan(cli: Any, fresh_state: Any, write: Any) -> None:
    need(docker_up(), "no Docker Engine reachable (.ci/services.sh start runs dockerd)")
    need(
        shutil.which("busybox") is not None or Path("/bin/busybox").exists(),
        "busybox-static is not installed",
    )
    from fogctl.node import node_record

    assert cli("jobs", "image", "busybox").code == 0  # fogctl/busybox:1, no registry
    # this machine's own record as measured (a busy shared box still takes the jobs)
    me = node_record(fresh_state)
    jobs = write(
        "two.yaml",
        spec_yaml(
            [
                {"name": "first", "cpu": 0.25, "memory": "32Mi"},
                {"name": "second", "cpu": 0.25, "memory": "32Mi", "dependsOn": ["afterok:first"]},
            ]
        ),
    )
    plan = cli(
        "schedule", "--jobs", jobs, "-", "--json", "--generations", "5", input=nodes_jsonl([me])
    )
    assert plan.code == 0, plan.stderr
    assert [r["node"] for r in plan.records()] == [me.id, me.id]
    run = cli("submit", "--wait", "-", "--json", input=plan.stdout)
    assert run.code == 0, run.stderr
    states = [(r["id"], r["state"]) for r in run.records() if r.get("kind") == "job"]
    assert ("first", "succeeded") in states and ("second", "succeeded") in states
    # the dependency held: second ran only after first succeeded
    assert states.index(("first", "succeeded")) < states.index(("second", "running"))
    assert all(r["node"] == me.id for r in run.records() if r.get("kind") == "job")
