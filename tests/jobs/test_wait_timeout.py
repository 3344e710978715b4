"""fogctl jobs wait --timeout (giving up waiting never stops the jobs) and the
jobs.concurrency bound on jobs running at once."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from fogctl.jobs import engine, parse_spec
from fogctl.state import State
from tests.jobs.conftest import EXAMPLES, WASI_EXIT, WASM_SPIN, poll


def test_timeout_gives_up_but_the_job_runs_on(cli, wat: Callable[[str, str], str]) -> None:
    # recorded but never run here: no runner owns it (as after a crash of fogctl)
    spec = parse_spec(
        {"metadata": {"name": "spin"}, "wasm": wat("spin", WASM_SPIN), "activeDeadlineSeconds": 30}
    )
    engine.submit(State(), [spec])
    start = time.monotonic()
    res = cli("jobs", "wait", "--timeout", "0.5", "spin", "--json")
    took = time.monotonic() - start
    assert res.code == 1
    assert 0.5 <= took < 5
    assert "timed out after 0.5 s: 1 job(s) not finished (spin); they keep running" in res.stderr
    assert "Traceback" not in res.stderr
    (error,) = [json.loads(x) for x in res.stderr.splitlines() if x.startswith("{")]
    assert (error["kind"], error["code"]) == ("error", "timeout")
    assert [r["state"] for r in res.records()][:1] == ["pending"]
    try:
        # a detached runner took it over: it runs after the wait gave up
        poll(lambda: engine.get_job(State(), "spin").state == "running", timeout=15)
    finally:
        engine.cancel(State(), ["spin"])
    final = poll(
        lambda: (r := engine.get_job(State(), "spin")).state == "cancelled" and r, timeout=15
    )
    assert final.reason == "stopped"


def test_timeout_returns_as_soon_as_jobs_end(cli, wat: Callable[[str, str], str]) -> None:
    ok = parse_spec({"metadata": {"name": "hello"}, "wasm": str(EXAMPLES / "hello.wat")})
    bad = parse_spec(
        {"metadata": {"name": "bad"}, "wasm": wat("bad", WASI_EXIT.replace("CODE", "3"))}
    )
    engine.submit(State(), [ok, bad])
    start = time.monotonic()
    res = cli("jobs", "wait", "--timeout", "60", "hello", "bad", "--json")
    assert time.monotonic() - start < 30
    assert res.code == 1  # one job failed: not a timeout
    assert "timed out" not in res.stderr
    final = {r["id"]: r for r in res.records()}
    assert final["hello"]["state"] == "succeeded"
    assert (final["bad"]["state"], final["bad"]["exit_code"]) == ("failed", 3)
    assert cli("jobs", "wait", "--timeout", "0", "hello").code == 0  # already ended


def test_timeout_refuses_unknown_jobs_and_negative_values(cli) -> None:
    res = cli("jobs", "wait", "--timeout", "1", "nope")
    assert res.code == 2 and "no such job: nope" in res.stderr
    assert cli("jobs", "wait", "--timeout", "-1", "nope").code == 2


def _max_overlap(rows: list[dict[str, object]]) -> int:
    """The most jobs running at once, from their running/terminal events."""
    edges = []
    for job_events in rows:
        start = next(e["at"] for e in job_events if e["state"] == "running")
        end = next(e["at"] for e in job_events if e["state"] == "deadline-exceeded")
        edges += [(start, 1), (end, -1)]
    now = peak = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):  # ends before starts
        now += step
        peak = max(peak, now)
    return peak


def test_concurrency_setting_bounds_running_jobs(
    cli, write_spec, wat: Callable[[str, str], str], monkeypatch
) -> None:
    monkeypatch.setenv("FOGCTL_JOBS_CONCURRENCY", "2")  # the jobs.concurrency setting
    spin = wat("spin", WASM_SPIN)
    names = [f"s{i}" for i in range(6)]
    spec = write_spec(
        "---\n".join(
            f"metadata: {{name: {n}}}\nwasm: {spin}\nactiveDeadlineSeconds: 0.2\n" for n in names
        )
    )
    res = cli("submit", str(spec), "--wait", "--json")
    assert res.code == 1  # every job ran out of time, by design
    assert {r["state"] for r in res.records() if r["id"] in names} >= {"deadline-exceeded"}
    rows = [engine.events(State(), n) for n in names]
    assert _max_overlap(rows) == 2
