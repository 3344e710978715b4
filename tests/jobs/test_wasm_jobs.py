"""The embedded WASM executor and the job engine driven through it (no daemon needed)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from fogctl.jobs import engine, load_specs, parse_spec
from fogctl.jobs.executors import get_executor
from fogctl.state import State
from tests.jobs.conftest import EXAMPLES, WASI_EXIT, WASM_SPIN, poll


def test_readme_main_command(cli) -> None:
    res = cli("submit", str(EXAMPLES / "hello.yaml"), "--wait", "--json")
    assert res.code == 0, res.stderr
    states = [r["state"] for r in res.records()]
    assert states == ["pending", "running", "succeeded"]
    final = res.records()[-1]
    assert final["reason"] == "completed" and final["exit_code"] == 0
    state = State()
    assert state.blobs.get(final["outputs"]["hello.txt"]) == b"hello from a fogctl WASM job\n"
    logs = cli("jobs", "logs", "hello")
    assert logs.stdout == "hello from a fogctl WASM job\n"


def test_same_id_is_not_run_twice(cli) -> None:
    spec = str(EXAMPLES / "hello.yaml")
    assert cli("submit", spec, "--wait", "--json").code == 0
    again = cli("submit", spec, "--wait", "--json")
    assert again.code == 0
    assert [r["attempt"] for r in again.records()] == [1]
    shown = cli("jobs", "show", "hello", "--json").record()
    assert shown["attempt"] == 1 and shown["spec"]["metadata"]["name"] == "hello"


def test_different_spec_same_id_refused(cli, write_spec, wat) -> None:
    assert cli("submit", str(EXAMPLES / "hello.yaml"), "--wait").code == 0
    other = write_spec(
        f"metadata: {{name: hello}}\nwasm: {wat('z', WASI_EXIT.replace('CODE', '0'))}\n"
    )
    res = cli("submit", str(other), "--json")
    assert res.code == 2 and "already exists" in res.stderr


def test_fuel_exhaustion(cli, write_spec, wat) -> None:
    spin = wat("spin", WASM_SPIN)
    spec = write_spec(
        f"metadata: {{name: spin}}\nwasm: {spin}\nresources: {{limits: {{fuel: 200000}}}}\n"
    )
    res = cli("submit", str(spec), "--wait", "--json")
    assert res.code == 1
    final = res.records()[-1]
    assert (final["state"], final["reason"]) == ("failed", "fuel")


def test_deadline_by_epoch_interruption(cli, write_spec, wat) -> None:
    spin = wat("spin", WASM_SPIN)
    spec = write_spec(
        f"metadata: {{name: spin}}\nwasm: {spin}\nactiveDeadlineSeconds: 0.3\nbackoffLimit: 3\n"
    )
    res = cli("submit", str(spec), "--wait", "--json")
    final = res.records()[-1]
    assert res.code == 1
    assert (final["state"], final["reason"], final["attempt"]) == (
        "deadline-exceeded",
        "deadline",
        1,
    )


MEMORY_HOG = """
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    ;; ask for 64 MiB more (1024 pages); a refused grow returns -1
    (if (i32.eq (memory.grow (i32.const 1024)) (i32.const -1))
      (then (call $exit (i32.const 12))))
    (call $exit (i32.const 0))))
"""


def test_memory_cap(cli, write_spec, wat) -> None:
    hog = wat("hog", MEMORY_HOG)
    capped = write_spec(
        f"metadata: {{name: capped}}\nwasm: {hog}\nresources: {{limits: {{memory: 16Mi}}}}\n"
    )
    res = cli("submit", str(capped), "--wait", "--json")
    assert res.records()[-1]["exit_code"] == 12  # the grow was refused
    roomy = write_spec(
        f"metadata: {{name: roomy}}\nwasm: {hog}\nresources: {{limits: {{memory: 128Mi}}}}\n"
    )
    assert cli("submit", str(roomy), "--wait", "--json").code == 0
    big = wat("big", '(module (memory (export "memory") 2048) (func (export "_start")))')
    spec = write_spec(
        f"metadata: {{name: big}}\nwasm: {big}\nresources: {{limits: {{memory: 8Mi}}}}\n"
    )
    final = cli("submit", str(spec), "--wait", "--json").records()[-1]
    assert final["state"] == "failed" and final["reason"] in ("oom", "error")


ESCAPE = """
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "../../../../etc/passwd")
  (data (i32.const 200) "/etc/passwd")
  (func (export "_start")
    (if (i32.eqz (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 22)
                  (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 12)))
      (then (call $exit (i32.const 1))))
    (if (i32.eqz (call $open (i32.const 3) (i32.const 0) (i32.const 200) (i32.const 11)
                  (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 12)))
      (then (call $exit (i32.const 2))))
    ;; fd 4 does not exist: only /work is preopened
    (if (i32.eqz (call $open (i32.const 4) (i32.const 0) (i32.const 200) (i32.const 11)
                  (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 12)))
      (then (call $exit (i32.const 3))))
    (call $exit (i32.const 0))))
"""


def test_sandbox_sees_only_its_work_dir(cli, write_spec, wat) -> None:
    spec = write_spec(f"metadata: {{name: esc}}\nwasm: {wat('esc', ESCAPE)}\n")
    final = cli("submit", str(spec), "--wait", "--json").records()[-1]
    assert (final["state"], final["exit_code"]) == ("succeeded", 0)


def test_retries_with_exponential_backoff(cli, write_spec, wat) -> None:
    fail = wat("fail", WASI_EXIT.replace("CODE", "3"))
    spec = write_spec(f"metadata: {{name: flaky}}\nwasm: {fail}\nbackoffLimit: 2\n")
    res = cli("submit", str(spec), "--wait", "--json")
    assert res.code == 1
    recs = res.records()
    assert [r["state"] for r in recs] == [
        "pending",
        "running",
        "retrying",
        "running",
        "retrying",
        "running",
        "failed",
    ]
    assert recs[-1]["attempt"] == 3 and recs[-1]["exit_code"] == 3
    assert recs[-1]["reason"] == "exit-code"
    ev = engine.events(State(), "flaky")
    from datetime import datetime

    def t(s: str) -> float:
        return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()

    retry_at = [r["retry_at"] for r in recs if r["state"] == "retrying"]
    ends = [e["at"] for e in ev if e["state"] == "retrying"]
    gaps = [t(a) - t(b) for a, b in zip(retry_at, ends, strict=True)]
    assert gaps == [pytest.approx(0.05, abs=0.002), pytest.approx(0.1, abs=0.002)]


def test_checkpoint_resume_wasm(tmp_path: Path) -> None:
    """Stop a counting module mid-way; the next attempt resumes from its checkpoint."""
    state = State()
    (spec,) = load_specs(EXAMPLES / "checkpoint.yaml")
    engine.submit(state, [spec])
    seen: list[str] = []
    ckpt = engine.job_dir(state, "count") / "checkpoint" / "count"

    def cancel_when_counting() -> None:
        poll(lambda: ckpt.exists() and int(ckpt.read_text() or 0) >= 5, timeout=10)
        # Preemption: ask the running attempt to stop (it saves and exits 85).
        ex = get_executor("wasm")
        run = next(iter(ex._runs.values()))  # type: ignore[attr-defined]
        ex.stop(engine.Handle("wasm", next(iter(ex._runs)), "", 0.0), grace=2.0)  # type: ignore[attr-defined]
        assert run is not None

    threading.Thread(target=cancel_when_counting, daemon=True).start()
    final = engine.run_jobs(state, ["count"], on_event=lambda r: seen.append(r.state))
    assert final[0].state == "succeeded"
    assert seen == ["pending", "running", "retrying", "running", "succeeded"]
    log = b"".join(engine.logs(state, "count")).decode()
    start_line = log.splitlines()[0]
    resumed = int(start_line.split()[1])
    assert resumed >= 5, log
    assert log.splitlines()[-1] == "done 40"
    rows = engine.events(state, "count")
    assert any(e["reason"] == "checkpointed" for e in rows)


def test_cancel_running_wasm(tmp_path: Path, wat: Callable[[str, str], str]) -> None:
    state = State()
    spec = parse_spec({"metadata": {"name": "spin"}, "wasm": wat("spin", WASM_SPIN)})
    engine.submit(state, [spec])

    def cancel_later() -> None:
        poll(lambda: engine.get_job(State(), "spin").state == "running")
        engine.cancel(State(), ["spin"])

    threading.Thread(target=cancel_later, daemon=True).start()
    (final,) = engine.run_jobs(state, ["spin"])
    assert (final.state, final.reason) == ("cancelled", "stopped")


def test_dependencies(cli, write_spec, wat) -> None:
    fail = wat("fail", WASI_EXIT.replace("CODE", "1"))
    ok = wat("ok", WASI_EXIT.replace("CODE", "0"))
    spec = write_spec(
        f"metadata: {{name: a}}\nwasm: {fail}\n---\n"
        f"metadata: {{name: b}}\nwasm: {ok}\ndependsOn: [afterok:a]\n---\n"
        f"metadata: {{name: c}}\nwasm: {ok}\ndependsOn: [afternotok:a]\n"
    )
    res = cli("submit", str(spec), "--wait", "--json")
    final = {r["id"]: r for r in res.records()}
    assert final["a"]["state"] == "failed"
    assert (final["b"]["state"], final["b"]["reason"]) == ("failed", "dependency")
    assert final["c"]["state"] == "succeeded"


def test_detached_runner_then_wait(cli) -> None:
    res = cli("submit", str(EXAMPLES / "hello.yaml"), "--json")
    assert res.code == 0 and res.record()["state"] == "pending"
    waited = cli("jobs", "wait", "hello", "--json")
    assert waited.code == 0
    assert waited.records()[-1]["state"] == "succeeded"
    listed = cli("jobs", "ls", "--json").records()
    assert [(r["id"], r["state"]) for r in listed] == [("hello", "succeeded")]


def test_invalid_spec_exit_2_names_line(cli, write_spec) -> None:
    spec = write_spec("metadata: {name: x}\nimage: i\nresources:\n  limits: {memory: 1Pi}\n")
    res = cli("submit", str(spec))
    assert res.code == 2
    assert f"{spec}:4: field 'resources.limits.memory'" in res.stderr
    assert "Traceback" not in res.stderr


def test_docker_unreachable_exit_3(cli, write_spec, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    spec = write_spec("metadata: {name: x}\nimage: fogctl-test/busybox:1\n")
    res = cli("submit", str(spec), "--wait")
    assert res.code == 3
    assert "unix:///nonexistent/docker.sock" in res.stderr
    assert cli("jobs", "ls", "--json").records() == []  # nothing was recorded


def test_submit_harvest_queues(cli) -> None:
    res = cli("submit", "--harvest", str(EXAMPLES / "hello.yaml"), "--json")
    assert res.code == 0, res.stderr
    rec = res.record()
    assert rec["queue"] == "harvest" and rec["id"] == "hello" and rec["ref"]


def test_check_prints_canonical_specs(cli) -> None:
    res = cli("submit", "--check", str(EXAMPLES / "hello.yaml"), "--json")
    rec = res.record()
    assert rec["state"] == "checked" and parse_spec(rec["spec"]).id == "hello"


def test_jsonl_assignments_on_stdin(cli) -> None:
    import json

    spec = {"metadata": {"name": "placed"}, "wasm": str(EXAMPLES / "hello.wat")}
    line = json.dumps({"kind": "assignment", "job": "placed", "node": "n1", "spec": spec})
    res = cli("submit", "-", "--wait", "--json", input=line + "\n")
    assert res.code == 0, res.stderr
    assert res.records()[-1]["node"] == "n1"


def test_logs_follow_a_detached_wasm_job(cli) -> None:
    """A detached runner runs the job; jobs logs -f streams its output live to the end."""
    res = cli("submit", str(EXAMPLES / "checkpoint.yaml"), "--json")
    assert res.code == 0
    logs = cli("jobs", "logs", "-f", "count")
    lines = logs.stdout.splitlines()
    assert lines == ["start 0", "done 40"]
    assert cli("jobs", "show", "count", "--json").record()["state"] == "succeeded"


NAP = """
(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i64.store (i32.const 256) (i64.const 0))
    (i32.store8 (i32.const 264) (i32.const 0))
    (i32.store (i32.const 272) (i32.const 1))
    (i64.store (i32.const 280) (i64.const 150000000))
    (drop (call $poll (i32.const 256) (i32.const 320) (i32.const 1) (i32.const 360)))))
"""


def test_indexed_completions_with_parallelism(cli, write_spec, wat) -> None:
    nap = wat("nap", NAP)
    spec = write_spec(
        f"metadata: {{name: par}}\nwasm: {nap}\ncompletions: 4\nparallelism: 2\n---\n"
        f"metadata: {{name: after}}\nwasm: {nap}\ndependsOn: [afterok:par]\n"
    )
    res = cli("submit", str(spec), "--wait", "--json", "--concurrency", "8")
    assert res.code == 0, res.stderr
    final = {r["id"]: r for r in res.records()}
    assert sorted(final) == ["after", "par-0", "par-1", "par-2", "par-3"]
    assert all(r["state"] == "succeeded" for r in final.values())
    shown = cli("jobs", "show", "par-3", "--json").record()
    assert shown["spec"]["env"]["JOB_COMPLETION_INDEX"] == "3"
    # Never more than 2 of the group at once; "after" starts when all 4 are done.
    from datetime import datetime

    def t(s: str) -> float:
        return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()

    spans = [(t(final[f"par-{i}"]["started"]), t(final[f"par-{i}"]["finished"])) for i in range(4)]
    for start, _ in spans:
        assert sum(1 for s, e in spans if s <= start < e) <= 2
    assert t(final["after"]["started"]) >= max(e for _, e in spans)


def test_assignment_preempts_a_running_job(cli) -> None:
    """An assignment naming a running job in ``preempts`` evicts it: the job saves its
    checkpoint, goes back to retrying (not a failure) and resumes later."""
    import json

    state = State()
    (spec,) = load_specs(EXAMPLES / "checkpoint.yaml")
    engine.submit(state, [spec])
    ckpt = engine.job_dir(state, "count") / "checkpoint" / "count"
    seen: list[tuple[str, str | None]] = []
    runner = threading.Thread(
        target=lambda: engine.run_jobs(
            State(), ["count"], on_event=lambda r: seen.append((r.state, r.reason))
        ),
        daemon=True,
    )
    runner.start()
    poll(lambda: ckpt.exists() and int(ckpt.read_text() or 0) >= 5, timeout=10)
    urgent = {"metadata": {"name": "urgent"}, "wasm": str(EXAMPLES / "hello.wat")}
    line = json.dumps(
        {"kind": "assignment", "job": "urgent", "node": "n1", "preempts": ["count"], "spec": urgent}
    )
    res = cli("submit", "-", "--wait", "--json", input=line + "\n")
    assert res.code == 0, res.stderr
    runner.join(20)
    assert ("retrying", "preempted") in seen
    assert seen[-1] == ("succeeded", "completed")
    rec = engine.get_job(State(), "count")
    assert rec.attempt == 2
    log = b"".join(engine.logs(State(), "count")).decode().splitlines()
    assert int(log[0].split()[1]) >= 5 and log[-1] == "done 40"
