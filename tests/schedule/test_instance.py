"""Vectorised objectives, timing and pricing against plain reference code."""

from __future__ import annotations

import numpy as np

from fogctl.schedule import pricing
from fogctl.schedule.instance import OBJECTIVES

from .conftest import make


def reference_timing(inst, x):  # type: ignore[no-untyped-def]
    """Start/finish by walking units one by one (the definition, written plainly)."""
    start = np.zeros(inst.J)
    finish = np.zeros(inst.J)
    for u in inst.unit_order:
        members = [int(m) for m in inst.units[u]]
        ready = {}
        for m in members:
            r = 0.0
            for d in inst.deps[m]:
                d = int(d)
                hop = 0.0 if x[d] == x[m] else (inst.lat[x[d]] + inst.lat[x[m]]) / 1000
                r = max(r, finish[d] + hop)
            ready[m] = r + inst.lat[x[m]] / 1000
        begin = max(ready.values())
        for m in members:
            start[m] = begin
            finish[m] = start[m] + inst.jobs[m].estimate_seconds * inst.nodes[x[m]].slowdown
    return start, finish


def test_timing_matches_reference_on_dags_with_gangs() -> None:
    _, _, inst = make(60, 8, seed=3, dag=0.5, gangs=4)
    assert inst.level_plans, "the instance should have dependencies"
    rng = np.random.default_rng(0)
    X = inst.random_rows(rng, 5)
    t = inst.timing(X)
    for p in range(len(X)):
        s, f = reference_timing(inst, X[p])
        np.testing.assert_allclose(t.start[p], s, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(t.finish[p], f, rtol=1e-12, atol=1e-9)


def test_objectives_match_definitions() -> None:
    _, _, inst = make(30, 6, seed=1)
    x = np.random.default_rng(1).integers(0, inst.N, inst.J)
    F, G = inst.evaluate(x[None, :])
    lat = np.mean([inst.nodes[n].latency_ms for n in x])
    trust = np.mean([inst.nodes[n].trust for n in x])
    cost = sum(pricing.operating_cost(j, inst.nodes[n]) for j, n in zip(inst.jobs, x, strict=True))
    price = sum(pricing.quote(j, inst.nodes[n]).price for j, n in zip(inst.jobs, x, strict=True))
    util_c = []
    util_m = []
    for k, node in enumerate(inst.nodes):
        load_c = sum(j.cpu for j, n in zip(inst.jobs, x, strict=True) if n == k)
        load_m = sum(j.memory for j, n in zip(inst.jobs, x, strict=True) if n == k)
        util_c.append((node.cpu * node.cpu_util + load_c) / node.cpu)
        util_m.append((node.memory * node.memory_util + load_m) / node.memory)
    balance = (np.var(util_c) + np.var(util_m)) / 2
    expected = [lat, balance, 1 - trust, cost, price]
    np.testing.assert_allclose(F[0], expected, rtol=1e-9)
    assert list(inst.objective_values(F[0])) == list(OBJECTIVES)
    assert abs(inst.objective_values(F[0])["trust"] - trust) < 1e-8
    # violation: positive exactly when some node is over its free capacity
    lc, lm = inst.loads(x[None, :])
    over = (lc[0] > inst.free_cpu + 1e-9).any() or (lm[0] > inst.free_mem + 1e-6).any()
    assert (G[0] > 0) == (over or not inst.elig_mask[np.arange(inst.J), x].all())


def test_price_matrix_matches_scalar_quotes() -> None:
    _, _, inst = make(25, 7, seed=2)
    for j, jb in enumerate(inst.jobs):
        for n, nd in enumerate(inst.nodes):
            q = pricing.quote(jb, nd)
            assert abs(inst.price[j, n] - q.price) <= 1e-12 * max(1.0, q.price)
            assert abs(inst.cost[j, n] - pricing.operating_cost(jb, nd)) <= 1e-12


def test_pricing_factors() -> None:
    from fogctl.schedule.model import Job, Node

    job = Job("j", cpu=2, memory=0, estimate_seconds=3600, sla="B")
    base = Node("n", cpu=4, memory=8, tier="standard", trust=0.5)
    q = pricing.quote(job, base)
    assert abs(q.price - 0.04 * 2) < 1e-12  # standard rate x 2 cores x 1 hour
    spot = pricing.quote(job, Node("n", cpu=4, memory=8, bid="spot", trust=0.5))
    assert abs(spot.price / q.price - 0.6) < 1e-12
    busy = pricing.quote(job, Node("n", cpu=4, memory=8, cpu_util=0.9, trust=0.5))
    assert busy.utilization_factor > 1.3 and busy.hours > q.hours
    trusted = pricing.quote(job, Node("n", cpu=4, memory=8, trust=1.0))
    assert abs(trusted.price / q.price - 1.15) < 1e-12
    urgent = pricing.quote(Job("u", cpu=2, memory=0, estimate_seconds=3600, sla="S"), base)
    assert abs(urgent.price / q.price - 1.5) < 1e-12
    asked = pricing.quote(job, Node("n", cpu=4, memory=8, price=0.4, trust=0.5))
    assert abs(asked.rate - 0.1) < 1e-12
