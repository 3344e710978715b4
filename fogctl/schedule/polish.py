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
from collections.abc import Mapping, Sequence

import numpy as np

from fogctl.schedule.instance import OBJECTIVES, FloatArray, Instance, IntArray

__all__ = [
    "LINEAR",
    "IteratedSearch",
    "cost_matrix",
    "iterated_polish",
    "kick",
    "polish",
    "polish_balance",
]

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
        # 2. ejection chains: job i takes job k's node, k moves to node m (m may be
        #    i's old node: a swap), for the best disjoint chains of the round
        if J <= MAX_SWAP_JOBS and _chains(inst, y, Cm, res_c, res_m):
            changed = True
        if not changed:
            break
    if inst.violation(y[None, :])[0] > EPS:
        return np.asarray(x, dtype=np.int64)
    return y


def _chains(
    inst: Instance, y: IntArray, Cm: FloatArray, res_c: FloatArray, res_m: FloatArray
) -> bool:
    """Apply the best disjoint ejection chains ``i -> node(k)``, ``k -> m`` in place."""
    J = inst.J
    jidx = np.arange(J)
    cpu, mem = inst.cpu, inst.mem
    here = Cm[jidx, y]
    other = Cm[:, y]  # other[i, k]: cost of job i on job k's node
    # i fits on k's node once k has left it
    fit_i = (
        (res_c[y][None, :] + cpu[None, :] >= cpu[:, None] - EPS)
        & (res_m[y][None, :] + mem[None, :] >= mem[:, None] - EPS)
        & (y[:, None] != y[None, :])
    )
    # k's best other node with room now ...
    room = (res_c[None, :] >= cpu[:, None] - EPS) & (res_m[None, :] >= mem[:, None] - EPS)
    room[jidx, y] = False
    away = np.where(room, Cm, np.inf)
    best_m = np.argmin(away, axis=1)
    best_c = away[jidx, best_m]
    # ... or i's node, once i has left it (a swap)
    back_ok = (res_c[y][:, None] + cpu[:, None] >= cpu[None, :] - EPS) & (
        res_m[y][:, None] + mem[:, None] >= mem[None, :] - EPS
    )
    back = np.where(back_ok, other.T, np.inf)  # back[i, k]: cost of k on i's node
    use_back = back <= best_c[None, :]
    k_cost = np.where(use_back, back, best_c[None, :])
    delta = other - here[:, None] + k_cost - here[None, :]
    delta = np.where(fit_i & np.isfinite(delta), delta, np.inf)
    flat = np.argsort(delta, axis=None)[: 4 * J]
    used_jobs: set[int] = set()
    used_nodes: set[int] = set()
    changed = False
    for f in flat:
        i, k = divmod(int(f), J)
        if not delta[i, k] < -1e-12:
            break
        a, b = int(y[i]), int(y[k])
        m = a if use_back[i, k] else int(best_m[k])
        if {i, k} & used_jobs or {a, b, m} & used_nodes:
            continue
        res_c[a] += cpu[i]
        res_m[a] += mem[i]
        res_c[b] += cpu[k] - cpu[i]
        res_m[b] += mem[k] - mem[i]
        res_c[m] -= cpu[k]
        res_m[m] -= mem[k]
        y[i], y[k] = b, m
        used_jobs.update((i, k))
        used_nodes.update((a, b, m))
        changed = True
    return changed


def kick(inst: Instance, x: IntArray, C: FloatArray, rng: np.random.Generator) -> IntArray | None:
    """A perturbation for iterated local search: empty one or two random nodes (and a
    tenth of the other jobs), or move one gang to another region, then put the jobs
    back greedily on ``C`` (random or smallest-first order, sometimes avoiding their
    old node). ``None`` when the jobs do not all fit back."""
    J, N = inst.J, inst.N
    y = np.array(x, dtype=np.int64, copy=True)
    res_c = inst.free_cpu - np.bincount(y, weights=inst.cpu, minlength=N).astype(float)
    res_m = inst.free_mem - np.bincount(y, weights=inst.mem, minlength=N).astype(float)
    movable = inst.pinned < 0
    region = np.full(J, -1, dtype=np.int64)  # a gang member stays in (or moves to) a region
    for members in inst.gangs:
        region[members] = inst.region[y[members[0]]]
    if inst.gangs and inst.n_regions > 1 and rng.random() < 0.25:
        g = int(rng.integers(len(inst.gangs)))
        members = inst.gangs[g]
        if not movable[members].all():
            return None
        out = members
        region[members] = (region[members[0]] + rng.integers(1, inst.n_regions)) % inst.n_regions
        order = out[np.argsort(-inst.cpu[out], kind="stable")]
    else:
        nodes = rng.choice(N, size=min(N, int(rng.integers(1, 3))), replace=False)
        free = movable & (inst.gang_of < 0)
        out = np.nonzero(free & (np.isin(y, nodes) | (rng.random(J) < 0.1)))[0]
        if not len(out):
            return None
        if rng.random() < 0.5:
            order = rng.permutation(out)
        else:
            order = out[np.argsort(inst.cpu[out] / inst.node_cpu.max(), kind="stable")]
    old = y.copy()
    np.add.at(res_c, y[out], inst.cpu[out])
    np.add.at(res_m, y[out], inst.mem[out])
    avoid = rng.random() < 0.3
    for j in order:
        ok = inst.elig_mask[j] & (res_c >= inst.cpu[j] - EPS) & (res_m >= inst.mem[j] - EPS)
        if region[j] >= 0:
            ok &= inst.region == region[j]
        if avoid and ok.sum() > 1:
            ok[old[j]] = False
        if not ok.any():
            return None
        n = int(np.argmin(np.where(ok, C[j], np.inf)))
        y[j] = n
        res_c[n] -= inst.cpu[j]
        res_m[n] -= inst.mem[j]
    return y


class IteratedSearch:
    """Iterated local search on ``sum C[j, x[j]]``: :func:`polish` each feasible
    start at once and keep the best, then each :meth:`run` kicks (:func:`kick`) and
    polishes again, keeping a result that is feasible and no worse. ``best`` is the
    best feasible plan found (the first start if none is)."""

    def __init__(
        self,
        inst: Instance,
        starts: Sequence[IntArray],
        C: FloatArray,
        rng: np.random.Generator,
        *,
        deadline: float | None = None,
    ) -> None:
        self.inst, self.C, self.rng, self.deadline = inst, C, rng, deadline
        self.jidx = np.arange(inst.J)
        best: IntArray = np.asarray(starts[0], dtype=np.int64)
        best_value = np.inf
        for x in starts:
            y = polish(inst, x, C, deadline=deadline)
            v = float(C[self.jidx, y].sum())
            if v < best_value and inst.violation(y[None, :])[0] <= EPS:
                best, best_value = y, v
        self.best = self.current = best
        self.best_value = self.value = float(C[self.jidx, best].sum())
        self.stale = 0  # kicks since the last gain

    def run(self, kicks: int) -> None:
        inst = self.inst
        for _ in range(kicks):
            if self.deadline is not None and time.perf_counter() > self.deadline:
                return
            y = kick(inst, self.current, self.C, self.rng)
            if y is None:
                self.stale += 1
                continue
            y = polish(inst, y, self.C, deadline=self.deadline)
            v = float(self.C[self.jidx, y].sum())
            if v > self.value + 1e-12 or inst.violation(y[None, :])[0] > EPS:
                self.stale += 1
                continue
            self.current, self.value = y, v
            if v < self.best_value - 1e-12:
                self.best, self.best_value = y, v
                self.stale = 0
                continue
            self.stale += 1


def iterated_polish(
    inst: Instance,
    x: IntArray,
    C: FloatArray,
    rng: np.random.Generator,
    *,
    kicks: int = 20,
    deadline: float | None = None,
) -> IntArray:
    """:class:`IteratedSearch` with ``kicks`` perturbations; the best plan found."""
    search = IteratedSearch(inst, [x], C, rng, deadline=deadline)
    search.run(kicks)
    return search.best


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
