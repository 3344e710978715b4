"""Exact optima for small placement instances, to measure the front's gap.

Linear objectives (latency, trust, cost, price and weighted sums of them) are solved
as a MILP with HiGHS (highspy): binary x[j,n] for each eligible pair, one node per
job, cpu and memory capacity per node, a gang's members in one region. The balance
objective (a variance) is quadratic, so it is found by enumerating every assignment
of a tiny instance. Used by tests/schedule/test_quality.py and the benchmark.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np

from fogctl.schedule.instance import OBJECTIVES, Instance

LINEAR = ("latency", "trust", "cost", "price")


def _coefficients(inst: Instance, name: str) -> np.ndarray:
    """Per (job, node) coefficient c so that objective = const + sum c[j,n] x[j,n]."""
    if name == "latency":
        return np.broadcast_to(inst.lat[None, :] / inst.J, (inst.J, inst.N))
    if name == "trust":  # minimised as 1 - mean trust
        return np.broadcast_to(-inst.trust[None, :] / inst.J, (inst.J, inst.N))
    if name == "cost":
        return inst.cost
    if name == "price":
        return inst.price
    raise ValueError(name)


def milp_optimum(inst: Instance, weights: Mapping[str, float]) -> float:
    """Minimum of ``sum w_k f_k`` over feasible assignments (linear objectives only)."""
    import highspy

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", 1e-9)
    c = np.zeros((inst.J, inst.N))
    const = 0.0
    for name, w in weights.items():
        if name not in LINEAR:
            raise ValueError(f"{name} is not linear")
        c += w * _coefficients(inst, name)
        if name == "trust":
            const += w * 1.0
    x: dict[tuple[int, int], object] = {}
    for j in range(inst.J):
        for n in inst.elig[j]:
            x[j, int(n)] = h.addBinary()
    for j in range(inst.J):
        h.addConstr(sum(x[j, int(n)] for n in inst.elig[j]) == 1)
    for n in range(inst.N):
        on = [j for j in range(inst.J) if (j, n) in x]
        if on:
            h.addConstr(sum(inst.cpu[j] * x[j, n] for j in on) <= inst.free_cpu[n] + 1e-9)
            h.addConstr(sum(inst.mem[j] / 1e9 * x[j, n] for j in on) <= inst.free_mem[n] / 1e9)
    for members in inst.gangs:
        y = [h.addBinary() for _ in range(inst.n_regions)]
        h.addConstr(sum(y) == 1)
        for j in members:
            for n in inst.elig[j]:
                h.addConstr(x[int(j), int(n)] <= y[int(inst.region[n])])
    h.minimize(sum(float(c[j, n]) * v for (j, n), v in x.items()))
    status = h.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        raise RuntimeError(f"MILP not solved: {h.modelStatusToString(status)}")
    return float(h.getInfo().objective_function_value) + const


def balance_optimum(inst: Instance) -> float:
    """Minimum utilisation variance by enumerating every assignment (tiny instances)."""
    best = np.inf
    choices = [list(map(int, e)) for e in inst.elig]
    rows = np.array(list(itertools.product(*choices)), dtype=np.int64)
    for chunk in np.array_split(rows, max(1, len(rows) // 20000)):
        F, G = inst.evaluate(chunk)
        ok = G <= 1e-9
        if ok.any():
            best = min(best, float(F[ok, OBJECTIVES.index("balance")].min()))
    return best


def weighted(F: np.ndarray, weights: Mapping[str, float]) -> np.ndarray:
    """``sum w_k f_k`` for each row of ``F`` (the five objectives, minimised)."""
    out = np.zeros(len(F))
    for name, w in weights.items():
        out += w * F[:, OBJECTIVES.index(name)]
    return out
