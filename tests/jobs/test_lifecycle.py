"""The lifecycle table and the pure next-state rules."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fogctl.errors import InvalidInput, StateError
from fogctl.jobs import lifecycle as lc
from fogctl.jobs import load_specs
from fogctl.jobs.executors.base import REASONS, Exit


def test_backoff_is_exponential_and_capped() -> None:
    assert [lc.backoff_delay(n) for n in range(1, 8)] == [10, 20, 40, 80, 160, 320, 360]
    assert lc.backoff_delay(0) == 0 and lc.backoff_delay(10**6) == 360


def test_illegal_transitions_raise() -> None:
    lc.check_transition("j", "pending", "running")
    for old, new in [("succeeded", "running"), ("pending", "succeeded"), ("running", "pending")]:
        with pytest.raises(StateError, match=f"cannot go from {old} to {new}"):
            lc.check_transition("j", old, new)
    assert set(lc.TRANSITIONS) == set(lc.STATES)
    assert lc.TRANSITIONS["succeeded"] == frozenset()
    assert all(lc.TRANSITIONS[s] <= {"pending"} for s in lc.TERMINAL)


@pytest.mark.parametrize(
    ("exit", "failures", "limit", "state", "counted"),
    [
        (Exit("completed", 0), 0, 0, "succeeded", 0),
        (Exit("checkpointed", 85), 0, 0, "retrying", 0),
        (Exit("deadline"), 0, 5, "deadline-exceeded", 0),
        (Exit("stopped"), 0, 5, "cancelled", 0),
        (Exit("exit-code", 1), 0, 0, "failed", 1),
        (Exit("oom", 137), 0, 1, "retrying", 1),
        (Exit("oom", 137), 1, 1, "failed", 2),
        (Exit("rejected"), 0, 5, "failed", 1),
    ],
)
def test_decide(exit: Exit, failures: int, limit: int, state: str, counted: int) -> None:
    d = lc.decide(exit, failures=failures, backoff_limit=limit, base=10)
    assert (d.state, d.failures) == (state, counted)
    if state == "retrying" and exit.reason != "checkpointed":
        assert d.delay == 10 * 2 ** (counted - 1)


@given(st.sampled_from(REASONS), st.integers(0, 50), st.integers(0, 100))
def test_decide_always_moves_along_the_table(reason: str, failures: int, limit: int) -> None:
    d = lc.decide(Exit(reason), failures=failures, backoff_limit=limit)
    lc.check_transition("j", "running", d.state)
    assert d.failures >= failures and d.delay >= 0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.dictionaries(st.text(max_size=6), st.integers() | st.text(max_size=6), max_size=4),
        max_size=4,
    )
)
def test_fuzz_json_lines_parse_or_invalid(objs: list[dict[str, object]]) -> None:
    text = "".join(json.dumps(o) + "\n" for o in objs)
    with contextlib.suppress(InvalidInput):
        load_specs(io.StringIO(text))
