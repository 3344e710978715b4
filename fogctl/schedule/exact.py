"""Exact extremes of the front for small and medium problems, by MILP (HiGHS).

For a linear objective (latency, trust, cost, price, or a weighted sum) the best
feasible plan is an integer program: binary ``x[j,n]`` for each eligible pair, one
node per job, cpu and memory capacity per node, a gang's members in one region. It is
solved with :func:`scipy.optimize.milp` (HiGHS, which scipy bundles; scipy comes with
pymoo) under a time limit; the best integer plan found is used if it is feasible
(dependency deadlines included). These plans seed NSGA, so the front's extreme points
are exact where the solver finishes in time.
"""

from __future__ import annotations

import numpy as np

from fogctl.schedule.instance import FloatArray, Instance, IntArray

__all__ = ["MAX_ENUMERATE", "MAX_PAIRS", "exact_balance", "exact_extreme", "load_solver"]

MAX_PAIRS = 1_500  # eligible (job, node) pairs; bigger problems rely on the search


def load_solver() -> bool:
    """Import the MILP solver ahead of timing; False when scipy is missing."""
    try:
        import scipy.optimize  # type: ignore[import-untyped]
        import scipy.sparse  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:  # pragma: no cover - scipy comes with pymoo
        return False
    return True


def exact_extreme(
    inst: Instance, C: FloatArray, time_limit: float, *, node_limit: int | None = None
) -> IntArray | None:
    """The plan minimising ``sum C[j, x[j]]``, or ``None`` (too big, no time, infeasible).

    An infinite ``time_limit`` with a ``node_limit`` (branch-and-bound nodes) makes the
    result independent of the machine's speed."""
    try:
        from scipy.optimize import (  # type: ignore[import-untyped]
            Bounds,
            LinearConstraint,
            milp,
        )
        from scipy.sparse import coo_matrix  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - scipy comes with pymoo
        return None
    jj, nn = np.nonzero(inst.elig_mask)
    V = len(jj)
    if V == 0 or V > MAX_PAIRS or time_limit <= 0.005:
        return None
    options: dict[str, float | bool] = {"mip_rel_gap": 1e-3, "disp": False}
    if np.isfinite(time_limit):
        options["time_limit"] = float(time_limit)
    if node_limit is not None:
        options["node_limit"] = node_limit
    G = len(inst.gangs)
    R = inst.n_regions
    n_vars = V + G * R
    cost = np.concatenate([C[jj, nn], np.zeros(G * R)])
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    lo: list[np.ndarray] = []
    hi: list[np.ndarray] = []
    r0 = 0
    var = np.arange(V)
    # one node per job
    rows.append(r0 + jj)
    cols.append(var)
    vals.append(np.ones(V))
    lo.append(np.ones(inst.J))
    hi.append(np.ones(inst.J))
    r0 += inst.J
    # capacity
    for size, cap, scale in ((inst.cpu, inst.free_cpu, 1.0), (inst.mem, inst.free_mem, 1e-9)):
        rows.append(r0 + nn)
        cols.append(var)
        vals.append(size[jj] * scale)
        lo.append(np.full(inst.N, -np.inf))
        hi.append(cap * scale + 1e-9)
        r0 += inst.N
    # gangs: one region each, members only on nodes of that region
    for g, members in enumerate(inst.gangs):
        yv = V + g * R + np.arange(R)
        rows.append(np.full(R, r0))
        cols.append(yv)
        vals.append(np.ones(R))
        lo.append(np.ones(1))
        hi.append(np.ones(1))
        r0 += 1
        sel = np.nonzero(np.isin(jj, members))[0]
        k = len(sel)
        rows.append(np.concatenate([r0 + np.arange(k), r0 + np.arange(k)]))
        cols.append(np.concatenate([sel, V + g * R + inst.region[nn[sel]]]))
        vals.append(np.concatenate([np.ones(k), -np.ones(k)]))
        lo.append(np.full(k, -np.inf))
        hi.append(np.zeros(k))
        r0 += k
    A = coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(r0, n_vars),
    ).tocsr()
    res = milp(
        cost,
        constraints=LinearConstraint(A, np.concatenate(lo), np.concatenate(hi)),
        integrality=np.ones(n_vars),
        bounds=Bounds(0, 1),
        options=options,
    )
    if res.x is None:
        return None
    xv = res.x[:V]
    x = np.full(inst.J, -1, dtype=np.int64)
    best = np.full(inst.J, -1.0)
    for v in np.nonzero(xv > 0.5)[0]:
        if xv[v] > best[jj[v]]:
            best[jj[v]] = xv[v]
            x[jj[v]] = nn[v]
    if (x < 0).any() or inst.violation(x[None, :])[0] > 1e-9:
        return None
    return x


MAX_ENUMERATE = 1 << 16  # assignments; tiny problems get the exact balance extreme


def exact_balance(inst: Instance) -> IntArray | None:
    """The feasible plan of least utilisation variance, by enumerating every plan of
    a tiny problem (at most :data:`MAX_ENUMERATE` eligible assignments), else None."""
    import itertools

    total = 1
    for e in inst.elig:
        total *= len(e)
        if total > MAX_ENUMERATE:
            return None
    if inst.J == 0:
        return None
    rows = np.array(list(itertools.product(*(e.tolist() for e in inst.elig))), dtype=np.int64)
    F, G = inst.evaluate(rows)
    ok = np.nonzero(G <= 1e-9)[0]
    if not len(ok):
        return None
    best: IntArray = rows[ok[int(np.argmin(F[ok, 1]))]]
    return best
