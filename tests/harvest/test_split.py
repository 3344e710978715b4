"""Partitioning: split an index range into chunk jobs, harvest them, merge the results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fogctl.errors import InvalidInput, OperationFailed
from fogctl.harvest import enqueue, merge, queue, run_cycle, split
from fogctl.harvest.partition import chunk_bounds, parse_range
from fogctl.jobs import load_specs
from fogctl.state import State

from .conftest import ROOT, Sensors, expected_sum


@given(st.integers(-1000, 1000), st.integers(1, 5000), st.integers(1, 50))
def test_chunks_cover_the_range_exactly(start: int, n: int, chunks: int) -> None:
    if chunks > n:
        with pytest.raises(InvalidInput):
            chunk_bounds(start, start + n, chunks)
        return
    b = chunk_bounds(start, start + n, chunks)
    assert len(b) == chunks and b[0][0] == start and b[-1][1] == start + n
    assert all(lo < hi for lo, hi in b)
    assert all(b[i][1] == b[i + 1][0] for i in range(chunks - 1))
    sizes = [hi - lo for lo, hi in b]
    assert max(sizes) - min(sizes) <= 1


def test_split_harvest_merge(state: State, sensors: Sensors, tmp_path: Path) -> None:
    out = tmp_path / "chunks"
    recs = split(ROOT / "examples" / "harvest-sum.yaml", 3, out, (10, 300_000_010))
    assert [(r.start, r.end) for r in recs] == [
        (10, 100_000_010),
        (100_000_010, 200_000_010),
        (200_000_010, 300_000_010),
    ]
    specs = [s for r in recs for s in load_specs(r.path)]  # valid fogctl-job(5) files
    assert [s.id for s in specs] == ["harvest-sum-0", "harvest-sum-1", "harvest-sum-2"]
    assert specs[1].env["FOGCTL_INDEX_START"] == "100000010"
    ids = enqueue(state, specs)
    with pytest.raises(OperationFailed, match="not finished"):
        merge(state, "harvest-sum")
    cycle = run_cycle(State(state.root))
    assert sorted(cycle.completed) == sorted(ids)
    m = merge(state, "harvest-sum", tmp_path / "joined.out")
    total = sum(v[0] for v in m.results)
    wrapped = total % 2**64
    assert (wrapped - 2**64 if wrapped >= 2**63 else wrapped) == expected_sum(10, 300_000_010)
    assert m.chunks == 3 and m.energy_j > 0
    assert (tmp_path / "joined.out").exists()
    assert all(queue.get_task(state, i).state == "done" for i in ids)


def test_split_errors(tmp_path: Path) -> None:
    job = tmp_path / "j.yaml"
    job.write_text("metadata: {name: j}\nwasm: m.wasm\n")
    with pytest.raises(InvalidInput, match="--range"):
        split(job, 2, tmp_path)
    job.write_text("metadata: {name: j}\nwasm: m.wasm\ncompletions: 3\n")
    with pytest.raises(InvalidInput, match="empty"):
        split(job, 4, tmp_path)
    recs = split(job, 3, tmp_path / "o")
    assert [(r.start, r.end) for r in recs] == [(0, 1), (1, 2), (2, 3)]
    # no completions: the range the whole job runs with (its env) is the one split
    job.write_text(
        "metadata: {name: j}\nwasm: m.wasm\n"
        "env: {FOGCTL_INDEX_START: '10', FOGCTL_INDEX_END: '16'}\n"
    )
    recs = split(job, 2, tmp_path / "e")
    assert [(r.start, r.end) for r in recs] == [(10, 13), (13, 16)]
    job.write_text("metadata: {name: j}\nwasm: m.wasm\nenv: {FOGCTL_INDEX_END: 'x'}\n")
    with pytest.raises(InvalidInput, match="FOGCTL_INDEX_START/END"):
        split(job, 2, tmp_path / "e")
    job.write_text("metadata: {name: j}\nwasm: m.wasm\nprivileged: true\n")
    with pytest.raises(InvalidInput, match="privileged"):
        split(job, 1, tmp_path / "p", (0, 4))
    job.write_text("a: [\n")
    with pytest.raises(InvalidInput, match=r"j\.yaml"):
        split(job, 1, tmp_path, (0, 4))
    for bad in ("5", "5:5", "a:b"):
        with pytest.raises(InvalidInput):
            parse_range(bad)
    with pytest.raises(InvalidInput, match="no harvest tasks"):
        merge(State(tmp_path / "home"), "nothing")


def test_merge_output_concatenates_in_index_order(
    state: State, sensors: Sensors, tmp_path: Path
) -> None:
    import wasmtime

    ids = []
    for k, word in enumerate(["alpha\n", "beta\n"]):
        data = "".join(f"\\{b:02x}" for b in word.encode())
        wat = tmp_path / f"w{k}.wat"
        wat.write_text(
            '(module (import "wasi_snapshot_preview1" "fd_write"'
            " (func $w (param i32 i32 i32 i32) (result i32)))"
            f' (memory (export "memory") 1) (data (i32.const 0) "{data}")'
            f' (func (export "_start") (i32.store (i32.const 16) (i32.const 0))'
            f" (i32.store (i32.const 20) (i32.const {len(word)}))"
            " (drop (call $w (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 32)))))"
        )
        wasmtime.wat2wasm(wat.read_text())
        ids += enqueue(
            state, [{"name": f"words-{1 - k}", "wasm": str(wat), "env": {"FOGCTL_CHUNKS": "2"}}]
        )
    run_cycle(State(state.root))
    m = merge(state, "words", tmp_path / "all.txt")
    assert (tmp_path / "all.txt").read_text() == "beta\nalpha\n"
    assert json.loads(json.dumps(m.results)) == [[], []]
