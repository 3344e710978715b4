"""The pipeline the issue names, end to end on the real Docker Engine:
this node's record -> fogctl schedule -> fogctl submit --wait -."""

from __future__ import annotations

import json
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
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


FOGCTL = [sys.executable, "-m", "fogctl.cli.main"]


class DhtNode:
    """A real ``fogctl dht serve`` on loopback, in its own state directory."""

    def __init__(self, home: Path, *args: str) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FOGCTL_")}
        self.env["FOGCTL_HOME"] = str(home)
        subprocess.run([*FOGCTL, "init", "-q"], env=self.env, check=True, capture_output=True)
        self.proc = subprocess.Popen(
            [*FOGCTL, "dht", "serve", "--host", "127.0.0.1", "--port", "0", "--json", *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        assert ready, "dht serve printed nothing within 30 s"
        self.record = json.loads(self.proc.stdout.readline())
        self.address = str(self.record["address"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)


def test_dht_providers_to_schedule_to_submit(tmp_path: Path) -> None:
    """The issue's pipeline, as a user types it, with real components: two DHT nodes
    on loopback announce themselves with their measured capacity (this shared box
    is often 100% busy), `dht providers --json | schedule --jobs examples/batch.yaml -`
    places the example batch on them, `submit --wait -` runs it on Docker."""
    need(docker_up(), "no Docker Engine reachable (.ci/services.sh start runs dockerd)")
    need(
        shutil.which("busybox") is not None or Path("/bin/busybox").exists(),
        "busybox-static is not installed",
    )
    a = DhtNode(tmp_path / "a")
    b = None
    try:
        b = DhtNode(tmp_path / "b", "--bootstrap", a.address)
        env = a.env
        run = subprocess.run(
            [*FOGCTL, "jobs", "image", "busybox"], env=env, capture_output=True, timeout=120
        )
        assert run.returncode == 0, run.stderr
        subprocess.run([*FOGCTL, "dht", "announce"], env=env, capture_output=True, timeout=60)
        batch = str(Path(__file__).resolve().parents[2] / "examples" / "batch.yaml")
        pipeline = (
            f"{shlex.join(FOGCTL)} dht providers --json"
            f" | {shlex.join(FOGCTL)} schedule --jobs {shlex.quote(batch)} - --generations 5"
            f" | {shlex.join(FOGCTL)} submit --wait - --json"
        )
        res = subprocess.run(
            ["bash", "-o", "pipefail", "-c", pipeline],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert res.returncode == 0, res.stderr
        jobs = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
        final = {r["id"]: r for r in jobs if r.get("kind") == "job"}
        assert set(final) == {
            "ingest", "transform", "report", "train-0", "train-1",
            "thumbnails", "backup", "alerts",
        }  # fmt: skip
        assert all(r["state"] == "succeeded" for r in final.values()), final
        providers = {a.record["id"], b.record["id"]}
        assert {r["node"] for r in final.values()} <= providers
        # the gang ran on nodes of one region (both have none: the same), together
        assert "fogctl: placed 8 job(s) on " in res.stderr and "of 2 usable node(s)" in res.stderr
    finally:
        for node in (a, b):
            if node is not None:
                node.stop()
