"""Fuzz the record reader and the node checks: any input plans or fails cleanly."""

from __future__ import annotations

import io
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fogctl.errors import InvalidInput
from fogctl.records import NodeRecord
from fogctl.schedule.engine import load_nodes, schedule
from fogctl.schedule.model import node_from_record

from .conftest import job

numbers = st.one_of(
    st.none(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
    st.text(max_size=5),
)
node_dicts = st.fixed_dictionaries(
    {"kind": st.just("node"), "id": st.text(min_size=1, max_size=8)},
    optional={
        "cpu": numbers,
        "memory": numbers,
        "cpu_util": numbers,
        "memory_util": numbers,
        "latency_ms": numbers,
        "trust": numbers,
        "cost": numbers,
        "price": numbers,
        "bid": st.one_of(st.sampled_from(["spot", "on-demand", "reserved"]), st.text(max_size=4)),
        "tier": st.one_of(st.sampled_from(["basic", "standard", "premium"]), numbers),
        "region": st.one_of(st.text(max_size=4), numbers),
        "battery": numbers,
        "temperature_c": numbers,
        "extra": numbers,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_reader_parses_or_raises_invalid_input(text: str) -> None:
    try:
        recs = load_nodes(io.StringIO(text))
    except InvalidInput as exc:
        assert "\n" not in str(exc)
        return
    assert all(isinstance(r, NodeRecord) for r in recs)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(node_dicts, min_size=1, max_size=4))
def test_node_records_plan_or_fail_cleanly(objs: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(o) + "\n" for o in objs)
    try:
        recs = load_nodes(io.StringIO(text))
        for r in recs:
            node_from_record(r)
        plan = schedule(recs, [job("a", cpu=0.5, mem_gib=0.25)], algorithm="least-loaded")
    except InvalidInput as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    (rec,) = plan.assignments
    assert rec.node in {r.id for r in recs}


assignment_dicts = st.fixed_dictionaries(
    {"kind": st.just("assignment"), "job": st.text(max_size=8)},
    optional={
        "node": st.one_of(st.none(), st.text(max_size=6), numbers),
        "order": numbers,
        "preempts": st.one_of(st.lists(st.text(max_size=4), max_size=2), numbers),
        "unplaced": st.one_of(st.none(), st.text(max_size=6)),
        "spec": st.one_of(
            st.none(),
            numbers,
            st.fixed_dictionaries(
                {"metadata": st.fixed_dictionaries({"name": st.text(max_size=6)})},
                optional={
                    "image": st.text(max_size=6),
                    "resources": st.fixed_dictionaries(
                        {"requests": st.fixed_dictionaries({}, optional={"cpu": numbers})}
                    ),
                    "priorityClassName": st.one_of(st.text(max_size=6), numbers),
                },
            ),
        ),
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(assignment_dicts, min_size=1, max_size=3))
def test_running_plans_load_or_fail_cleanly(objs: list[dict[str, Any]]) -> None:
    """--running reads a previous plan's assignment records: whatever they hold, the
    reader returns running jobs on nodes or raises one clean InvalidInput line."""
    from fogctl.schedule.engine import load_running

    text = "".join(json.dumps(o) + "\n" for o in objs)
    try:
        running = load_running(io.StringIO(text))
    except InvalidInput as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert all(r.node and r.cpu >= 0 for r in running)
