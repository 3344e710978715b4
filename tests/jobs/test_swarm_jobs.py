"""The swarm executor on a one-node swarm (docker swarm init on 127.0.0.1)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fogctl.state import State

pytestmark = pytest.mark.docker


def test_swarm_service_runs_to_completion(cli, busybox_image: str, swarm: Any) -> None:
    specs = [
        {
            "metadata": {"name": "sw-ok"},
            "image": busybox_image,
            "executor": "swarm",
            "command": [
                "sh",
                "-c",
                "echo from-swarm $(id -u); echo routes $(ip route | grep -c default); "
                "echo data > /work/r.txt; echo pids max $(cat /sys/fs/cgroup/pids/pids.max "
                "2>/dev/null || cat /sys/fs/cgroup/pids.max)",
            ],
            "outputs": ["r.txt"],
            "resources": {
                "requests": {"cpu": 0.1, "memory": "16Mi"},
                "limits": {"cpu": 0.5, "memory": "32Mi", "pids": 64},
            },
        },
        {
            "metadata": {"name": "sw-bad"},
            "image": busybox_image,
            "executor": "swarm",
            "command": ["sh", "-c", "exit 5"],
        },
    ]
    res = cli("submit", "-", "--wait", "--json", input="".join(json.dumps(s) + "\n" for s in specs))
    final = {r["id"]: r for r in res.records()}
    assert res.code == 1
    assert final["sw-ok"]["state"] == "succeeded", final["sw-ok"]
    assert State().blobs.get(final["sw-ok"]["outputs"]["r.txt"]) == b"data\n"
    log = cli("jobs", "logs", "sw-ok").stdout
    assert "from-swarm 65534" in log
    assert "routes 0" in log  # network: none -> an internal network with no way out
    assert (final["sw-bad"]["reason"], final["sw-bad"]["exit_code"]) == ("exit-code", 5)
    # The pids limit reaches the task's container (API 1.41).
    assert "pids max 64" in log
    # Services are removed once their end is recorded.
    assert not swarm.services.list(filters={"label": "io.fogctl.job=sw-ok"})


def test_assignment_node_becomes_a_placement_constraint(
    cli, busybox_image: str, swarm: Any
) -> None:
    node = swarm.nodes.list()[0]
    spec_ = node.attrs["Spec"]
    spec_.setdefault("Labels", {})["io.fogctl.node"] = "fog-node-a"
    node.update(spec_)
    try:
        lines = [
            {
                "kind": "assignment",
                "job": job,
                "node": target,
                "spec": {
                    "metadata": {"name": job},
                    "image": busybox_image,
                    "executor": "swarm",
                    "command": ["true"],
                    "activeDeadlineSeconds": 3,
                },
            }
            for job, target in (("here", "fog-node-a"), ("nowhere", "fog-node-b"))
        ]
        res = cli(
            "submit", "-", "--wait", "--json", input="".join(json.dumps(x) + "\n" for x in lines)
        )
    finally:
        node.reload()
        spec_ = node.attrs["Spec"]
        spec_.get("Labels", {}).pop("io.fogctl.node", None)
        node.update(spec_)
    final = {r["id"]: r for r in res.records()}
    assert final["here"]["state"] == "succeeded" and final["here"]["node"] == "fog-node-a"
    # No swarm node carries fog-node-b: the task never starts and the deadline ends it.
    assert (final["nowhere"]["state"], final["nowhere"]["reason"]) == (
        "deadline-exceeded",
        "deadline",
    )
