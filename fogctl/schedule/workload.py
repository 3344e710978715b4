"""Generated nodes and jobs: for ``fogctl schedule sim``, the benchmarks and the tests.

Deterministic for a given ``rng``. Nodes mix small edge boxes and bigger servers over
a few regions, bid types and tiers; jobs mix SLA classes (10% S, 30% A, 60% B) with
lognormal run times. ``load`` is the batch's cpu demand as a share of the nodes' free
cpu.
"""

from __future__ import annotations

import numpy as np

from fogctl.records import NodeRecord
from fogctl.schedule.model import Job

__all__ = ["generate_jobs", "generate_nodes"]

GIB = 1024**3
REGIONS = ("eu-west", "eu-central", "us-east", "ap-south")


def generate_nodes(n: int, rng: np.random.Generator, *, prefix: str = "node") -> list[NodeRecord]:
    """``n`` node records with capacity, utilisation, latency, trust and prices."""
    out = []
    for i in range(n):
        big = rng.random() < 0.3
        cpu = float(rng.choice([16, 32, 64])) if big else float(rng.choice([2, 4, 8]))
        tier = str(rng.choice(["basic", "standard", "premium"], p=[0.4, 0.4, 0.2]))
        region = REGIONS[int(rng.integers(len(REGIONS)))]
        out.append(
            NodeRecord(
                id=f"{prefix}-{i:03d}",
                cpu=cpu,
                memory=int(cpu * 4 * GIB),
                cpu_util=round(float(rng.uniform(0.0, 0.5)), 3),
                memory_util=round(float(rng.uniform(0.0, 0.5)), 3),
                latency_ms=round(float(rng.uniform(2, 40) if big else rng.uniform(5, 150)), 1),
                trust=round(float(rng.beta(5, 2)), 3),
                cost=round(cpu * float(rng.uniform(0.005, 0.03)), 4),
                price=round(cpu * float(rng.uniform(0.02, 0.08)), 4),
                bid=str(rng.choice(["spot", "on-demand", "reserved"])),
                tier=tier,
                region=region,
                operator=f"op-{int(rng.integers(max(2, n // 4)))}",
                battery=None if big else round(float(rng.uniform(0.3, 1.0)), 2),
                temperature_c=round(float(rng.uniform(35, 70)), 1),
            )
        )
    return out


def generate_jobs(
    n: int,
    rng: np.random.Generator,
    *,
    free_cpu: float | None = None,
    load: float = 0.6,
    dag: float = 0.0,
    gangs: int = 0,
    deadline_factor: float = 4.0,
    prefix: str = "job",
    median_seconds: float = 120.0,
    sigma: float = 0.8,
    max_seconds: float = 3600.0,
) -> list[Job]:
    """``n`` jobs; with ``free_cpu`` their cpu sums to ``load * free_cpu``.

    ``dag`` is the share of jobs that depend on one to three earlier jobs; ``gangs``
    groups of two to four jobs must run together. Run times are lognormal
    (``median_seconds``, ``sigma``) up to ``max_seconds``. SLA-S jobs get a deadline of
    ``deadline_factor`` times their chain of estimates.
    """
    raw = rng.choice([0.25, 0.5, 1.0, 2.0, 4.0], size=n, p=[0.2, 0.3, 0.3, 0.15, 0.05])
    if free_cpu is not None and n:
        raw = raw * (load * free_cpu / raw.sum())
        raw = np.clip(raw, 0.05, None)
    jobs = []
    gang_of: dict[int, str] = {}
    if gangs:
        starts = rng.choice(max(n - 4, 1), size=min(gangs, max(n // 4, 1)), replace=False)
        for g, s in enumerate(sorted(int(v) for v in starts)):
            for k in range(int(rng.integers(2, 5))):
                if s + k < n and s + k not in gang_of:
                    gang_of[s + k] = f"gang-{g}"
    path: dict[str, float] = {}  # longest chain of estimates ending at each job
    for i in range(n):
        sla = str(rng.choice(["S", "A", "B"], p=[0.1, 0.3, 0.6]))
        est = float(np.clip(rng.lognormal(np.log(median_seconds), sigma), 5, max_seconds))
        deps: tuple[str, ...] = ()
        if dag and i > 0 and rng.random() < dag and i not in gang_of:
            k = int(rng.integers(1, min(3, i) + 1))
            parents = rng.choice(i, size=k, replace=False)
            deps = tuple(f"{prefix}-{int(p):04d}" for p in sorted(parents) if int(p) not in gang_of)
        cpu = round(float(raw[i]), 3)
        est = round(est, 1)
        chain = est + max((path[d] for d in deps), default=0.0)
        path[f"{prefix}-{i:04d}"] = chain
        jobs.append(
            Job(
                id=f"{prefix}-{i:04d}",
                cpu=cpu,
                memory=int(cpu * float(rng.uniform(0.5, 3.0)) * GIB),
                priority=int(rng.integers(0, 10)),
                sla=sla,
                deadline_seconds=round(chain * deadline_factor + 5, 1) if sla == "S" else None,
                depends_on=deps,
                gang=gang_of.get(i),
                estimate_seconds=est,
            )
        )
    return jobs
