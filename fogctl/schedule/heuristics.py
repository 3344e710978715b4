"""List-scheduling heuristics: the baselines, the NSGA seeds and ``--algorithm NAME``.

Every heuristic walks the scheduling units (a job, or a whole gang) in dependency
order, most urgent first (SLA class S, then priority, then size), and puts each on
the eligible node with room that scores best; a gang goes whole into the region
where it scores best. A job that fits nowhere is left unplaced (-1).

``greedy-latency``  lowest latency to the submitter
``least-loaded``    lowest utilisation after placement
``trust-first``     most trusted node
``cost``            cheapest to run for the operator (then cheapest price)
``ffd``             first-fit decreasing: biggest jobs first, first node with room
``round-robin``     the next node in turn that has room
``heft``            HEFT-style: units by upward rank (critical path first), each on
                    the node where it finishes earliest
``price``           (seed only) cheapest marketplace price
``NAME/small``      (seed only) heuristic NAME taking the smallest jobs first: for
                    objectives that depend only on the node (latency, trust) the
                    best nodes then hold as many jobs as fit
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

import numpy as np

from fogctl.schedule.instance import FloatArray, Instance, IntArray

__all__ = ["HEURISTICS", "SEEDS", "makespan", "run_heuristic", "upward_rank"]

HEURISTICS = ("greedy-latency", "least-loaded", "trust-first", "cost", "ffd", "round-robin")
SEEDS = (*HEURISTICS, "heft", "price", "greedy-latency/small", "trust-first/small")

EPS = 1e-9
SLA_RANK = {"S": 0, "A": 1, "B": 2}


class _State:
    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.x = np.full(inst.J, -1, dtype=np.int64)
        self.res_c = inst.free_cpu.copy()
        self.res_m = inst.free_mem.copy()
        self.finish = np.zeros(inst.J)
        self.rr = 0

    def ready(self, j: int, cand: IntArray) -> FloatArray:
        """When job ``j``'s inputs can be on each candidate node."""
        inst = self.inst
        ready = np.zeros(len(cand))
        for d in inst.deps[j]:
            if self.x[d] < 0:
                return np.full(len(cand), np.inf)
            ready = np.maximum(ready, self.finish[d] + inst.transfer[self.x[d], cand])
        return ready

    def candidates(self, j: int, region: int | None = None) -> IntArray:
        inst = self.inst
        cand = inst.elig[j]
        if region is not None:
            cand = cand[inst.region[cand] == region]
        ok = (self.res_c[cand] >= inst.cpu[j] - EPS) & (self.res_m[cand] >= inst.mem[j] - EPS)
        out: IntArray = cand[ok]
        return out

    def put(self, j: int, n: int, finish: float) -> None:
        inst = self.inst
        self.x[j] = n
        self.res_c[n] -= inst.cpu[j]
        self.res_m[n] -= inst.mem[j]
        self.finish[j] = finish


Score = Callable[[_State, int, IntArray, FloatArray], FloatArray]


def _score(name: str) -> Score:
    name = name.removesuffix("/small")
    if name == "greedy-latency":
        return lambda s, j, c, fin: s.inst.lat[c] + 1e-6 * fin
    if name == "least-loaded":
        return lambda s, j, c, fin: (
            (s.inst.node_cpu[c] - s.res_c[c] + s.inst.cpu[j]) / (s.inst.node_cpu[c])
            + (s.inst.node_mem[c] - s.res_m[c] + s.inst.mem[j]) / s.inst.node_mem[c]
        )
    if name == "trust-first":
        return lambda s, j, c, fin: -s.inst.trust[c] + 1e-6 * s.inst.lat[c]
    if name == "cost":
        return lambda s, j, c, fin: s.inst.cost[j, c] + 1e-3 * s.inst.price[j, c]
    if name == "price":
        return lambda s, j, c, fin: s.inst.price[j, c] + 1e-3 * s.inst.cost[j, c]
    if name == "ffd":
        return lambda s, j, c, fin: c.astype(float)
    if name == "heft":
        return lambda s, j, c, fin: fin
    if name == "round-robin":

        def rr(s: _State, j: int, c: IntArray, fin: FloatArray) -> FloatArray:
            return ((c - s.rr) % s.inst.N).astype(float)

        return rr
    raise ValueError(name)


def upward_rank(inst: Instance) -> FloatArray:
    """HEFT upward rank of each unit: mean duration plus the longest path to an exit."""
    mean_dur = inst.dur.mean(axis=1) + inst.lat.mean() / 1000.0
    mean_xfer = float(inst.transfer.mean())
    rank = np.zeros(len(inst.units))
    for u in reversed(inst.unit_order):
        own = float(mean_dur[inst.units[u]].max())
        tail = max((rank[c] + mean_xfer for c in inst.unit_children[u]), default=0.0)
        rank[u] = own + tail
    return rank


def _unit_keys(inst: Instance, name: str) -> list[tuple[float, ...]]:
    size = inst.cpu / inst.node_cpu.max() + inst.mem / inst.node_mem.max()
    keys: list[tuple[float, ...]] = []
    if name == "heft":
        rank = upward_rank(inst)
        return [(-float(rank[u]), float(u)) for u in range(len(inst.units))]
    for u, members in enumerate(inst.units):
        sla = min(SLA_RANK[inst.jobs[m].sla] for m in members)
        prio = max(inst.jobs[m].priority for m in members)
        big = float(size[members].sum())
        if name == "ffd":
            keys.append((-big, float(sla), -float(prio), float(u)))
        elif name.endswith("/small"):
            keys.append((big, float(sla), -float(prio), float(u)))
        else:
            keys.append((float(sla), -float(prio), -big, float(u)))
    return keys


def run_heuristic(inst: Instance, name: str) -> IntArray:
    """Place every unit with heuristic ``name``; unplaced jobs are -1."""
    score = _score(name)
    keys = _unit_keys(inst, name)
    state = _State(inst)
    indeg = [len(d) for d in inst.unit_deps]
    heap = [(keys[u], u) for u in range(len(inst.units)) if indeg[u] == 0]
    heapq.heapify(heap)
    while heap:
        _, u = heapq.heappop(heap)
        members = inst.units[u]
        if len(members) == 1:
            _place_one(state, int(members[0]), score)
        else:
            _place_gang(state, members, score)
        for c in inst.unit_children[u]:
            indeg[c] -= 1
            if indeg[c] == 0:
                heapq.heappush(heap, (keys[c], c))
    return state.x


def _finish(state: _State, j: int, cand: IntArray) -> FloatArray:
    inst = state.inst
    out: FloatArray = state.ready(j, cand) + inst.lat[cand] / 1000.0 + inst.dur[j, cand]
    return out


def _place_one(state: _State, j: int, score: Score) -> None:
    inst = state.inst
    cand = state.candidates(j)
    if not len(cand):
        return
    fin = _finish(state, j, cand)
    ok = fin <= inst.deadline[j] + 1e-9
    if not ok.any():
        return
    cand, fin = cand[ok], fin[ok]
    k = int(np.argmin(score(state, j, cand, fin)))
    n = int(cand[k])
    state.put(j, n, float(fin[k]))
    state.rr = (n + 1) % inst.N


def _place_gang(state: _State, members: IntArray, score: Score) -> None:
    """The whole gang in the region where it scores best, starting together."""
    inst = state.inst
    size = inst.cpu[members] / inst.node_cpu.max() + inst.mem[members] / inst.node_mem.max()
    order = members[np.argsort(-size, kind="stable")]
    best: tuple[float, dict[int, int]] | None = None
    for region in range(inst.n_regions):
        trial = _State(inst)
        trial.res_c = state.res_c.copy()
        trial.res_m = state.res_m.copy()
        trial.x = state.x.copy()
        trial.finish = state.finish
        trial.rr = state.rr
        chosen: dict[int, int] = {}
        total = 0.0
        for j in order:
            cand = trial.candidates(int(j), region)
            if not len(cand):
                break
            fin = _finish(trial, int(j), cand)
            s = score(trial, int(j), cand, fin)
            k = int(np.argmin(s))
            n = int(cand[k])
            total += float(s[k])
            chosen[int(j)] = n
            trial.res_c[n] -= inst.cpu[j]
            trial.res_m[n] -= inst.mem[j]
        if len(chosen) == len(members) and (best is None or total < best[0]):
            best = (total, chosen)
    if best is None:
        return
    starts = {}
    for j, n in best[1].items():
        starts[j] = float(state.ready(j, np.array([n]))[0]) + inst.lat[n] / 1000.0
    begin = max(starts.values())
    for j, n in best[1].items():
        fin = begin + inst.dur[j, n]
        state.put(j, n, float(fin))
    if any(state.finish[j] > inst.deadline[j] + 1e-9 for j in best[1]):
        for j, n in best[1].items():  # a gang is all or nothing
            state.x[j] = -1
            state.res_c[n] += inst.cpu[j]
            state.res_m[n] += inst.mem[j]


def makespan(inst: Instance, x: IntArray) -> float:
    """When the last job of assignment ``x`` finishes (seconds from plan time)."""
    if inst.J == 0:
        return 0.0
    return float(inst.timing(x[None, :]).finish.max())
