"""A checked problem as arrays, and the vectorised objectives, timing and constraints.

An assignment is an integer vector ``x`` (job index -> node index); a population is a
``(P, J)`` matrix. Everything here is evaluated for a whole population at once.

Objectives (all minimised; see :data:`OBJECTIVES`):

``latency``  mean dispatch latency (ms) from the submitter to the jobs' nodes
``balance``  variance of node utilisation after placement (cpu and memory, averaged)
``trust``    1 - mean trust of the jobs' nodes (reported as the mean trust)
``cost``     operators' running cost of the plan
``price``    marketplace price of the plan (:mod:`fogctl.schedule.pricing`)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fogctl.errors import InvalidInput
from fogctl.schedule import pricing
from fogctl.schedule.model import Job, Node, Problem

__all__ = ["OBJECTIVES", "Instance", "Timing"]

OBJECTIVES = ("latency", "balance", "trust", "cost", "price")

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


@dataclass
class Timing:
    """Predicted start and finish (seconds from plan time) for each job of each row."""

    start: FloatArray
    finish: FloatArray


@dataclass
class Instance:
    """Arrays for one problem; built once per plan, shared by every algorithm."""

    jobs: tuple[Job, ...]
    nodes: tuple[Node, ...]
    objectives: tuple[str, ...] = OBJECTIVES
    extra_cpu: Mapping[str, float] = field(default_factory=dict)
    extra_memory: Mapping[str, float] = field(default_factory=dict)
    pins: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        jobs, nodes = self.jobs, self.nodes
        for name in self.objectives:
            if name not in OBJECTIVES:
                raise InvalidInput(
                    f"unknown objective {name!r}: choose from {', '.join(OBJECTIVES)}"
                )
        if not self.objectives:
            raise InvalidInput("at least one objective is needed")
        self.J = len(jobs)
        self.N = len(nodes)
        self.node_index = {n.id: i for i, n in enumerate(nodes)}
        self.job_index = {j.id: i for i, j in enumerate(jobs)}
        self.obj_cols = [OBJECTIVES.index(o) for o in self.objectives]
        self.cpu = np.array([j.cpu for j in jobs], dtype=float)
        self.mem = np.array([float(j.memory) for j in jobs], dtype=float)
        self.node_cpu = np.array([max(n.cpu, 1e-9) for n in nodes], dtype=float)
        self.node_mem = np.array([max(float(n.memory), 1.0) for n in nodes], dtype=float)
        self.free_cpu = np.array(
            [n.free_cpu + self.extra_cpu.get(n.id, 0.0) for n in nodes], dtype=float
        )
        self.free_mem = np.array(
            [n.free_memory + self.extra_memory.get(n.id, 0.0) for n in nodes], dtype=float
        )
        # in use before the plan (what preemption frees no longer counts)
        self.used_cpu = np.array(
            [n.busy_cpu - self.extra_cpu.get(n.id, 0.0) for n in nodes], dtype=float
        )
        self.used_mem = self.node_mem - self.free_mem
        self.lat = np.array([n.latency_ms for n in nodes], dtype=float)
        self.trust = np.array([n.trust for n in nodes], dtype=float)
        self.slow = np.array([n.slowdown for n in nodes], dtype=float)
        regions = sorted({n.region for n in nodes})
        self.region = np.array([regions.index(n.region) for n in nodes], dtype=np.int64)
        self.n_regions = len(regions)
        est = np.array([j.estimate_seconds for j in jobs], dtype=float)
        self.dur = est[:, None] * self.slow[None, :]
        self.cost, self.price = pricing.matrices(jobs, nodes)
        self.deadline = np.array(
            [math.inf if j.hard_deadline is None else j.hard_deadline for j in jobs], dtype=float
        )
        self.has_deadlines = bool(np.isfinite(self.deadline).any())
        self.pinned = np.full(self.J, -1, dtype=np.int64)
        for j, job in enumerate(jobs):
            pin = self.pins.get(job.id, job.node)
            if pin is not None:
                if pin not in self.node_index:
                    raise InvalidInput(f"job {job.id}: pinned to unknown node {pin}")
                self.pinned[j] = self.node_index[pin]
        self.deps: list[IntArray] = [
            np.array([self.job_index[d] for d in j.depends_on], dtype=np.int64) for j in jobs
        ]
        self.has_deps = any(len(d) for d in self.deps)
        gangs: dict[str, list[int]] = {}
        for j, job in enumerate(jobs):
            if job.gang:
                gangs.setdefault(job.gang, []).append(j)
        self.gang_names = list(gangs)
        self.gangs: list[IntArray] = [np.array(v, dtype=np.int64) for v in gangs.values()]
        self.gang_of = np.full(self.J, -1, dtype=np.int64)
        for g, members in enumerate(self.gangs):
            self.gang_of[members] = g
        self._units()
        self._levels()
        self.topo_pos = np.zeros(self.J, dtype=np.int64)
        pos = 0
        for u in self.unit_order:
            for m in self.units[u]:
                self.topo_pos[m] = pos
                pos += 1
        # statically eligible nodes: fits the free capacity and (alone) its deadline
        fit = (self.cpu[:, None] <= self.free_cpu[None, :] + 1e-9) & (
            self.mem[:, None] <= self.free_mem[None, :] + 1e-6
        )
        alone = self.lat[None, :] / 1000.0 + self.dur
        fit &= alone <= self.deadline[:, None] + 1e-9
        pinned = self.pinned >= 0
        if pinned.any():
            fit[pinned, :] = False
            fit[np.nonzero(pinned)[0], self.pinned[pinned]] = True
        self.elig_mask = fit
        self.elig: list[IntArray] = [np.nonzero(fit[j])[0] for j in range(self.J)]
        self.elig_count = fit.sum(axis=1).astype(np.int64)
        # each row: the job's eligible nodes first (for vectorised random choices)
        self.elig_pad = np.argsort(~fit, axis=1, kind="stable").astype(np.int64)
        bad = [jobs[j].id for j in range(self.J) if len(self.elig[j]) == 0]
        if bad:
            raise InvalidInput(f"no node can take job(s) {', '.join(bad[:8])}")
        # transfer time between nodes (one round trip), seconds
        self.transfer = (self.lat[:, None] + self.lat[None, :]) / 1000.0
        np.fill_diagonal(self.transfer, 0.0)
        self.needs_timing = self.has_deps or self.has_deadlines or bool(self.gangs)

    def _units(self) -> None:
        """Scheduling units (a gang or a single job) in dependency order."""
        unit_of = np.arange(self.J, dtype=np.int64)
        units: list[list[int]] = []
        seen_gang: dict[int, int] = {}
        for j in range(self.J):
            g = int(self.gang_of[j])
            if g >= 0:
                if g not in seen_gang:
                    seen_gang[g] = len(units)
                    units.append([int(m) for m in self.gangs[g]])
                unit_of[j] = seen_gang[g]
            else:
                unit_of[j] = len(units)
                units.append([j])
        deps: list[set[int]] = []
        for u, members in enumerate(units):
            ds = {int(unit_of[d]) for m in members for d in self.deps[m]}
            if u in ds:
                name = self.gang_names[int(self.gang_of[members[0]])]
                raise InvalidInput(f"gang {name}: a member depends on another member")
            deps.append(ds)
        children: list[list[int]] = [[] for _ in units]
        indeg = [len(d) for d in deps]
        for u, ds in enumerate(deps):
            for d in ds:
                children[d].append(u)
        ready = [u for u in range(len(units)) if indeg[u] == 0]
        order: list[int] = []
        while ready:
            u = ready.pop(0)
            order.append(u)
            for c in children[u]:
                indeg[c] -= 1
                if indeg[c] == 0:
                    ready.append(c)
        if len(order) < len(units):
            stuck = [self.jobs[units[u][0]].id for u in range(len(units)) if indeg[u] > 0]
            raise InvalidInput(f"gangs and dependencies form a cycle through {', '.join(stuck)}")
        self.units = [np.array(m, dtype=np.int64) for m in units]
        self.unit_of = unit_of
        self.unit_deps = [sorted(d) for d in deps]
        self.unit_children = children
        self.unit_order = order

    # -- evaluation ------------------------------------------------------------------

    def random_rows(self, rng: np.random.Generator, n: int) -> IntArray:
        """``n`` random assignments, each job on a random eligible node."""
        pick = (rng.random((n, self.J)) * self.elig_count[None, :]).astype(np.int64)
        rows: IntArray = self.elig_pad[np.arange(self.J)[None, :], pick]
        return rows

    def loads(self, X: IntArray) -> tuple[FloatArray, FloatArray]:
        """Cpu and memory placed on each node, ``(P, N)`` each."""
        P = X.shape[0]
        flat = (X + (np.arange(P, dtype=np.int64) * self.N)[:, None]).ravel()
        size = P * self.N
        cpu = np.bincount(flat, weights=np.tile(self.cpu, P), minlength=size).astype(float)
        mem = np.bincount(flat, weights=np.tile(self.mem, P), minlength=size).astype(float)
        return cpu.reshape(P, self.N), mem.reshape(P, self.N)

    def _levels(self) -> None:
        """Group the units with dependencies (or several members) by DAG level, with
        the index arrays the vectorised :meth:`timing` needs for each level."""
        level = np.zeros(len(self.units), dtype=np.int64)
        for u in self.unit_order:
            level[u] = 1 + max((int(level[d]) for d in self.unit_deps[u]), default=-1)
        self.level_plans: list[dict[str, IntArray]] = []
        for lv in range(int(level.max()) + 1 if len(level) else 0):
            units = [
                u
                for u in range(len(self.units))
                if level[u] == lv and (self.unit_deps[u] or len(self.units[u]) > 1)
            ]
            if not units:
                continue
            members = np.concatenate([self.units[u] for u in units])
            unit_id = np.concatenate(
                [np.full(len(self.units[u]), k, dtype=np.int64) for k, u in enumerate(units)]
            )
            pj, pd = [], []
            for k, m in enumerate(members):
                for d in self.deps[m]:
                    pj.append(k)
                    pd.append(int(d))
            self.level_plans.append(
                {
                    "members": members,
                    "unit_starts": np.searchsorted(unit_id, np.arange(len(units))),
                    "unit_id": unit_id,
                    "pair_member": np.array(pj, dtype=np.int64),
                    "pair_dep": np.array(pd, dtype=np.int64),
                }
            )

    def timing(self, X: IntArray) -> Timing:
        """Start and finish of every job in every row of ``X`` (vectorised by DAG level):
        a job starts when its last input has arrived and its node's dispatch latency
        has passed; a gang's members all start when the last of them can."""
        P = X.shape[0]
        dispatch = self.lat[X] / 1000.0
        dur = self.dur[np.arange(self.J)[None, :], X]
        start = dispatch.copy()
        finish = start + dur
        for plan in self.level_plans:
            members = plan["members"]
            ready = np.zeros((P, len(members)))
            pm, pd = plan["pair_member"], plan["pair_dep"]
            if len(pm):
                jm = members[pm]
                arrive = finish[:, pd] + self.transfer[X[:, pd], X[:, jm]]
                # running maximum per member: pairs grouped by member
                np.maximum.at(ready, (slice(None), pm), arrive)  # type: ignore[arg-type]
            # a gang starts together: when its last member can (inputs and dispatch)
            ready += dispatch[:, members]
            st = np.maximum.reduceat(ready, plan["unit_starts"], axis=1)[:, plan["unit_id"]]
            start[:, members] = st
            finish[:, members] = st + dur[:, members]
        return Timing(start, finish)

    def evaluate(self, X: IntArray) -> tuple[FloatArray, FloatArray]:
        """All five objectives ``(P, 5)`` and the constraint violation ``(P,)``."""
        X = np.asarray(X, dtype=np.int64)
        P = X.shape[0]
        jidx = np.arange(self.J)[None, :]
        F = np.zeros((P, len(OBJECTIVES)))
        if self.J:
            F[:, 0] = self.lat[X].mean(axis=1)
            F[:, 2] = 1.0 - self.trust[X].mean(axis=1)
            F[:, 3] = self.cost[jidx, X].sum(axis=1)
            F[:, 4] = self.price[jidx, X].sum(axis=1)
        lc, lm = self.loads(X)
        ucpu = (self.used_cpu[None, :] + lc) / self.node_cpu[None, :]
        umem = (self.used_mem[None, :] + lm) / self.node_mem[None, :]
        F[:, 1] = (ucpu.var(axis=1) + umem.var(axis=1)) / 2.0
        return F, self.violation(X, lc, lm)

    def violation(
        self, X: IntArray, lc: FloatArray | None = None, lm: FloatArray | None = None
    ) -> FloatArray:
        """How far each row is from feasible (0 when feasible): capacity overload,
        ineligible nodes, gangs split across regions, SLA-S deadline misses."""
        X = np.asarray(X, dtype=np.int64)
        if lc is None or lm is None:
            lc, lm = self.loads(X)
        jidx = np.arange(self.J)[None, :]
        over = np.maximum(lc - self.free_cpu[None, :], 0.0) / self.node_cpu[None, :]
        overm = np.maximum(lm - self.free_mem[None, :], 0.0) / self.node_mem[None, :]
        G: FloatArray = over.sum(axis=1) + overm.sum(axis=1)
        G += (~self.elig_mask[jidx, X]).sum(axis=1)
        for members in self.gangs:
            reg = self.region[X[:, members]]
            G += (reg != reg[:, :1]).sum(axis=1)
        if self.has_deadlines:
            t = self.timing(X)
            late = np.maximum(t.finish - self.deadline[None, :], 0.0)
            G += late.sum(axis=1)
        return G

    def select(self, F: FloatArray) -> FloatArray:
        """The columns of the chosen objectives."""
        return F[:, self.obj_cols]

    def objective_values(self, F_row: Sequence[float]) -> dict[str, float]:
        """Plan-level objectives as reported: trust as the mean trust (higher is better)."""
        out = {}
        for i, name in enumerate(OBJECTIVES):
            value = float(F_row[i])
            out[name] = round(1.0 - value if name == "trust" else value, 9)
        return out

    def job_objectives(self, j: int, n: int, balance: float) -> dict[str, Any]:
        return {
            "latency_ms": float(self.lat[n]),
            "balance": round(balance, 9),
            "trust": float(self.trust[n]),
            "cost": round(float(self.cost[j, n]), 9),
            "price": round(float(self.price[j, n]), 9),
        }


def build(problem: Problem, objectives: Sequence[str] = OBJECTIVES, **kw: Any) -> Instance:
    return Instance(problem.jobs, problem.nodes, tuple(objectives), **kw)
