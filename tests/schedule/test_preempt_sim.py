"""Preemption rules, and the discrete-event simulation's figures."""

from __future__ import annotations

from fogctl.schedule.model import Node, Running
from fogctl.schedule.preempt import plan_preemptions
from fogctl.schedule.sim import SimConfig, simulate

from .conftest import GIB, job


def full(id: str, cpu: float = 4) -> Node:
    """A node measured fully busy, with strict headroom: no core left for new work."""
    return Node(
        id, cpu=cpu, memory=8 * GIB, cpu_util=1.0, memory_util=0.5, latency_ms=5, headroom="strict"
    )


def test_preempts_fewest_lowest_priority_jobs() -> None:
    nodes = [full("a"), full("b")]
    running = [
        Running("a-low", "a", 1.0, GIB, priority=0),
        Running("a-mid", "a", 1.0, GIB, priority=5),
        Running("b-big", "b", 2.0, GIB, priority=3),
        Running("b-tiny", "b", 0.5, GIB, priority=1),
    ]
    urgent = job("u", cpu=2, sla="S", priority=10)
    pre = plan_preemptions([urgent], nodes, running)
    # b frees 2 cores with one eviction (its lowest priority first: b-tiny is not enough,
    # then b-big); a needs two evictions
    assert pre.pins == {"u": "b"}
    assert pre.evicts["u"] == ("b-tiny", "b-big")
    assert pre.extra_cpu == {"b": 2.5}


def test_never_preempts_sla_s_or_higher_priority() -> None:
    nodes = [full("a")]
    running = [
        Running("critical", "a", 4.0, GIB, priority=1, sla="S"),
    ]
    assert not plan_preemptions([job("u", cpu=2, sla="S", priority=10)], nodes, running).pins
    running = [Running("boss", "a", 4.0, GIB, priority=50)]
    assert not plan_preemptions([job("u", cpu=2, sla="S", priority=10)], nodes, running).pins
    # only class S jobs preempt
    running = [Running("low", "a", 4.0, GIB, priority=0)]
    assert not plan_preemptions([job("u", cpu=2, sla="A", priority=10)], nodes, running).pins


def test_no_preemption_when_the_job_fits() -> None:
    nodes = [full("a"), Node("idle", cpu=4, memory=8 * GIB)]
    running = [Running("low", "a", 4.0, GIB, priority=0)]
    assert not plan_preemptions([job("u", cpu=2, sla="S", priority=9)], nodes, running).pins


def test_sim_sla_s_on_time_at_70_percent_load() -> None:
    (rec,) = simulate(["least-loaded"], SimConfig(jobs=400, nodes=20, load=0.7, seed=1))
    assert rec.completed == 400
    assert rec.on_time["S"] >= 95.0
    assert 0.45 <= rec.utilization["cpu"] <= 0.95  # near the offered 70%
    assert rec.makespan > 0 and rec.mean_wait >= 0


def test_sim_failures_restart_jobs_and_are_reproducible() -> None:
    cfg = SimConfig(jobs=300, nodes=10, load=0.6, mtbf=300.0, mttr=60.0, seed=2)
    a = simulate(["ffd", "round-robin"], cfg)
    b = simulate(["ffd", "round-robin"], cfg)
    assert [r.to_dict() | {"schedule_ms": 0} for r in a] == [
        r.to_dict() | {"schedule_ms": 0} for r in b
    ]
    assert all(r.node_failures > 0 and r.restarts > 0 for r in a)
    assert all(r.completed == 300 for r in a)
    assert a[0].node_failures == a[1].node_failures  # the same failures for each


def test_sim_overload_preempts_for_sla_s() -> None:
    cfg = SimConfig(jobs=400, nodes=8, load=1.4, seed=3, mtbf=1e9)
    with_pre = simulate(["greedy-latency"], cfg)[0]
    cfg.preempt = False
    without = simulate(["greedy-latency"], cfg)[0]
    assert with_pre.preemptions > 0 and without.preemptions == 0
    assert with_pre.on_time["S"] >= without.on_time["S"]
