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

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from fogctl.schedule.instance import FloatArray, Instance, IntArray

__all__ = [
    "MAX_ENUMERATE",
    "MAX_PAIRS",
    "MAX_RELAXED_PAIRS",
    "Model",
    "enumerate_front",
    "exact_balance",
    "exact_extreme",
    "load_solver",
]

MAX_PAIRS = 1_500  # eligible (job, node) pairs; bigger problems rely on the search
MAX_RELAXED_PAIRS = 6_000  # up to here each scalarised search starts from the relaxation


def load_solver() -> bool:
    """Import the MILP solver ahead of timing; False when scipy is missing."""
    try:
        import scipy.optimize  # type: ignore[import-untyped]
        import scipy.sparse  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:  # pragma: no cover - scipy comes with pymoo
        return False
    return True


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """HiGHS sometimes prints debugging lines with C ``printf`` even with ``disp``
    off; stdout carries records, so file descriptor 1 points at stderr meanwhile."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no stdout at all
        yield
        return
    try:
        os.dup2(2, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


class Model:
    """The assignment constraints of ``inst`` as a sparse matrix, built once and
    solved for many cost matrices: exactly (:meth:`solve`) or as a linear
    relaxation rounded to a plan (:meth:`round_relaxation`)."""

    def __init__(self, inst: Instance) -> None:
        from scipy.optimize import LinearConstraint  # type: ignore[import-untyped]
        from scipy.sparse import coo_matrix  # type: ignore[import-untyped]

        self.inst = inst
        jj, nn = np.nonzero(inst.elig_mask)
        self.jj, self.nn = jj, nn
        V = self.V = len(jj)
        G, R = len(inst.gangs), inst.n_regions
        self.n_vars = V + G * R
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
            shape=(r0, self.n_vars),
        ).tocsr()
        self.constraints = LinearConstraint(A, np.concatenate(lo), np.concatenate(hi))

    def _milp(self, C: FloatArray, integral: bool, options: dict[str, float | bool]) -> Any:
        from scipy.optimize import Bounds, milp

        cost = np.concatenate([C[self.jj, self.nn], np.zeros(self.n_vars - self.V)])
        with _stdout_to_stderr():
            return milp(
                cost,
                constraints=self.constraints,
                integrality=np.full(self.n_vars, 1 if integral else 0),
                bounds=Bounds(0, 1),
                options=options,
            )

    def solve(
        self, C: FloatArray, time_limit: float, *, node_limit: int | None = None
    ) -> IntArray | None:
        """The plan minimising ``sum C[j, x[j]]`` (see :func:`exact_extreme`)."""
        if self.V == 0 or time_limit <= 0.005:
            return None
        options: dict[str, float | bool] = {"mip_rel_gap": 1e-3, "disp": False}
        if np.isfinite(time_limit):
            options["time_limit"] = float(time_limit)
        if node_limit is not None:
            options["node_limit"] = node_limit
        res = self._milp(C, True, options)
        if res.x is None:
            return None
        return self._plan(res.x[: self.V], exact=True)

    def round_relaxation(
        self, C: FloatArray, repair: Callable[[IntArray], IntArray] | None = None
    ) -> IntArray | None:
        """A plan from the linear relaxation: jobs most decided first, each on the
        node with room holding its largest share (a gang's members in the region
        holding most of the gang); a job with no room left goes to its largest share
        anyway and ``repair`` (if given) makes the plan feasible. ``None`` when the
        result is not feasible."""
        if self.V == 0:
            return None
        res = self._milp(C, False, {"disp": False})
        if res.x is None:
            return None
        return self._plan(res.x[: self.V], exact=False, C=C, repair=repair)

    def _plan(
        self,
        xv: FloatArray,
        *,
        exact: bool,
        C: FloatArray | None = None,
        repair: Callable[[IntArray], IntArray] | None = None,
    ) -> IntArray | None:
        inst = self.inst
        share = np.zeros((inst.J, inst.N))
        share[self.jj, self.nn] = xv
        x = np.full(inst.J, -1, dtype=np.int64)
        if exact:
            for j in range(inst.J):
                if share[j].max() > 0.5:
                    x[j] = int(np.argmax(share[j]))
        else:
            assert C is not None
            region = np.full(inst.J, -1, dtype=np.int64)
            for members in inst.gangs:
                by_region = np.bincount(
                    inst.region, weights=share[members].sum(axis=0), minlength=inst.n_regions
                )
                region[members] = int(np.argmax(by_region))
            res_c = inst.free_cpu.copy()
            res_m = inst.free_mem.copy()
            for j in np.argsort(-share.max(axis=1), kind="stable"):
                ok = (
                    inst.elig_mask[j]
                    & (res_c >= inst.cpu[j] - 1e-9)
                    & (res_m >= inst.mem[j] - 1e-6)
                )
                if region[j] >= 0:
                    ok &= inst.region == region[j]
                if not ok.any():  # over capacity: repaired below
                    ok = inst.elig_mask[j]
                n = int(np.argmin(np.where(ok, C[j] - 1e6 * share[j], np.inf)))
                x[j] = n
                res_c[n] -= inst.cpu[j]
                res_m[n] -= inst.mem[j]
            if repair is not None and inst.violation(x[None, :])[0] > 1e-9:
                x = repair(x)
        if (x < 0).any() or inst.violation(x[None, :])[0] > 1e-9:
            return None
        return x


def exact_extreme(
    inst: Instance,
    C: FloatArray,
    time_limit: float,
    *,
    node_limit: int | None = None,
    model: Model | None = None,
) -> IntArray | None:
    """The plan minimising ``sum C[j, x[j]]``, or ``None`` (too big, no time, infeasible).

    An infinite ``time_limit`` with a ``node_limit`` (branch-and-bound nodes) makes the
    result independent of the machine's speed."""
    if not load_solver() or int(inst.elig_mask.sum()) > MAX_PAIRS or time_limit <= 0.005:
        return None
    return (model or Model(inst)).solve(C, time_limit, node_limit=node_limit)


MAX_ENUMERATE = 1 << 16  # assignments; tiny problems get the exact balance extreme


def enumerate_front(
    inst: Instance, objectives: Sequence[int] | None = None
) -> tuple[IntArray, FloatArray] | None:
    """The exact Pareto front of a tiny problem (at most :data:`MAX_ENUMERATE`
    eligible assignments), by evaluating every assignment: ``(X, F)`` of the
    feasible non-dominated plans on the columns ``objectives`` (default: the
    instance's), or None when the problem is bigger or has no feasible plan."""
    import itertools

    from moocore import is_nondominated  # type: ignore[import-untyped]

    total = 1
    for e in inst.elig:
        total *= len(e)
        if total > MAX_ENUMERATE:
            return None
    if inst.J == 0:
        return None
    rows = np.array(list(itertools.product(*(e.tolist() for e in inst.elig))), dtype=np.int64)
    F, G = inst.evaluate(rows)
    ok = G <= 1e-9
    rows, F = rows[ok], F[ok]
    if not len(rows):
        return None
    cols = list(inst.obj_cols if objectives is None else objectives)
    front = np.asarray(is_nondominated(F[:, cols], keep_weakly=True), dtype=bool)
    return rows[front], F[front]


def exact_balance(inst: Instance) -> IntArray | None:
    """The feasible plan of least utilisation variance, by enumerating every plan of
    a tiny problem (at most :data:`MAX_ENUMERATE` eligible assignments), else None."""
    found = enumerate_front(inst, [1])
    if found is None:
        return None
    X, F = found
    best: IntArray = X[int(np.argmin(F[:, 1]))]
    return best
