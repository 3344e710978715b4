"""Local search on one linear objective (or a weighted sum): the front's extremes.

NSGA spreads a population over the front but converges slowly on its extreme points,
where one objective is at its best. For the linear objectives (latency, trust, cost,
price and their weighted sums) a per-(job, node) cost matrix ``C`` gives the
objective up to a constant, and a local search finishes the job:

1. **moves**: each job goes to the cheapest node with room for it (largest gains
   first), while any job gains;
2. **swaps**: two jobs on different nodes trade places when that lowers the sum and
   both fit (a batch of disjoint best swaps per round);

until neither helps, ``rounds`` runs out or the ``deadline`` (a
``time.perf_counter()`` value) passes. Pinned jobs stay; gang members stay in
their gang's region. The result is returned only if it is feasible (deadlines and
dependencies included), else the input comes back unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np

from fogctl.schedule.instance import OBJECTIVES, FloatArray, Instance, IntArray

__all__ = ["LINEAR", "cost_matrix", "polish", "polish_balance"]

LINEAR = ("latency", "trust", "cost", "price")
EPS = 1e-9
MAX_SWAP_JOBS = 400  # the swap step builds J x J matrices


def cost_matrix(inst: Instance, weights: Mapping[str, float]) -> FloatArray:
    """``C[j, n]``: the weighted linear objectives of job ``j`` on node ``n``."""
    C = np.zeros((inst.J, inst.N))
    for name, w in weights.items():
        if not w:
            continue
        if name == "latency":
            C += w * inst.lat[None, :] / max(inst.J, 1)
        elif name == "trust":
            C -= w * inst.trust[None, :] / max(inst.J, 1)
        elif name == "cost":
            C += w * inst.cost
        elif name == "price":
            C += w * inst.price
        elif name not in OBJECTIVES:
            raise ValueError(name)
    return C


def polish(
    inst: Instance,
    x: IntArray,
    C: FloatArray,
    *,
    rounds: int = 20,
    deadline: float | None = None,
) -> IntArray:
    """Improve ``x`` on ``sum C[j, x[j]]`` by moves and swaps; feasible or unchanged."""
    if inst.J == 0:
        return x
    y = np.array(x, dtype=np.int64, copy=True)
    J = inst.J
    jidx = np.arange(J)
    movable = inst.pinned < 0
    allowed = inst.elig_mask.copy()
    allowed[~movable] = False
    allowed[~movable, y[~movable]] = True
    # a gang member may only move inside its gang's current region
    for members in inst.gangs:
        region = inst.region[y[members[0]]]
        allowed[members] &= (inst.region == region)[None, :]
    Cm = np.where(allowed, C, np.inf)
    res_c = inst.free_cpu - np.bincount(y, weights=inst.cpu, minlength=inst.N).astype(float)
    res_m = inst.free_mem - np.bincount(y, weights=inst.mem, minlength=inst.N).astype(float)
    for _ in range(rounds):
        if deadline is not None and time.perf_counter() > deadline:
            break
        changed = False
        # 1. moves
        fits = (res_c[None, :] >= inst.cpu[:, None] - EPS) & (
            res_m[None, :] >= inst.mem[:, None] - EPS
        )
        cand = np.where(fits, Cm, np.inf)
        best = np.argmin(cand, axis=1)
        gain = Cm[jidx, y] - cand[jidx, best]
        for j in np.argsort(-gain):
            if gain[j] <= 1e-12:
                break
            n = int(best[j])
            if res_c[n] < inst.cpu[j] - EPS or res_m[n] < inst.mem[j] - EPS:
                continue
            old = int(y[j])
            res_c[old] += inst.cpu[j]
            res_m[old] += inst.mem[j]
            res_c[n] -= inst.cpu[j]
            res_m[n] -= inst.mem[j]
            y[j] = n
            changed = True
        # 2. swaps between jobs on different nodes
        if J <= MAX_SWAP_JOBS:
            here = Cm[jidx, y]
            other = Cm[:, y]  # other[i, j] = cost of job i on job j's node
            delta = other + other.T - here[:, None] - here[None, :]
            dc = inst.cpu[:, None] - inst.cpu[None, :]  # i leaves a, j arrives: a gains dc
            dm = inst.mem[:, None] - inst.mem[None, :]
            ok = (
                (res_c[y][:, None] + dc >= -EPS)
                & (res_c[y][None, :] - dc >= -EPS)
                & (res_m[y][:, None] + dm >= -EPS)
                & (res_m[y][None, :] - dm >= -EPS)
                & (y[:, None] != y[None, :])
                & np.isfinite(delta)
            )
            delta = np.where(ok, delta, np.inf)
            flat = np.argsort(delta, axis=None)[: 4 * J]
            used_jobs: set[int] = set()
            used_nodes: set[int] = set()
            for k in flat:
                i, j = divmod(int(k), J)
                if not delta[i, j] < -1e-12:
                    break
                a, b = int(y[i]), int(y[j])
                if i in used_jobs or j in used_jobs or a in used_nodes or b in used_nodes:
                    continue
                res_c[a] += inst.cpu[i] - inst.cpu[j]
                res_c[b] += inst.cpu[j] - inst.cpu[i]
                res_m[a] += inst.mem[i] - inst.mem[j]
                res_m[b] += inst.mem[j] - inst.mem[i]
                y[i], y[j] = b, a
                used_jobs.update((i, j))
                used_nodes.update((a, b))
                changed = True
        if not changed:
            break
    if inst.violation(y[None, :])[0] > EPS:
        return np.asarray(x, dtype=np.int64)
    return y


def polish_balance(
    inst: Instance, x: IntArray, *, moves: int = 200, deadline: float | None = None
) -> IntArray:
    """Lower the utilisation variance of ``x`` by single-job moves, best move first.

    The variance after moving job ``j`` to node ``n`` is computed for every pair at
    once from the sums of utilisation and of its square.
    """
    if inst.J == 0 or inst.N < 2:
        return x
    y = np.array(x, dtype=np.int64, copy=True)
    movable = inst.pinned < 0
    N = inst.N
    jidx = np.arange(inst.J)
    for _ in range(moves):
        if deadline is not None and time.perf_counter() > deadline:
            break
        lc = np.bincount(y, weights=inst.cpu, minlength=N).astype(float)
        lm = np.bincount(y, weights=inst.mem, minlength=N).astype(float)
        ok = (
            inst.elig_mask
            & movable[:, None]
            & ((inst.free_cpu - lc)[None, :] >= inst.cpu[:, None] - EPS)
            & ((inst.free_mem - lm)[None, :] >= inst.mem[:, None] - EPS)
        )
        for members in inst.gangs:
            ok[members] &= (inst.region == inst.region[y[members[0]]])[None, :]
        ok[jidx, y] = False
        base = 0.0
        new: FloatArray = np.zeros((inst.J, N))
        for used, load, size, cap in (
            (inst.used_cpu, lc, inst.cpu, inst.node_cpu),
            (inst.used_mem, lm, inst.mem, inst.node_mem),
        ):
            u = (used + load) / cap
            s1, s2 = float(u.sum()), float((u * u).sum())
            base += s2 / N - (s1 / N) ** 2
            da = (size / cap[y])[:, None]  # leaves the job's node
            db = size[:, None] / cap[None, :]  # arrives on node n
            ua = u[y][:, None]
            un = u[None, :]
            n1 = s1 - da + db
            n2 = s2 - ua**2 + (ua - da) ** 2 - un**2 + (un + db) ** 2
            new += n2 / N - (n1 / N) ** 2
        gain = np.where(ok, base - new, -np.inf)
        k = int(np.argmax(gain))
        j, n = divmod(k, N)
        if not gain[j, n] > 1e-15:
            break
        y[j] = n
    if inst.violation(y[None, :])[0] > EPS:
        return np.asarray(x, dtype=np.int64)
    return y
