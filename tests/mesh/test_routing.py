"""Routers: RFC 6693 PRoPHET arithmetic, spray-and-wait halving, flooding TTL, and a
small simulation where the routers' ordering must hold."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from fogctl.errors import InvalidInput
from fogctl.mesh.routing import (
    Carried,
    Decision,
    Epidemic,
    Flooding,
    Prophet,
    ProphetParams,
    SprayAndWait,
    make_router,
)
from fogctl.mesh.sim import (
    Contact,
    Message,
    Scenario,
    make_messages,
    random_waypoint,
    read_trace,
    run,
    simulate,
)


def test_prophet_defaults_are_rfc6693() -> None:
    p = ProphetParams()
    assert (p.p_encounter_max, p.p_encounter_first, p.delta, p.beta, p.gamma) == (
        0.7,
        0.5,
        0.01,
        0.9,
        0.999,
    )


def test_prophet_encounter_first_then_eq1() -> None:
    a = Prophet("a", ProphetParams(i_typ=100, time_unit=1e9))
    a.contact_up("b", 0.0)
    assert a.p["b"] == 0.5  # P_encounter_first
    a.contact_up("b", 200.0)  # interval >= I_typ: P_enc = P_encounter_max
    assert a.p["b"] == pytest.approx(0.5 + (1 - 0.01 - 0.5) * 0.7)
    old = a.p["b"]
    a.contact_up("b", 250.0)  # half of I_typ: P_enc = 0.35
    assert a.p["b"] == pytest.approx(old + (1 - 0.01 - old) * 0.35)
    assert a.p["b"] < 1 - 0.01


def test_prophet_aging_and_transitivity() -> None:
    a = Prophet("a", ProphetParams(time_unit=10))
    a.contact_up("b", 0.0)
    a.age(100.0)  # K = 10
    assert a.p["b"] == pytest.approx(0.5 * 0.999**10)
    pab = a.p["b"]
    a.learn("b", {"c": 0.8, "a": 0.9}, 100.0)
    assert a.p["c"] == pytest.approx(pab * 0.8 * 0.9)
    assert "a" not in a.p
    a.learn("b", {"c": 0.1}, 100.0)  # max(): never lowered by transitivity
    assert a.p["c"] == pytest.approx(pab * 0.8 * 0.9)


def test_prophet_grtr_strategies() -> None:
    item = Carried("m", "d")
    for strategy in ("grtr", "grtr+", "gtmx"):
        a = Prophet("a", ProphetParams(strategy=strategy, nf_max=1))
        a.p["d"] = 0.3
        a.learn("b", {"d": 0.2}, 0.0)
        assert a.decide(Carried("m", "d"), "b", 0.0) is None  # worse than me
        a.learn("c", {"d": 0.6}, 0.0)
        it = Carried("m", "d")
        assert a.decide(it, "c", 0.0) == Decision(1, 1)
        a.learn("e", {"d": 0.5}, 0.0)
        got = a.decide(it, "e", 0.0)
        # grtr forwards to any better node; grtr+ only beyond the best so far; gtmx
        # stops after nf_max forwards
        assert (got is not None) == (strategy == "grtr")
        assert a.decide(item, "d", 0.0) == Decision(1, 0)  # destination: always


def test_spray_and_wait_binary_halving() -> None:
    r = SprayAndWait("a", copies=8)
    it = Carried("m", "d", copies=r.initial_copies())
    assert r.decide(it, "x", 0) == Decision(4, 4)
    assert r.decide(Carried("m", "d", copies=3), "x", 0) == Decision(1, 2)
    assert r.decide(Carried("m", "d", copies=1), "x", 0) is None  # wait phase
    assert r.decide(Carried("m", "d", copies=1), "d", 0) == Decision(1, 0)


def test_flooding_ttl_and_window_and_epidemic() -> None:
    f = Flooding("a", ttl=2, window=60)
    assert f.decide(Carried("m", "d", hops=1, received_at=0), "x", 30) is not None
    assert f.decide(Carried("m", "d", hops=2, received_at=0), "x", 30) is None
    assert f.decide(Carried("m", "d", hops=0, received_at=0), "x", 61) is None
    assert Epidemic("a").decide(Carried("m", "d"), "x", 0) == Decision(1, 1)
    with pytest.raises(ValueError):
        make_router("nope", "a")


def test_small_simulation_orders_routers() -> None:
    rng = random.Random(7)
    contacts = random_waypoint(15, duration=1800, rng=rng, width=400, height=400, range_m=40)
    msgs = make_messages(15, duration=1800, interval=30, lifetime=1800, rng=random.Random(8))
    sc = Scenario(15, contacts, msgs, 3600, 7)
    res = {r: simulate(sc, r) for r in ("epidemic", "prophet", "spray", "direct", "flooding")}
    assert res["epidemic"].delivery_ratio >= res["direct"].delivery_ratio
    assert res["epidemic"].delivery_ratio >= max(r.delivery_ratio for r in res.values()) - 1e-9
    assert res["direct"].overhead == 0.0
    assert res["spray"].overhead is not None and res["epidemic"].overhead is not None
    assert res["spray"].overhead < res["epidemic"].overhead
    assert res["prophet"].overhead < res["epidemic"].overhead  # type: ignore[operator]
    assert res["epidemic"].transmissions <= len(msgs) * 14  # summary vectors: one copy/node
    small = simulate(sc, "epidemic", buffer=2)
    assert small.dropped > 0 and small.delivery_ratio < res["epidemic"].delivery_ratio


def test_trace_file_contacts(tmp_path: Path) -> None:
    trace = tmp_path / "t.txt"
    trace.write_text(
        "# ONE format\n0 CONN a b up\n10 CONN a b down\n20 CONN b c up\n30 CONN b c down\n"
    )
    n, contacts = read_trace(trace)
    assert n == 3 and len(contacts) == 4
    recs = run(["epidemic", "direct"], trace=trace, duration=40, interval=5, lifetime=20, seed=3)
    assert recs[0].nodes == 3
    with pytest.raises(InvalidInput, match="cooldown"):
        run(["direct"], trace=trace, duration=40, interval=5, lifetime=100)
    trace.write_text("0 CONN a b sideways\n")
    with pytest.raises(InvalidInput, match=r"t\.txt:1"):
        read_trace(trace)


def test_measurement_window_counts_only_messages_with_their_whole_lifetime() -> None:
    """ONE-style counting: messages made in the last lifetime are made (same load) but
    not counted; transfers of uncounted messages are not counted either."""
    # a and b meet only at t=50..60; c never meets anyone
    contacts = [Contact(50, 0, 1, True), Contact(60, 0, 1, False)]
    msgs = [
        Message("early", 10, 0, 1, 100),  # delivered at 50
        Message("lost", 20, 0, 2, 100),  # c is never met: counted, undelivered
        Message("late", 55, 0, 1, 100),  # made in the cool-down: delivered, not counted
    ]
    whole = simulate(Scenario(3, contacts, msgs, 200), "epidemic")
    assert (whole.messages, whole.delivered, whole.transmissions) == (3, 2, 3)
    sc = Scenario(3, contacts, msgs, 200, measure=(0, 50))
    rec = simulate(sc, "epidemic")
    assert (rec.messages, rec.delivered, rec.delivery_ratio) == (2, 1, 0.5)
    # counted transfers: early (delivery) and lost (relayed to b): overhead (2-1)/1
    assert rec.transmissions == 2 and rec.overhead == 1.0
    assert rec.generated == 3 and rec.delivery_ratio_all == round(2 / 3, 4)
    assert rec.latency_median_s == 40.0 and rec.cooldown_s == 150.0


def test_issue_scenario_cooldown_is_one_lifetime() -> None:
    recs = run(["direct"], nodes=6, duration=600, interval=20, lifetime=200, seed=2)
    r = recs[0]
    assert r.cooldown_s == 200 and r.warmup_s == 0
    assert 0 < r.messages < r.generated
