"""The engine behind ``fogctl schedule``: :func:`schedule` places a batch of jobs.

    from fogctl.schedule import schedule, load_jobs, load_nodes
    plan = schedule(load_nodes("nodes.jsonl"), load_jobs("batch.yaml"))
    for rec in plan.assignments: print(rec.to_dict())

Steps: node records become :class:`~fogctl.schedule.model.Node` (records without
capacity are skipped), SLA-S jobs that fit nowhere may preempt lower-priority running
jobs, :func:`~fogctl.schedule.model.check_problem` names what cannot be placed, every
heuristic runs (they are the baselines and the seeds), then NSGA-II/III searches the
front unless a heuristic was asked for, and one plan is chosen from the front.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from fogctl.errors import InvalidInput
from fogctl.records import AssignmentRecord, NodeRecord, read_records
from fogctl.schedule.heuristics import HEURISTICS, SEEDS, run_heuristic
from fogctl.schedule.instance import OBJECTIVES, FloatArray, Instance, IntArray
from fogctl.schedule.model import (
    Job,
    Node,
    Problem,
    Running,
    check_problem,
    job_from_spec,
    node_from_record,
    reserve,
)
from fogctl.schedule.optimize import auto_settings, nondominated, optimize
from fogctl.schedule.preempt import Preemption, plan_preemptions
from fogctl.schedule.records import QuoteRecord, SolutionRecord
from fogctl.schedule.select import choose, knee_index

__all__ = [
    "ALGORITHMS",
    "Plan",
    "hypervolume_ratio",
    "load_jobs",
    "load_nodes",
    "load_running",
    "quote_jobs",
    "schedule",
]

ALGORITHMS = ("auto", "nsga2", "nsga3", *HEURISTICS, "heft")


# -- inputs --------------------------------------------------------------------------


def load_nodes(source: str | Path | IO[str]) -> list[NodeRecord]:
    """Read ``node`` records (JSON Lines; ``-`` is stdin). Errors name file:line."""
    out: list[NodeRecord] = []
    for rec in read_records(source, kinds={"node"}):
        assert isinstance(rec, NodeRecord)
        out.append(rec)
    return out


def load_jobs(source: str | Path | IO[str]) -> list[Job]:
    """Read job specs in the ``fogctl submit`` schema (YAML or JSON Lines)."""
    from fogctl.jobs import load_specs

    return [job_from_spec(s) for s in load_specs(source)]


def load_running(source: str | Path | IO[str]) -> list[Running]:
    """Running work that may be preempted: ``assignment`` records (a previous plan) or
    specs with a node (``nodeName``), in the ``fogctl submit`` schema."""
    from fogctl.jobs import load_specs

    out = []
    for spec in load_specs(source):
        if not spec.node:
            raise InvalidInput(f"running job {spec.id}: has no node (nodeName or assignment)")
        out.append(
            Running(
                id=spec.id,
                node=spec.node,
                cpu=float(spec.cpu),
                memory=int(spec.memory),
                priority=int(spec.priority),
                sla=spec.sla,
            )
        )
    return out


# -- the plan ------------------------------------------------------------------------


@dataclass
class Plan:
    """What :func:`schedule` returns: the chosen plan's ``assignments``, the front
    (``X`` one assignment per row, ``F`` its five objectives, ``front`` the reported
    values with trust as mean trust), the heuristics' points and statistics."""

    assignments: list[AssignmentRecord]
    algorithm: str
    objectives: tuple[str, ...]
    chosen: int
    front: FloatArray
    X: IntArray
    F: FloatArray
    makespans: FloatArray
    knee: int
    instance: Instance
    seed_plans: dict[str, IntArray] = field(default_factory=dict)
    heuristic_points: dict[str, list[float]] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)

    @property
    def makespan(self) -> float:
        return float(self.stats.get("makespan", 0.0))

    @property
    def solutions(self) -> list[SolutionRecord]:
        """The front as ``solution`` records (built on demand: they can be large)."""
        return _solutions(self)


def _reported(F: FloatArray) -> FloatArray:
    out = F.copy()
    out[:, 2] = 1.0 - out[:, 2]
    return out


def hypervolume_ratio(front: FloatArray, points: FloatArray) -> tuple[float, float]:
    """``(hv(front), max hv of a single point)`` in a space normalised over both sets
    (minimised columns, reference point 1.1 in every dimension)."""
    from moocore import hypervolume  # type: ignore[import-untyped]

    both = np.concatenate([front, points])
    lo = both.min(axis=0)
    span = both.max(axis=0) - lo
    span = np.where(span > 1e-12, span, 1.0)
    ref = np.full(both.shape[1], 1.1)

    def hv(F: FloatArray) -> float:
        return float(hypervolume((F - lo) / span, ref=ref)) if len(F) else 0.0

    return hv(front), max((hv(p[None, :]) for p in points), default=0.0)


def _closure(problem: Problem, ids: Mapping[str, str]) -> dict[str, str]:
    """``ids`` plus every job that depends on one of them or shares a gang with one."""
    dropped = dict(ids)
    changed = True
    while changed:
        changed = False
        gangs = {j.gang for j in problem.jobs if j.id in dropped and j.gang}
        for job in problem.jobs:
            if job.id in dropped:
                continue
            lost = [d for d in job.depends_on if d in dropped]
            if lost:
                dropped[job.id] = f"depends on unplaced job {lost[0]}"
                changed = True
            elif job.gang in gangs:
                dropped[job.id] = f"gang {job.gang} cannot be placed whole"
                changed = True
    return dropped


def _merge(a: Preemption, b: Preemption) -> Preemption:
    out = Preemption(dict(a.pins), dict(a.evicts), dict(a.extra_cpu), dict(a.extra_memory))
    out.pins.update(b.pins)
    out.evicts.update(b.evicts)
    for k, v in b.extra_cpu.items():
        out.extra_cpu[k] = out.extra_cpu.get(k, 0.0) + v
    for k, v in b.extra_memory.items():
        out.extra_memory[k] = out.extra_memory.get(k, 0.0) + v
    return out


def _run_heuristics(inst: Instance, names: Iterable[str]) -> dict[str, IntArray]:
    """Run the seeds; the smallest-first variants only where MILP-grade extremes matter
    (up to 20,000 job-node pairs), so big batches keep their time for the search."""
    big = inst.J * inst.N > 20_000
    return {h: run_heuristic(inst, h) for h in names if not (big and h.endswith("/small"))}


def _complete(inst: Instance, results: Mapping[str, IntArray]) -> dict[str, IntArray]:
    out = {}
    for h, x in results.items():
        if (x >= 0).all() and inst.violation(x[None, :])[0] <= 1e-9:
            out[h] = x
    return out


def schedule(
    nodes: Iterable[NodeRecord],
    jobs: Sequence[Job],
    *,
    algorithm: str = "auto",
    objectives: Sequence[str] = OBJECTIVES,
    prefer: Mapping[str, float] | None = None,
    pick: str = "knee",
    running: Sequence[Running] = (),
    allow_partial: bool = False,
    seed: int = 0,
    time_limit: float | None = None,
    generations: int | None = None,
    headroom: str = "soft",
) -> Plan:
    """Place ``jobs`` on ``nodes``; return the chosen plan, the front and statistics.

    Raises :class:`~fogctl.errors.InvalidInput` (exit 2) naming the jobs that cannot
    be placed, unless ``allow_partial``: then they come back with ``unplaced`` set.

    The search stops once ``time_limit`` seconds (default: by problem size) have
    passed since the call began (heuristics included; at least a quarter of it is left
    to the search), so its
    result depends on the machine's speed; with ``generations`` (and no time limit)
    it runs at most that many generations and the same ``seed`` gives the same plan.

    ``headroom`` (``soft`` or ``strict``) says whether a node's measured cpu use is
    only a penalty or also takes cores away (:mod:`fogctl.schedule.model`); the
    cores the ``running`` jobs request are set aside either way.
    """
    started = time.perf_counter()
    if algorithm not in ALGORITHMS:
        raise InvalidInput(f"--algorithm: choose from {', '.join(ALGORITHMS)}, got {algorithm!r}")
    objectives = tuple(dict.fromkeys(objectives))
    notices: list[str] = []
    usable: list[Node] = []
    skipped = []
    for rec in nodes:
        node = node_from_record(rec, headroom=headroom)
        if node is None:
            skipped.append(rec.id)
        else:
            usable.append(node)
    usable = reserve(usable, running)
    if skipped:
        notices.append(f"skipped {len(skipped)} node(s) without cpu/memory: {skipped[0]}...")
    if not jobs:
        raise InvalidInput("no jobs to place")
    pre = plan_preemptions(jobs, usable, running)
    jobs = [dataclasses.replace(j, node=pre.pins[j.id]) if j.id in pre.pins else j for j in jobs]
    problem = check_problem(jobs, usable, running=running, allow_partial=allow_partial)
    dropped = dict(problem.dropped)

    def build(p: Problem, pr: Preemption) -> Instance:
        return Instance(
            p.jobs,
            p.nodes,
            objectives,
            extra_cpu=pr.extra_cpu,
            extra_memory=pr.extra_memory,
        )

    inst = build(problem, pre)
    results = _run_heuristics(inst, SEEDS)
    complete = _complete(inst, results)
    for _ in range(3):
        if complete or inst.J == 0:
            break
        # no heuristic placed the whole batch: preempt for SLA-S jobs left out, then
        # (only with --allow-partial) leave out what still does not fit
        best = min(
            results.values(),
            key=lambda x: (
                sum(1 for j in np.nonzero(x < 0)[0] if inst.jobs[j].sla == "S"),
                int((x < 0).sum()),
            ),
        )
        left = [inst.jobs[j] for j in np.nonzero(best < 0)[0]]
        urgent = [j.id for j in left if j.sla == "S"]
        if running and urgent:
            more = plan_preemptions(
                [j for j in problem.jobs if j.id not in pre.pins], usable, running, force=urgent
            )
            if more.pins:
                pre = _merge(pre, more)
                pinned = [
                    dataclasses.replace(j, node=pre.pins[j.id]) if j.id in pre.pins else j
                    for j in problem.jobs
                ]
                problem = dataclasses.replace(problem, jobs=tuple(pinned))
                inst = build(problem, pre)
                results = _run_heuristics(inst, SEEDS)
                complete = _complete(inst, results)
                continue
        need = float(inst.cpu.sum())
        have = float(inst.free_cpu.sum())
        names = ", ".join(j.id for j in left[:8]) + (
            f" and {len(left) - 8} more" if len(left) > 8 else ""
        )
        if not allow_partial:
            raise InvalidInput(
                f"not enough free capacity for the whole batch: no plan found for {names} "
                f"(the batch needs {need:g} cpu, the nodes have {have:g} free)",
                hint="--allow-partial places the rest",
            )
        lost = _closure(problem, {j.id: "no room left on any node" for j in left})
        dropped.update(lost)
        problem = dataclasses.replace(
            problem, jobs=tuple(j for j in problem.jobs if j.id not in lost)
        )
        if not problem.jobs:
            break
        inst = build(problem, pre)
        results = _run_heuristics(inst, SEEDS)
        complete = _complete(inst, results)

    if algorithm == "auto":
        algorithm = "nsga3" if len(objectives) >= 4 else "nsga2"
    stats: dict[str, Any] = {"jobs": inst.J, "nodes": inst.N}
    heuristic_F: dict[str, FloatArray] = {}
    if complete:
        hx = np.stack(list(complete.values()))
        hF, _ = inst.evaluate(hx)
        heuristic_F = {h: hF[i] for i, h in enumerate(complete)}
    if "heft" in complete:
        stats["heft_makespan"] = round(float(_makespans(inst, complete["heft"][None, :])[0]), 3)

    if inst.J == 0:
        X = np.zeros((1, 0), dtype=np.int64)
        F = np.zeros((1, len(OBJECTIVES)))
    elif algorithm in ("nsga2", "nsga3"):
        settings = auto_settings(inst, algorithm, seed=seed)
        if generations is not None:
            settings.max_gen = generations
            settings.time_limit = float("inf")
        if time_limit is not None:
            settings.time_limit = time_limit
        # the limit covers the whole call: what the checks and heuristics took is spent
        spent = time.perf_counter() - started
        settings.time_limit = max(0.25 * settings.time_limit, settings.time_limit - spent)
        seeds = [complete[h] for h in SEEDS if h in complete]
        res = optimize(inst, seeds, settings)
        X, F = res.X, res.F
        stats.update(
            generations=res.generations,
            evaluations=res.evaluations,
            population=settings.pop_size,
            optimize_seconds=round(res.elapsed, 4),
            stopped=res.stopped,
        )
        if len(X) == 0:
            raise InvalidInput("no feasible plan found", hint="--allow-partial places the rest")
    else:
        x = results[algorithm]
        missing = {inst.jobs[j].id: "the heuristic found no room" for j in np.nonzero(x < 0)[0]}
        if missing:
            if not allow_partial:
                raise InvalidInput(
                    f"{algorithm} could not place {', '.join(list(missing)[:8])}",
                    hint="--allow-partial places the rest, or try another --algorithm",
                )
            lost = _closure(problem, missing)
            dropped.update(lost)
            keep_idx = [j for j in range(inst.J) if inst.jobs[j].id not in lost]
            problem = dataclasses.replace(problem, jobs=tuple(inst.jobs[j] for j in keep_idx))
            x = x[keep_idx]
            inst = build(problem, pre)
        X = x[None, :]
        F, _ = inst.evaluate(X)

    sel = inst.select(F)
    chosen = choose(sel, objectives, prefer=prefer, pick=pick) if len(sel) > 1 else 0
    knee = knee_index(sel, objectives) if len(sel) > 1 else 0
    makespans = _makespans(inst, X)
    stats["makespan"] = round(float(makespans[chosen]), 3)
    stats["front"] = len(X)
    if heuristic_F and algorithm in ("nsga2", "nsga3"):
        hsel = inst.select(np.stack(list(heuristic_F.values())))
        hv_front, hv_heur = hypervolume_ratio(sel, hsel)
        stats["hypervolume"] = round(hv_front, 6)
        stats["hypervolume_best_heuristic"] = round(hv_heur, 6)
        dominated = all(((sel <= h + 1e-12).all(axis=1)).any() for h in hsel)
        stats["dominates_heuristics"] = bool(dominated)
    stats["seconds"] = round(time.perf_counter() - started, 4)
    stats["algorithm"] = algorithm

    rep = _reported(F)
    assignments = _assignments(inst, X[chosen], float(F[chosen, 1]), pre, dropped, problem)
    return Plan(
        assignments=assignments,
        algorithm=algorithm,
        objectives=objectives,
        chosen=chosen,
        front=rep,
        X=X,
        F=F,
        makespans=makespans,
        knee=knee,
        instance=inst,
        seed_plans=complete,
        heuristic_points={h: _reported(f[None, :])[0].tolist() for h, f in heuristic_F.items()},
        stats=stats,
        notices=notices,
    )


def _solutions(plan: Plan) -> list[SolutionRecord]:
    inst, X, F = plan.instance, plan.X, plan.F
    labels = {
        h: set(np.nonzero((x[None, :] == X).all(axis=1))[0].tolist())
        for h, x in plan.seed_plans.items()
        if len(X)
    }
    node_ids = [n.id for n in inst.nodes]
    job_ids = [j.id for j in inst.jobs]
    out = []
    for i in range(len(X)):
        out.append(
            SolutionRecord(
                index=i,
                objectives=inst.objective_values(F[i]),
                makespan=round(float(plan.makespans[i]), 3),
                assignments={job_ids[j]: node_ids[int(X[i, j])] for j in range(inst.J)},
                algorithm=plan.algorithm,
                heuristics=tuple(h for h, rows in labels.items() if i in rows),
                knee=(i == plan.knee),
                chosen=(i == plan.chosen),
            )
        )
    return out


def _makespans(inst: Instance, X: IntArray) -> FloatArray:
    if inst.J == 0:
        return np.zeros(len(X))
    out: FloatArray = inst.timing(X).finish.max(axis=1)
    return out


def _assignments(
    inst: Instance,
    x: IntArray,
    balance: float,
    pre: Preemption,
    dropped: Mapping[str, str],
    problem: Problem,
) -> list[AssignmentRecord]:
    out: list[AssignmentRecord] = []
    if inst.J:
        t = inst.timing(x[None, :])
        start, finish = t.start[0], t.finish[0]
        order = sorted(range(inst.J), key=lambda j: (start[j], -inst.jobs[j].priority, j))
        for rank, j in enumerate(order):
            job = inst.jobs[j]
            n = int(x[j])
            out.append(
                AssignmentRecord(
                    job=job.id,
                    node=inst.nodes[n].id,
                    order=rank,
                    start=round(float(start[j]), 3),
                    finish=round(float(finish[j]), 3),
                    objectives=inst.job_objectives(j, n, balance),
                    preempts=pre.evicts.get(job.id, ()),
                    spec=dict(job.spec) if job.spec is not None else None,
                )
            )
    specs = {j.id: j.spec for j in problem.jobs}
    for k, (jid, why) in enumerate(dropped.items()):
        spec = specs.get(jid)
        out.append(
            AssignmentRecord(
                job=jid,
                node=None,
                order=len(out) + k * 0,
                unplaced=why,
                spec=dict(spec) if spec is not None else None,
            )
        )
    return out


def quote_jobs(
    nodes: Iterable[NodeRecord],
    jobs: Sequence[Job],
    *,
    every_node: bool = False,
    bid: str | None = None,
    headroom: str = "soft",
) -> list[QuoteRecord]:
    """Marketplace quotes: each job's cheapest eligible node, or every eligible node."""
    from fogctl.schedule import pricing

    usable = [n for n in (node_from_record(r, headroom=headroom) for r in nodes) if n is not None]
    usable = [n for n in usable if n.accepts_work and (bid is None or n.bid == bid)]
    if not usable:
        raise InvalidInput("no node to quote on" + (f" with bid type {bid}" if bid else ""))
    out: list[QuoteRecord] = []
    for job in jobs:
        quotes = [
            pricing.quote(job, n)
            for n in usable
            if job.cpu <= n.free_cpu + 1e-9 and job.memory <= n.free_memory + 1e-6
        ]
        if not quotes:
            raise InvalidInput(f"job {job.id}: no node has room for it")
        cheapest = min(range(len(quotes)), key=lambda i: quotes[i].price)
        picked = range(len(quotes)) if every_node else [cheapest]
        for i in sorted(picked, key=lambda i: quotes[i].price):
            q = quotes[i]
            out.append(
                QuoteRecord(
                    job=q.job,
                    node=q.node,
                    bid=q.bid,
                    tier=q.tier,
                    hours=round(q.hours, 6),
                    rate=round(q.rate, 6),
                    factors={
                        "bid": q.bid_factor,
                        "utilization": round(q.utilization_factor, 6),
                        "trust": round(q.trust_factor, 6),
                        "sla": q.sla_factor,
                    },
                    price=round(q.price, 6),
                    cheapest=(i == cheapest),
                )
            )
    return out


_ = nondominated  # re-exported for callers that rank fronts themselves
