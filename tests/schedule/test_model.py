"""The placement model: input checks that name the jobs, partial plans, node records."""

from __future__ import annotations

import pytest

from fogctl.errors import InvalidInput
from fogctl.records import NodeRecord
from fogctl.schedule.model import (
    Running,
    check_problem,
    node_from_record,
    reserve,
    topological_order,
)

from .conftest import GIB, job, node


def nodes(*specs: tuple[str, float, float]) -> list:
    return [node_from_record(node(i, c, m)) for i, c, m in specs]


def test_node_defaults_and_capacity() -> None:
    n = node_from_record(node("a", 8, 16, cpu_util=0.25, memory_util=0.5))
    assert n is not None
    # soft headroom (default): measured cpu use takes no cores away, but counts as busy
    assert n.free_cpu == 8.0 and n.busy_cpu == 2.0 and n.slowdown == 1.125
    # running jobs the scheduler is told about hold their cores
    (held,) = reserve([n], [Running("r", "a", 3.0, GIB), Running("elsewhere", "b", 1.0, GIB)])
    assert held.free_cpu == 5.0 and held.busy_cpu == 3.0
    strict = node_from_record(node("a", 8, 16, cpu_util=0.25, memory_util=0.5), headroom="strict")
    assert strict is not None and strict.free_cpu == 6.0
    # memory is not time-shared: what the node reports in use is never offered
    assert n.free_memory == strict.free_memory == 8 * GIB
    with pytest.raises(InvalidInput, match="--headroom"):
        node_from_record(node("a"), headroom="loose")
    assert n.trust == 0.5 and n.bid == "on-demand" and n.tier == "standard"
    assert node_from_record(NodeRecord(id="x")) is None  # no capacity: not usable


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("trust", 1.5, "trust must be between 0 and 1"),
        ("cpu_util", -0.1, "cpu_util must be between 0 and 1"),
        ("bid", "auction", "bid must be one of"),
        ("tier", "gold", "tier must be one of"),
        ("latency_ms", -3.0, "latency_ms must not be negative"),
        ("price", float("nan"), "price must be a finite number"),
    ],
)
def test_bad_node_fields_name_the_node(field: str, value: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as exc:
        node_from_record(node("n-7", **{field: value}))
    assert "n-7" in str(exc.value)


def test_battery_and_heat_exclude_nodes() -> None:
    low = node_from_record(node("a", battery=0.1))
    hot = node_from_record(node("b", temperature_c=90.0))
    warm = node_from_record(node("c", temperature_c=80.0))
    assert low is not None and not low.accepts_work
    assert hot is not None and not hot.accepts_work
    assert warm is not None and warm.accepts_work and warm.slowdown > 1.0


def test_job_larger_than_any_node_is_named() -> None:
    ns = nodes(("a", 4, 8), ("b", 8, 8))
    jobs = [job("ok"), job("huge", cpu=16), job("fat", mem_gib=64)]
    with pytest.raises(InvalidInput) as exc:
        check_problem(jobs, ns)
    msg = str(exc.value)
    assert "huge" in msg and "fat" in msg and "ok," not in msg
    assert exc.value.hint and "--allow-partial" in exc.value.hint


def test_dependency_cycle_is_named() -> None:
    jobs = [
        job("a", depends_on=("c",)),
        job("b", depends_on=("a",)),
        job("c", depends_on=("b",)),
        job("d"),
    ]
    with pytest.raises(InvalidInput, match="dependency cycle") as exc:
        check_problem(jobs, nodes(("n", 8, 8)))
    msg = str(exc.value)
    assert all(name in msg for name in ("a", "b", "c"))
    assert " d" not in msg


def test_unknown_dependency_and_duplicate_ids() -> None:
    with pytest.raises(InvalidInput, match="unknown job 'zz'"):
        check_problem([job("a", depends_on=("zz",))], nodes(("n", 8, 8)))
    with pytest.raises(InvalidInput, match="duplicate job id"):
        check_problem([job("a"), job("a")], nodes(("n", 8, 8)))


def test_gang_bigger_than_any_region_is_named() -> None:
    ns = [
        node_from_record(node("a", 4, 8, region="eu")),
        node_from_record(node("b", 4, 8, region="us")),
    ]
    jobs = [job("g0", cpu=3, gang="big"), job("g1", cpu=3, gang="big"), job("solo")]
    with pytest.raises(InvalidInput, match="gang big") as exc:
        check_problem(jobs, ns)
    assert "g0" in str(exc.value) and "g1" in str(exc.value)


def test_sla_s_deadline_no_node_can_meet() -> None:
    ns = nodes(("a", 4, 8))
    jobs = [job("fast", sla="S", deadline_seconds=10, estimate_seconds=60)]
    with pytest.raises(InvalidInput, match="SLA-S deadline"):
        check_problem(jobs, ns)
    # only class S deadlines are hard
    check_problem([job("slow", sla="B", deadline_seconds=10, estimate_seconds=60)], ns)


def test_deadline_through_dependencies() -> None:
    jobs = [
        job("a", estimate_seconds=100),
        job("b", sla="S", deadline_seconds=150, estimate_seconds=100, depends_on=("a",)),
    ]
    with pytest.raises(InvalidInput, match="dependencies finish too late"):
        check_problem(jobs, nodes(("n", 8, 8)))


def test_allow_partial_drops_dependents_and_gang() -> None:
    ns = nodes(("a", 4, 8))
    jobs = [
        job("huge", cpu=16),
        job("child", depends_on=("huge",)),
        job("grandchild", depends_on=("child",)),
        job("mate", cpu=1, gang="g"),
        job("mate-huge", cpu=9, gang="g"),
        job("fine"),
    ]
    problem = check_problem(jobs, ns, allow_partial=True)
    assert [j.id for j in problem.jobs] == ["fine"]
    assert "more than any node" in problem.dropped["huge"]
    assert problem.dropped["grandchild"] == "depends on unplaced job child"
    assert "gang g" in problem.dropped["mate"]


def test_running_jobs_make_sla_s_fit() -> None:
    urgent = job("urgent", cpu=4, sla="S", priority=10)
    running = [Running("low", "a", 2.0, GIB, priority=1)]
    for headroom in ("soft", "strict"):
        n = node_from_record(node("a", 4, 8, cpu_util=0.5), headroom=headroom)
        assert n is not None
        (held,) = reserve([n], running)
        with pytest.raises(InvalidInput):
            check_problem([urgent], [held])
        check_problem([urgent], [held], running=running)  # evicting "low" makes room


def test_topological_order_is_stable() -> None:
    jobs = [job("c", depends_on=("a",)), job("a"), job("b"), job("d", depends_on=("c", "b"))]
    order = [jobs[i].id for i in topological_order(jobs)]
    assert order == ["a", "b", "c", "d"]
