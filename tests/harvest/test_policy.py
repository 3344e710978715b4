"""The eligibility core: rules, hysteresis, back-off, absent vs unknown sensors."""

from __future__ import annotations

from datetime import time as dtime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fogctl.errors import InvalidInput
from fogctl.harvest.policy import (
    DEFAULTS,
    Memory,
    Policy,
    evaluate,
    in_hours,
    parse_duration,
    parse_field,
    parse_percent,
    policy_from,
)
from fogctl.harvest.sensors import ABSENT, UNKNOWN, Reading, Readings

NOON = dtime(12, 0)


def ok(v: object) -> Reading:
    return Reading(v, "ok", "test")


def readings(**kw: object) -> Readings:
    base = dict(
        battery_percent=ok(90.0),
        charging=ok(False),
        on_ac=ok(False),
        temperature=ok(40.0),
        cpu_other=ok(5.0),
        idle_seconds=ok(1000.0),
        metered=ok(False),
    )
    base.update(kw)
    return Readings(**base)  # type: ignore[arg-type]


def rule(decision: object, name: str) -> str:
    return next(r.result for r in decision.rules if r.rule == name)  # type: ignore[attr-defined]


def test_defaults_match_the_seed_and_boinc() -> None:
    assert DEFAULTS.min_battery == 50
    assert DEFAULTS.max_temp == 70
    assert DEFAULTS.max_other_cpu == 25
    assert DEFAULTS.idle == 300
    assert DEFAULTS.mem_busy == 50 and DEFAULTS.mem_idle == 90


def test_all_pass_is_eligible() -> None:
    d = evaluate(DEFAULTS, readings(), Memory(), 1000.0, NOON)
    assert d.eligible and d.state == "eligible"
    assert d.memory.eligible and d.memory.since == 1000.0


def test_battery_hysteresis_start_and_stop_thresholds_differ() -> None:
    low = readings(battery_percent=ok(52.0))
    # not running: needs 55 to start
    d = evaluate(DEFAULTS, low, Memory(), 0.0, NOON)
    assert not d.eligible and rule(d, "battery") == "fail"
    # running: 52 >= 50 keeps going (no flapping around 50)
    d = evaluate(DEFAULTS, low, Memory(True, 0.0, 0.0), 10.0, NOON)
    assert d.eligible
    d = evaluate(DEFAULTS, readings(battery_percent=ok(49.0)), Memory(True, 0, 0), 20.0, NOON)
    assert not d.eligible and "battery" in d.reasons[0]


def test_charging_passes_whatever_the_level() -> None:
    d = evaluate(DEFAULTS, readings(battery_percent=ok(10.0), charging=ok(True)), Memory(), 0, NOON)
    assert rule(d, "battery") == "pass" and d.eligible


def test_stop_holds_for_minimum_backoff() -> None:
    pol = policy_from({"min_backoff": "2m"})
    d = evaluate(pol, readings(temperature=ok(71.0)), Memory(True, 0, 0), 100.0, NOON)
    assert not d.eligible and d.memory.backoff_until == 220.0
    # cool again 60 s later: still held
    d2 = evaluate(pol, readings(temperature=ok(50.0)), d.memory, 160.0, NOON)
    assert not d2.eligible and d2.state == "backoff" and rule(d2, "backoff") == "fail"
    d3 = evaluate(pol, readings(temperature=ok(50.0)), d2.memory, 221.0, NOON)
    assert d3.eligible


def test_temperature_hysteresis() -> None:
    assert not evaluate(DEFAULTS, readings(temperature=ok(67.0)), Memory(), 0, NOON).eligible
    assert evaluate(DEFAULTS, readings(temperature=ok(67.0)), Memory(True, 0, 0), 0, NOON).eligible


def test_absent_sensors_never_block_and_are_distinct_from_unknown() -> None:
    r = readings(
        battery_percent=Reading(None, ABSENT),
        charging=Reading(None, ABSENT),
        temperature=Reading(None, ABSENT),
    )
    d = evaluate(DEFAULTS, r, Memory(), 0, NOON)
    assert d.eligible
    assert rule(d, "battery") == "absent" and rule(d, "temperature") == "absent"
    u = readings(temperature=Reading(None, UNKNOWN))
    d = evaluate(DEFAULTS, u, Memory(), 0, NOON)
    assert rule(d, "temperature") == "unknown" and d.eligible
    strict = policy_from({"strict_sensors": True})
    assert not evaluate(strict, u, Memory(), 0, NOON).eligible


def test_owner_activity_and_other_cpu_load_block() -> None:
    assert not evaluate(
        DEFAULTS, readings(idle_seconds=ok(12.0)), Memory(True, 0, 0), 0, NOON
    ).eligible
    assert evaluate(
        policy_from({"idle": 0}), readings(idle_seconds=ok(1.0)), Memory(), 0, NOON
    ).eligible
    assert not evaluate(DEFAULTS, readings(cpu_other=ok(20.0)), Memory(), 0, NOON).eligible
    assert evaluate(DEFAULTS, readings(cpu_other=ok(20.0)), Memory(True, 0, 0), 0, NOON).eligible
    assert not evaluate(
        DEFAULTS, readings(cpu_other=ok(30.0)), Memory(True, 0, 0), 0, NOON
    ).eligible


def test_metered_ac_and_hours() -> None:
    pol = policy_from({"allow_metered": False, "require_ac": True, "hours": "22:00-07:00"})
    d = evaluate(pol, readings(metered=ok(True)), Memory(), 0, dtime(23, 30))
    assert rule(d, "network") == "fail" and rule(d, "ac") == "fail" and rule(d, "hours") == "pass"
    d = evaluate(pol, readings(on_ac=ok(True)), Memory(), 0, NOON)
    assert rule(d, "hours") == "fail" and rule(d, "ac") == "pass"
    assert in_hours("22:00-07:00", dtime(3, 0)) and not in_hours("22:00-07:00", dtime(7, 0))
    assert in_hours("", NOON)


def test_parsers() -> None:
    assert parse_duration("5m") == 300 and parse_duration("90s") == 90 and parse_duration(2) == 2
    assert parse_percent("60%") == 60
    assert parse_field("cpu_limit", "60%") == 60
    for name, bad in [
        ("idle", "soon"),
        ("cpu_limit", "150%"),
        ("cpu_limit", "0"),
        ("hours", "9-5"),
        ("executor", "lxc"),
        ("max_cpus", "1.5"),
        ("nope", 1),
    ]:
        with pytest.raises(InvalidInput):
            parse_field(name, bad)


@given(
    st.lists(st.floats(min_value=0, max_value=100), min_size=2, max_size=40),
)
def test_battery_noise_inside_the_band_never_flaps(levels: list[float]) -> None:
    """Once running, a level that stays within [min, min+hysteresis] never stops work,
    and once stopped, it never starts it: at most one transition for noise in the band."""
    pol = Policy(min_backoff=0)
    band = [50 + (v / 100) * 5 for v in levels]
    mem = Memory(True, 0, 0)
    for i, b in enumerate(band):
        d = evaluate(pol, readings(battery_percent=ok(b)), mem, float(i), NOON)
        assert d.eligible
        mem = d.memory
    mem = Memory(False, 0, 0)
    for i, b in enumerate(band):
        d = evaluate(pol, readings(battery_percent=ok(min(b, 54.9))), mem, float(i), NOON)
        assert not d.eligible
        mem = d.memory
