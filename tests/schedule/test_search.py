"""Heuristics, repair, the NSGA search, polish and plan selection."""

from __future__ import annotations

import numpy as np
import pytest

from fogctl.errors import InvalidInput
from fogctl.schedule.engine import _complete, hypervolume_ratio
from fogctl.schedule.heuristics import HEURISTICS, SEEDS, run_heuristic, upward_rank
from fogctl.schedule.instance import OBJECTIVES, Instance
from fogctl.schedule.model import Node
from fogctl.schedule.optimize import auto_settings, nondominated, optimize
from fogctl.schedule.polish import cost_matrix, polish, polish_balance
from fogctl.schedule.repair import Repairer
from fogctl.schedule.select import choose, knee_index, parse_prefer

from .conftest import job, make


@pytest.mark.parametrize("name", SEEDS)
def test_every_heuristic_gives_a_feasible_plan(name: str) -> None:
    _, _, inst = make(120, 15, seed=4, dag=0.2, gangs=3)
    x = run_heuristic(inst, name)
    assert (x >= 0).all()
    assert inst.violation(x[None, :])[0] == 0
    for members in inst.gangs:  # gangs whole, in one region
        assert len(set(inst.region[x[members]].tolist())) == 1


def test_heuristics_do_what_they_say() -> None:
    nodes = (
        Node("near", cpu=8, memory=2**34, latency_ms=5, trust=0.3, cost=1.0),
        Node("trusted", cpu=8, memory=2**34, latency_ms=50, trust=0.99, cost=1.0),
        Node("cheap", cpu=8, memory=2**34, latency_ms=80, trust=0.5, cost=0.0),
    )
    jobs = tuple(job(f"j{i}", cpu=1) for i in range(4))
    inst = Instance(jobs, nodes)
    assert set(run_heuristic(inst, "greedy-latency").tolist()) == {0}
    assert set(run_heuristic(inst, "trust-first").tolist()) == {1}
    assert set(run_heuristic(inst, "cost").tolist()) == {2}
    assert sorted(run_heuristic(inst, "round-robin").tolist()) == [0, 0, 1, 2]
    spread = run_heuristic(inst, "least-loaded")
    assert len(set(spread.tolist())) == 3
    assert set(run_heuristic(inst, "ffd").tolist()) == {0}


def test_ffd_packs_biggest_first() -> None:
    nodes = (Node("a", cpu=4, memory=2**34), Node("b", cpu=4, memory=2**34))
    jobs = (job("s1", cpu=1), job("s2", cpu=1), job("big", cpu=3), job("mid", cpu=3))
    x = run_heuristic(Instance(jobs, nodes), "ffd")
    assert (x >= 0).all()  # first-fit in given order would strand one 3-core job


def test_heft_puts_the_critical_path_on_fast_nodes() -> None:
    nodes = (
        Node("slow", cpu=8, memory=2**34, cpu_util=0.9, latency_ms=1),
        Node("fast", cpu=8, memory=2**34, cpu_util=0.0, latency_ms=1),
    )
    jobs = (
        job("a", estimate_seconds=100),
        job("b", estimate_seconds=500, depends_on=("a",)),
        job("c", estimate_seconds=10, depends_on=("b",)),
        job("side", estimate_seconds=5),
    )
    inst = Instance(jobs, nodes)
    rank = upward_rank(inst)
    assert rank[inst.unit_of[0]] > rank[inst.unit_of[1]] > rank[inst.unit_of[2]]
    x = run_heuristic(inst, "heft")
    assert x[:3].tolist() == [1, 1, 1]
    heft = inst.timing(x[None, :]).finish.max()
    worst = inst.timing(np.zeros((1, 4), dtype=np.int64)).finish.max()
    assert heft < worst


def test_repair_makes_random_rows_feasible_and_keeps_pins() -> None:
    _, _, inst0 = make(200, 20, seed=5, gangs=4)
    pinned_job = inst0.jobs[7].id
    target = inst0.nodes[int(inst0.elig[7][0])].id
    inst = Instance(inst0.jobs, inst0.nodes, pins={pinned_job: target})
    rng = np.random.default_rng(0)
    X = rng.integers(0, inst.N, size=(30, inst.J))  # ignores capacity and eligibility
    assert (inst.violation(X) > 0).all()
    R = Repairer(inst, rng).repair(X)
    assert (inst.violation(R) == 0).all()
    assert (R[:, 7] == inst.node_index[target]).all()
    feasible = next(iter(_complete(inst, {h: run_heuristic(inst, h) for h in SEEDS}).values()))
    assert (Repairer(inst, rng).repair(feasible[None, :]) == feasible).all()  # untouched


def test_front_dominates_every_heuristic_and_is_nondominated() -> None:
    _, _, inst = make(80, 12, seed=6, dag=0.1, gangs=2)
    seeds = _complete(inst, {h: run_heuristic(inst, h) for h in SEEDS})
    res = optimize(inst, list(seeds.values()), auto_settings(inst, "nsga3", seed=1))
    assert len(res.X) > 5
    assert (inst.violation(res.X) == 0).all()
    F = inst.select(res.F)
    assert len(nondominated(F)) == len(F)
    hF = inst.select(inst.evaluate(np.stack(list(seeds.values())))[0])
    for point in hF:
        bound = point[None, :] + 1e-12
        weakly_better = (F - bound <= 0).all(axis=1)
        assert weakly_better.any()
    hv_front, hv_best = hypervolume_ratio(F, hF)
    assert hv_front > hv_best


def test_nsga2_with_fewer_objectives_and_early_stop() -> None:
    _, _, inst0 = make(10, 4, seed=7)
    inst = Instance(inst0.jobs, inst0.nodes, objectives=("latency", "cost"))
    seeds = _complete(inst, {h: run_heuristic(inst, h) for h in SEEDS})
    settings = auto_settings(inst, "nsga2")
    settings.time_limit = 30.0
    res = optimize(inst, list(seeds.values()), settings)
    # a small two-objective problem converges: the hypervolume plateau ends it early,
    # long before the 30 s limit
    assert res.stopped == "plateau", (res.stopped, res.generations)
    assert res.generations < settings.max_gen
    assert res.elapsed < 10
    h = res.hv_history
    k = settings.patience
    assert h[-1] - h[-1 - k] <= settings.tol * h[-1]
    assert res.F.shape[1] == len(OBJECTIVES)


def test_tiny_problems_get_the_exact_front() -> None:
    """At most 65,536 possible assignments: every one is evaluated, so no feasible
    plan is better on every objective than the front, and nothing is searched."""
    _, _, inst = make(7, 4, seed=2, load=0.7)
    seeds = _complete(inst, {h: run_heuristic(inst, h) for h in SEEDS})
    res = optimize(inst, list(seeds.values()), auto_settings(inst, "nsga3"))
    assert res.stopped == "exact" and res.generations == 0
    rows = inst.random_rows(np.random.default_rng(0), 3000)
    F, G = inst.evaluate(rows)
    for point in F[G <= 1e-9]:
        assert ((point[None, :] + 1e-12 >= res.F).all(axis=1)).any()


def test_polish_improves_and_stays_feasible() -> None:
    _, _, inst = make(150, 20, seed=8, gangs=2)
    x = run_heuristic(inst, "round-robin")
    for name in ("latency", "trust", "cost", "price"):
        C = cost_matrix(inst, {name: 1.0})
        y = polish(inst, x, C)
        assert inst.violation(y[None, :])[0] == 0
        j = np.arange(inst.J)
        assert C[j, y].sum() < C[j, x].sum()
    b = polish_balance(inst, run_heuristic(inst, "greedy-latency"))
    before = inst.evaluate(run_heuristic(inst, "greedy-latency")[None, :])[0][0, 1]
    after = inst.evaluate(b[None, :])[0][0, 1]
    assert after < before


def test_prefer_and_pick() -> None:
    assert parse_prefer("latency=3,cost=1") == {"latency": 3.0, "cost": 1.0}
    assert parse_prefer("trust") == {"trust": 1.0}
    for bad in ("speed=1", "latency=x", "latency=-1", "", "cost=0"):
        with pytest.raises(InvalidInput):
            parse_prefer(bad)
    F = np.array([[0.0, 10.0], [3.0, 3.0], [10.0, 0.0], [6.0, 6.0]])
    names = ("latency", "cost")
    assert knee_index(F, names) == 1
    assert choose(F, names, pick="latency") == 0
    assert choose(F, names, pick="cost") == 2
    assert choose(F, names, prefer={"latency": 10, "cost": 1}) == 0
    assert choose(F, names, prefer={"cost": 1}) == 2
    with pytest.raises(InvalidInput):
        choose(F, names, pick="price")


def test_heuristic_names_are_the_documented_ones() -> None:
    assert HEURISTICS == (
        "greedy-latency",
        "least-loaded",
        "trust-first",
        "cost",
        "ffd",
        "round-robin",
    )


def test_generation_budget_is_reproducible() -> None:
    from fogctl.schedule.engine import schedule

    records, jobs, _ = make(40, 8, seed=9, dag=0.2, gangs=1)
    a = schedule(records, jobs, generations=15, seed=4)
    b = schedule(records, jobs, generations=15, seed=4)
    assert [r.to_dict() for r in a.assignments] == [r.to_dict() for r in b.assignments]
    assert np.array_equal(a.X, b.X)
    assert a.stats["generations"] <= 15


def test_batch_that_leaves_an_sla_s_job_out_preempts_for_it() -> None:
    """Each S job fits alone, but not both: the second evicts low-priority work."""
    from fogctl.schedule.engine import schedule
    from fogctl.schedule.model import Running

    from .conftest import node

    nodes = [node("a", 4, 8, cpu_util=0.5), node("b", 4, 8, cpu_util=1.0)]
    running = [Running("low", "b", 2.0, 2**30, priority=0)]
    jobs = [
        job("s1", cpu=2, sla="S", priority=9, deadline_seconds=600, estimate_seconds=60),
        job("s2", cpu=2, sla="S", priority=8, deadline_seconds=600, estimate_seconds=60),
    ]
    plan = schedule(nodes, jobs, running=running, generations=5, headroom="strict")
    by = {r.job: r for r in plan.assignments}
    assert {by["s1"].node, by["s2"].node} == {"a", "b"}
    evicting = [r for r in plan.assignments if r.preempts]
    assert len(evicting) == 1 and evicting[0].node == "b" and evicting[0].preempts == ("low",)
    with pytest.raises(InvalidInput, match="not enough free capacity"):
        schedule(nodes, jobs, generations=5, headroom="strict")


def test_busy_nodes_take_work_that_fits_their_cores_unless_headroom_is_strict() -> None:
    """A node measured 100% busy (the shared box this runs on, often) still takes a
    job that fits its cores; it is the worse choice when another node is idle."""
    from fogctl.schedule.engine import schedule

    from .conftest import node

    busy = [node("busy", 4, 8, cpu_util=1.0, latency_ms=5)]
    plan = schedule(busy, [job("j", cpu=2)], generations=3)
    assert [a.node for a in plan.assignments] == ["busy"]
    with pytest.raises(InvalidInput, match="more than any node offers"):
        schedule(busy, [job("j", cpu=2)], generations=3, headroom="strict")
    both = [*busy, node("idle", 4, 8, cpu_util=0.0, latency_ms=5)]
    plan = schedule(both, [job("j", cpu=2)], generations=3)
    assert [a.node for a in plan.assignments] == ["idle"]
