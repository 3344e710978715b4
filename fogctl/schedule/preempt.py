"""Preemption: room for an SLA-S job that fits nowhere, made by evicting running work.

Rules, in order:

1. only SLA class S jobs preempt, and only jobs with a lower ``priority`` that are
   not class S themselves;
2. a node qualifies if, after evicting some of its eligible victims, the job fits its
   free capacity and (alone) meets its deadline;
3. victims on a node are taken lowest priority first, then largest first, until the
   job fits; among qualifying nodes the one needing the fewest evictions wins, then the
   lowest total victim priority, then the lowest latency;
4. the job is pinned to that node and the evicted jobs are named in its ``preempts``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fogctl.schedule.model import Job, Node, Running

__all__ = ["Preemption", "plan_preemptions"]

EPS = 1e-9


@dataclass
class Preemption:
    pins: dict[str, str] = field(default_factory=dict)  # job -> node
    evicts: dict[str, tuple[str, ...]] = field(default_factory=dict)  # job -> victims
    extra_cpu: dict[str, float] = field(default_factory=dict)  # node -> freed cores
    extra_memory: dict[str, float] = field(default_factory=dict)  # node -> freed bytes


def _fits_alone(job: Job, node: Node, cpu: float, mem: float) -> bool:
    if job.cpu > cpu + EPS or job.memory > mem + 1e-6:
        return False
    deadline = job.hard_deadline
    return deadline is None or (
        node.latency_ms / 1000 + job.estimate_seconds * node.slowdown <= deadline + EPS
    )


def plan_preemptions(
    jobs: Sequence[Job],
    nodes: Sequence[Node],
    running: Sequence[Running],
    *,
    force: Sequence[str] = (),
) -> Preemption:
    """Decide evictions for SLA-S jobs that fit no node's free capacity (or are in
    ``force``: the batch as a whole left them out)."""
    out = Preemption()
    if not running:
        return out
    free_cpu = {n.id: n.free_cpu for n in nodes if n.accepts_work}
    free_mem = {n.id: n.free_memory for n in nodes if n.accepts_work}
    by_node: dict[str, list[Running]] = {}
    for r in running:
        by_node.setdefault(r.node, []).append(r)
    gone: set[str] = set()
    urgent = sorted((j for j in jobs if j.sla == "S" and j.node is None), key=lambda j: -j.priority)
    for job in urgent:
        if job.id not in force and any(
            _fits_alone(job, n, free_cpu[n.id], free_mem[n.id]) for n in nodes if n.id in free_cpu
        ):
            continue
        best: tuple[tuple[float, float, float], Node, list[Running]] | None = None
        for node in nodes:
            if node.id not in free_cpu:
                continue
            victims = sorted(
                (
                    r
                    for r in by_node.get(node.id, [])
                    if r.id not in gone and r.priority < job.priority and r.sla != "S"
                ),
                key=lambda r: (r.priority, -r.cpu, r.id),
            )
            cpu, mem = free_cpu[node.id], free_mem[node.id]
            chosen: list[Running] = []
            for v in victims:
                if _fits_alone(job, node, cpu, mem):
                    break
                chosen.append(v)
                cpu += v.cpu
                mem += v.memory
            if not chosen or not _fits_alone(job, node, cpu, mem):
                continue
            key = (float(len(chosen)), float(sum(v.priority for v in chosen)), node.latency_ms)
            if best is None or key < best[0]:
                best = (key, node, chosen)
        if best is None:
            continue
        _, node, chosen = best
        for v in chosen:
            gone.add(v.id)
            free_cpu[node.id] += v.cpu
            free_mem[node.id] += v.memory
            out.extra_cpu[node.id] = out.extra_cpu.get(node.id, 0.0) + v.cpu
            out.extra_memory[node.id] = out.extra_memory.get(node.id, 0.0) + v.memory
        free_cpu[node.id] -= job.cpu
        free_mem[node.id] -= job.memory
        out.pins[job.id] = node.id
        out.evicts[job.id] = tuple(v.id for v in chosen)
    return out
