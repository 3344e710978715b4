"""Shared set-up for the schedule tests: generated instances, cheap to build."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fogctl.records import NodeRecord
from fogctl.schedule.instance import Instance
from fogctl.schedule.model import Job, check_problem, node_from_record
from fogctl.schedule.workload import generate_jobs, generate_nodes

GIB = 1024**3


def make(
    n_jobs: int, n_nodes: int, seed: int = 0, **kw: Any
) -> tuple[list[NodeRecord], list[Job], Instance]:
    rng = np.random.default_rng(seed)
    records = generate_nodes(n_nodes, rng)
    nodes = [node_from_record(r) for r in records]
    free = sum(n.free_cpu for n in nodes if n is not None and n.accepts_work)
    kw.setdefault("load", 0.6)
    jobs = generate_jobs(n_jobs, rng, free_cpu=free, **kw)
    problem = check_problem(jobs, [n for n in nodes if n is not None])
    return records, jobs, Instance(problem.jobs, problem.nodes)


def node(id: str, cpu: float = 4, mem_gib: float = 8, **kw: Any) -> NodeRecord:
    return NodeRecord(id=id, cpu=cpu, memory=int(mem_gib * GIB), **kw)


def job(id: str, cpu: float = 1, mem_gib: float = 1, **kw: Any) -> Job:
    return Job(id=id, cpu=cpu, memory=int(mem_gib * GIB), **kw)


def spec_yaml(jobs: list[dict[str, Any]]) -> str:
    """Job specs in the fogctl submit schema, one YAML document each."""
    docs = []
    for j in jobs:
        doc: dict[str, Any] = {
            "apiVersion": "fogctl/v1",
            "kind": "Job",
            "metadata": {"name": j["name"]},
            "image": "fogctl/busybox:1",
            "command": ["true"],
            "resources": {"requests": {"cpu": j.get("cpu", 1), "memory": j.get("memory", "1Gi")}},
        }
        for key in (
            "sla",
            "gang",
            "estimateSeconds",
            "activeDeadlineSeconds",
            "dependsOn",
            "priorityClassName",
            "nodeName",
        ):
            if key in j:
                doc[key] = j[key]
        docs.append(json.dumps(doc))
    return "\n---\n".join(docs) + "\n"


def nodes_jsonl(records: list[NodeRecord]) -> str:
    return "".join(json.dumps(r.to_dict()) + "\n" for r in records)


@pytest.fixture
def write(tmp_path: Path) -> Any:
    def w(name: str, text: str) -> str:
        p = tmp_path / name
        p.write_text(text)
        return str(p)

    return w
