"""The WASM executor's snapshots (checkpoint on interruption) and process isolation.

A snapshot is the instance's exported memories and mutable globals, saved after an epoch
interruption; the next attempt is a fresh instance loaded with them. These tests drive
the real wasmtime: the snapshot file format (round trip, fuzzed), resume to the exact
result after a stop, after SIGTERM at arbitrary points (output never duplicated), after
SIGKILL (the last periodic snapshot), and through ``fogctl submit``'s engine with a
module that declares ``fogctl:snapshot``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fogctl.jobs import engine, parse_spec
from fogctl.jobs.executors import Launch
from fogctl.jobs.executors.wasm import (
    MAGIC,
    WasmExecutor,
    decode_snapshot,
    encode_snapshot,
    output_file,
    read_snapshot_header,
    snapshot_file,
)
from fogctl.state import State
from tests.jobs.conftest import EXAMPLES, poll

SUM_WAT = EXAMPLES / "harvest-sum.wat"


def expected_sum(start: int, end: int) -> int:
    def s(n: int) -> int:  # sum of i*i for i in [0, n)
        return (n - 1) * n * (2 * n - 1) // 6

    v = (s(end) - s(start)) % 2**64
    return v - 2**64 if v >= 2**63 else v


# -- the file format ----------------------------------------------------------------------


def test_snapshot_round_trip() -> None:
    header = {
        "version": 1,
        "memories": [["memory", 3], ["m2", 0]],
        "globals": {"i": 7, "x": 0.5},
        "output_len": 0,
    }
    data = encode_snapshot(header, [b"abc", b""])
    h, mems = decode_snapshot(data)
    assert h == header and mems == {"memory": b"abc", "m2": b""}
    for bad in (data + b"x", data[:-1], data.replace(b'"version": 1', b'"version": 2')):
        with pytest.raises(ValueError):
            decode_snapshot(bad)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_raise_value_error(data: bytes) -> None:
    for blob in (data, MAGIC + data):
        with contextlib.suppress(ValueError):
            decode_snapshot(blob)


@given(st.binary(max_size=64), st.integers(0, 2**64 - 1))
def test_corrupted_headers_raise_value_error(tail: bytes, n: int) -> None:
    with contextlib.suppress(ValueError):
        decode_snapshot(MAGIC + n.to_bytes(8, "big") + tail)


# -- the executor ---------------------------------------------------------------------------


def _sum_spec(start: int, end: int) -> object:
    return parse_spec(
        {
            "metadata": {"name": "sum"},
            "wasm": str(SUM_WAT),
            "env": {"FOGCTL_GLOBAL_index_start": str(start), "FOGCTL_GLOBAL_index_end": str(end)},
        }
    )


def _launch(tmp_path: Path, spec: object, n: int, **kw: object) -> Launch:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return Launch(
        spec,  # type: ignore[arg-type]
        run_id=f"r-{n}",
        workdir=work,
        checkpoint_dir=tmp_path / "ckpt",
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_stop_snapshots_and_a_fresh_instance_resumes_exactly(
    isolation: str, tmp_path: Path
) -> None:
    start, end = 7, 40_000_000_007
    ex = WasmExecutor(isolation=isolation, snapshots=True, snapshot_interval=0.05)
    spec = _sum_spec(start, end)
    h = ex.start(_launch(tmp_path, spec, 1))
    poll(lambda: ex.stats(h).snapshots >= 2, timeout=20)  # it has made progress
    ex.stop(h, grace=3)
    first = ex.wait(h, timeout=10)
    assert first is not None and (first.reason, first.exit_code) == ("checkpointed", 85)
    assert ex.returned(h) is None
    hdr = read_snapshot_header(snapshot_file(tmp_path / "ckpt"))
    assert hdr is not None and start < hdr["globals"]["i"] < end
    assert hdr["globals"]["index_end"] == end  # seeded from FOGCTL_GLOBAL_index_end
    ex.remove(h)

    # resume, and stop it again: it goes on from where it was, never from the start
    h = ex.start(_launch(tmp_path, spec, 2))
    poll(lambda: ex.stats(h).snapshots >= hdr["checkpoints"] + 2, timeout=20)
    ex.stop(h, grace=3)
    assert ex.wait(h, timeout=10).reason == "checkpointed"  # type: ignore[union-attr]
    hdr2 = read_snapshot_header(snapshot_file(tmp_path / "ckpt"))
    assert hdr2 is not None and hdr2["globals"]["i"] > hdr["globals"]["i"]
    ex.remove(h)

    # a short range left: patch the snapshot's end so the test does not run 40e9 steps
    data, mems = decode_snapshot(snapshot_file(tmp_path / "ckpt").read_bytes())
    i = int(data["globals"]["i"])
    data["globals"]["index_end"] = i + 5_000_000
    blobs = [mems[name] for name, _ in data["memories"]]
    snapshot_file(tmp_path / "ckpt").write_bytes(encode_snapshot(data, blobs))
    h = ex.start(_launch(tmp_path, spec, 3))
    final = ex.wait(h, timeout=60)
    assert final is not None and final.ok, final
    # the sum over [start, i) was carried in the snapshot's acc; the rest computed now
    assert ex.returned(h) == [expected_sum(start, i + 5_000_000)]
    assert not snapshot_file(tmp_path / "ckpt").exists()  # done: nothing to resume
    if isolation == "process":
        stats = ex.stats(h)
        assert stats.pid is not None and stats.cpu_seconds is not None


LINES = """
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "x\\n")
  (global $n (export "n") (mut i32) (i32.const 0))
  (func (export "_start")
    (i32.store (i32.const 16) (i32.const 0))
    (i32.store (i32.const 20) (i32.const 2))
    (block $done (loop $l
      (br_if $done (i32.ge_u (global.get $n) (i32.const N)))
      (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 32)))
      (global.set $n (i32.add (global.get $n) (i32.const 1)))
      (br $l)))))
"""


def test_output_is_not_duplicated_across_sigterm_resumes(tmp_path: Path) -> None:
    """A module printing one line per step, stopped at arbitrary points by SIGTERM (the
    signal a dying parent sends: a snapshot then) or SIGKILL (no snapshot: the output
    after the last periodic one is cut on resume) and resumed, prints exactly N lines."""
    n = 100_000
    (tmp_path / "lines.wat").write_text(LINES.replace("N", str(n)))
    spec = parse_spec({"metadata": {"name": "lines"}, "wasm": str(tmp_path / "lines.wat")})
    ex = WasmExecutor(isolation="process", snapshots=True, snapshot_interval=0.02)
    interrupted = 0
    killed = 0
    for attempt, sig in enumerate((signal.SIGTERM, signal.SIGKILL, signal.SIGTERM), 1):
        h = ex.start(_launch(tmp_path, spec, attempt))
        poll(lambda h=h, a=attempt: ex.stats(h).snapshots >= a or ex.wait(h, 0) is not None)
        pid = ex.stats(h).pid
        assert pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        end = ex.wait(h, timeout=10)
        assert end is not None
        killed += end.reason == "lost"
        if end.reason == "checkpointed":
            interrupted += 1
            hdr = read_snapshot_header(snapshot_file(tmp_path / "ckpt"))
            assert hdr is not None and hdr["output_len"] == 2 * hdr["globals"]["n"]
        ex.remove(h)
    h = ex.start(_launch(tmp_path, spec, 9))
    assert ex.wait(h, timeout=60).ok  # type: ignore[union-attr]
    assert output_file(tmp_path / "ckpt").read_bytes() == b"x\n" * n
    assert interrupted >= 1 and killed == 1


def test_sigkill_resumes_from_the_last_periodic_snapshot(tmp_path: Path) -> None:
    ex = WasmExecutor(isolation="process", snapshots=True, snapshot_interval=0.05)
    spec = _sum_spec(0, 10**12)
    h = ex.start(_launch(tmp_path, spec, 1))
    poll(lambda: ex.stats(h).snapshots >= 1, timeout=20)
    pid = ex.stats(h).pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # no chance to save: the last periodic snapshot must do
    end = ex.wait(h, timeout=10)
    assert end is not None and end.reason == "lost" and "SIGKILL" in end.detail
    hdr = read_snapshot_header(snapshot_file(tmp_path / "ckpt"))
    assert hdr is not None and hdr["globals"]["i"] > 0
    i = int(hdr["globals"]["i"])
    # finish quickly: the resumed instance runs to a nearer end
    data, mems = decode_snapshot(snapshot_file(tmp_path / "ckpt").read_bytes())
    data["globals"]["index_end"] = i + 1_000_000
    snapshot_file(tmp_path / "ckpt").write_bytes(
        encode_snapshot(data, [mems[name] for name, _ in data["memories"]])
    )
    h = ex.start(_launch(tmp_path, spec, 2))
    assert ex.wait(h, timeout=60).ok  # type: ignore[union-attr]
    assert ex.returned(h) == [expected_sum(0, i + 1_000_000)]


def test_a_snapshot_of_another_module_is_refused(tmp_path: Path) -> None:
    ex = WasmExecutor(isolation="thread", snapshots=True)
    spec = _sum_spec(0, 10)
    snap = snapshot_file(tmp_path / "ckpt")
    snap.parent.mkdir(parents=True)
    snap.write_bytes(
        encode_snapshot(
            {"version": 1, "module": "0" * 64, "memories": [], "globals": {}, "output_len": 0},
            [],
        )
    )
    h = ex.start(_launch(tmp_path, spec, 1))
    end = ex.wait(h, timeout=10)
    assert end is not None and end.reason == "error" and "another module" in end.detail
    # set aside: a retry starts afresh instead of failing on it again
    assert not snap.exists() and snap.with_name("snapshot.bin.bad").exists()
    h = ex.start(_launch(tmp_path, spec, 2))
    assert ex.wait(h, timeout=10).ok and ex.returned(h) == [expected_sum(0, 10)]  # type: ignore[union-attr]


def _capped_share(ex: WasmExecutor, h: Any) -> float:
    """The CPU share a capped child process gets over 1.5 s, once it has started."""
    import time

    assert ex.stats(h).cpu_cap in ("cgroup-v1", "cgroup-v2", "throttle")
    poll(lambda: (ex.stats(h).cpu_seconds or 0) > 0.05, timeout=20)
    c0, t0 = ex.stats(h).cpu_seconds or 0.0, time.monotonic()
    poll(lambda: time.monotonic() - t0 > 1.5, timeout=5)
    c1, t1 = ex.stats(h).cpu_seconds or 0.0, time.monotonic()
    return (c1 - c0) / (t1 - t0)


def test_process_isolation_caps_cpu_and_memory(tmp_path: Path) -> None:
    """The launch's cpu (cores) and memory apply to a module in a child process."""
    grow = tmp_path / "grow.wat"
    grow.write_text(
        '(module (memory (export "memory") 1 65536)'
        ' (func (export "run") (result i32) (memory.grow (i32.const 1024))))'
    )
    ex = WasmExecutor(isolation="process")
    spec = parse_spec({"metadata": {"name": "grow"}, "wasm": str(grow)})
    h = ex.start(_launch(tmp_path, spec, 1, memory=32 * 2**20))
    assert ex.wait(h, timeout=30).ok and ex.returned(h) == [-1]  # type: ignore[union-attr]
    h = ex.start(_launch(tmp_path, spec, 2, memory=128 * 2**20))
    assert ex.wait(h, timeout=30).ok and ex.returned(h) == [1]  # type: ignore[union-attr]

    h = ex.start(_launch(tmp_path, _sum_spec(0, 10**12), 3, cpu=0.3))
    try:
        assert 0.02 < _capped_share(ex, h) <= 0.4  # 30% cap (+ throttling's catch-up)
    finally:
        ex.stop(h, grace=1)
        ex.wait(h, timeout=10)


def test_default_isolation_enforces_a_fractional_cpu_cap(tmp_path: Path) -> None:
    """``fogctl submit``'s executor (default ``auto``) runs a module capped below one core
    in a capped child process, and a module with a whole core on a thread of its own."""
    ex = WasmExecutor()
    h = ex.start(_launch(tmp_path, _sum_spec(0, 10**12), 1, cpu=0.25))
    try:
        stats = ex.stats(h)
        assert stats.pid is not None and stats.pid != os.getpid()
        assert 0.02 < _capped_share(ex, h) <= 0.35  # 25% cap (+ throttling's catch-up)
    finally:
        ex.stop(h, grace=1)
        ex.wait(h, timeout=10)
    (tmp_path / "whole").mkdir()
    h = ex.start(_launch(tmp_path / "whole", _sum_spec(0, 1000), 2, cpu=1))
    assert ex.wait(h, timeout=30).ok  # type: ignore[union-attr]
    assert ex.stats(h).pid in (None, os.getpid())  # ran on a thread here


def test_bad_module_is_refused_before_a_process_starts(tmp_path: Path) -> None:
    from fogctl.errors import InvalidInput

    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"\0asm\x01\0\0\0garbage")
    spec = parse_spec({"metadata": {"name": "bad"}, "wasm": str(bad)})
    with pytest.raises(InvalidInput, match="not a valid WASM module"):
        WasmExecutor(isolation="process").start(_launch(tmp_path, spec, 1))


# -- fogctl submit: a module that declares the snapshot contract ---------------------------

DECLARED = """
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global (export "fogctl:snapshot") i32 (i32.const 1))
  (global $started (export "started") (mut i32) (i32.const 0))
  (global $i (export "i") (mut i64) (i64.const 0))
  (global $acc (export "acc") (mut i64) (i64.const 0))
  (data (i32.const 100) "s")
  (func $out (param $p i32) (param $l i32)
    (i32.store (i32.const 0) (local.get $p))
    (i32.store (i32.const 4) (local.get $l))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start")
    ;; "s" once per fresh start (print, then record it: no interruption point between)
    (if (i32.eqz (global.get $started))
      (then (call $out (i32.const 100) (i32.const 1)) (global.set $started (i32.const 1))))
    (block $done (loop $l
      (br_if $done (i64.ge_u (global.get $i) (i64.const N)))
      (global.set $acc (i64.add (global.get $acc) (i64.mul (global.get $i) (global.get $i))))
      (global.set $i (i64.add (global.get $i) (i64.const 1)))
      (br $l)))
    (i64.store (i32.const 200) (global.get $acc))
    (call $out (i32.const 200) (i32.const 8))))
"""


def test_submit_preempted_declared_module_resumes_from_its_snapshot(tmp_path: Path) -> None:
    """``fogctl submit``'s default (in-process) executor: a job with a checkpoint whose
    module exports ``fogctl:snapshot`` is snapshotted when preempted and resumed by the
    next attempt; the second attempt's log has no fresh-start mark, only the result."""
    n = 2_500_000_000
    (tmp_path / "declared.wat").write_text(DECLARED.replace("N", str(n)))
    spec = parse_spec(
        {
            "metadata": {"name": "ssum"},
            "wasm": str(tmp_path / "declared.wat"),
            "checkpoint": {"path": "/ckpt", "intervalSeconds": 0.05},
        }
    )
    state = State()
    engine.submit(state, [spec])
    seen: list[tuple[str, str | None]] = []
    runner = threading.Thread(
        target=lambda: engine.run_jobs(
            State(), ["ssum"], on_event=lambda r: seen.append((r.state, r.reason))
        ),
        daemon=True,
    )
    runner.start()
    snap = snapshot_file(engine.job_dir(state, "ssum") / "checkpoint")

    def progressed() -> bool:
        hdr = read_snapshot_header(snap)
        return hdr is not None and hdr["globals"]["i"] > 0

    poll(progressed, timeout=20)
    assert engine.preempt(State(), ["ssum"]) == ["ssum"]
    runner.join(60)
    assert not runner.is_alive()
    assert ("retrying", "preempted") in seen and seen[-1] == ("succeeded", "completed")
    rec = engine.get_job(State(), "ssum")
    assert rec.attempt == 2
    log = b"".join(engine.logs(State(), "ssum"))
    assert log == struct.pack("<q", expected_sum(0, n))  # resumed: no "s" this attempt
