"""Partitioning: split an indexed job into chunks, merge the chunks' results.

Like Slurm array jobs and Kubernetes Indexed Jobs: a job covers an index range
(``--range START:END``, else ``0:completions`` from the spec, else the range in the
spec's env ``FOGCTL_INDEX_START``/``FOGCTL_INDEX_END``), and ``split`` writes N
job files, chunk k covering ``[start_k, end_k)``, named ``NAME-k``. Each chunk gets the
environment ``FOGCTL_INDEX_START``, ``FOGCTL_INDEX_END`` (exclusive), ``FOGCTL_CHUNK``
and ``FOGCTL_CHUNKS``; a WASM module exporting mutable globals ``index_start`` and
``index_end`` gets them set too (before its first run, not on resume).

``merge NAME`` gathers the finished chunk tasks of the harvest queue in index order:
their result values and their outputs concatenated; a missing or unfinished chunk is
an error naming it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from fogctl.errors import InvalidInput, OperationFailed
from fogctl.harvest import queue
from fogctl.harvest.records import ChunkRecord, MergeRecord
from fogctl.state import State, write_atomic

__all__ = ["chunk_bounds", "merge", "parse_range", "split"]


def parse_range(text: str) -> tuple[int, int]:
    m = re.match(r"^\s*(-?\d+)\s*[:-]\s*(-?\d+)\s*$", text)
    if not m:
        raise InvalidInput(f"--range: expected START:END (END exclusive), got {text!r}")
    a, b = int(m.group(1)), int(m.group(2))
    if b <= a:
        raise InvalidInput(f"--range: END ({b}) must be greater than START ({a})")
    return a, b


def chunk_bounds(start: int, end: int, chunks: int) -> list[tuple[int, int]]:
    """N contiguous, non-empty ranges covering [start, end); sizes differ by at most 1."""
    n = end - start
    if chunks < 1:
        raise InvalidInput("--chunks: must be at least 1")
    if chunks > n:
        raise InvalidInput(f"--chunks: {chunks} chunks for {n} indices would leave some empty")
    base, extra = divmod(n, chunks)
    out = []
    lo = start
    for k in range(chunks):
        hi = lo + base + (1 if k < extra else 0)
        out.append((lo, hi))
        lo = hi
    return out


def _load_one(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read: {exc.strerror}") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise InvalidInput(f"{where}: invalid YAML") from None
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise InvalidInput(f"{path}: expected exactly one job spec mapping")
    return docs[0]


def _name(doc: dict[str, Any], path: Path) -> str:
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else doc.get("name")
    if not name:
        raise InvalidInput(f"{path}: the job needs metadata.name")
    return str(name)


def _default_range(doc: dict[str, Any], path: Path) -> tuple[int, int]:
    """``0:completions``, else the range the whole job covers (its env's
    FOGCTL_INDEX_START and FOGCTL_INDEX_END, which it also runs with unsplit)."""
    comp = doc.get("completions")
    if isinstance(comp, int) and not isinstance(comp, bool) and comp >= 1:
        return 0, comp
    env = doc.get("env")
    if isinstance(env, dict) and "FOGCTL_INDEX_END" in env:
        text = f"{env.get('FOGCTL_INDEX_START', 0)}:{env['FOGCTL_INDEX_END']}"
        try:
            return parse_range(text)
        except InvalidInput as exc:
            raise InvalidInput(f"{path}: env FOGCTL_INDEX_START/END: {exc.message}") from None
    raise InvalidInput(
        f"{path}: give --range START:END, or 'completions: N' or env FOGCTL_INDEX_START/"
        "FOGCTL_INDEX_END in the job"
    )


def split(
    path: Path, chunks: int, outdir: Path, index_range: tuple[int, int] | None = None
) -> list[ChunkRecord]:
    doc = _load_one(path)
    name = _name(doc, path)
    if index_range is None:
        index_range = _default_range(doc, path)
    bounds = chunk_bounds(index_range[0], index_range[1], chunks)
    base = path.parent.resolve()
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(f"{outdir}: cannot create: {exc.strerror}") from None
    out: list[ChunkRecord] = []
    for k, (lo, hi) in enumerate(bounds):
        chunk = {key: v for key, v in doc.items() if key not in ("completions", "parallelism")}
        meta = dict(doc.get("metadata") or {})
        meta["name"] = f"{name}-{k}"
        chunk["metadata"] = meta
        chunk.pop("name", None)
        if isinstance(chunk.get("wasm"), str) and not Path(chunk["wasm"]).is_absolute():
            chunk["wasm"] = str(base / chunk["wasm"])
        env = dict(chunk.get("env") or {})
        env.update(
            FOGCTL_INDEX_START=str(lo),
            FOGCTL_INDEX_END=str(hi),
            FOGCTL_CHUNK=str(k),
            FOGCTL_CHUNKS=str(chunks),
        )
        chunk["env"] = env
        try:
            from fogctl.jobs import parse_spec
        except ImportError:  # pragma: no cover - the jobs package ships with fogctl
            pass
        else:
            parse_spec(chunk, where=f"{path} (chunk {k})")
        dest = outdir / f"{name}-{k}.yaml"
        write_atomic(dest, yaml.safe_dump(chunk, sort_keys=False).encode())
        out.append(ChunkRecord(name, k, chunks, lo, hi, str(dest)))
    return out


def merge(state: State, name: str, output: Path | None = None) -> MergeRecord:
    tasks = queue.list_tasks(state)
    pat = re.compile(rf"^{re.escape(name)}-(\d+)$")
    chunks: dict[int, Any] = {}
    total: int | None = None
    for t in tasks:
        m = pat.match(t.name)
        if not m:
            continue
        k = int(m.group(1))
        spec = queue.task_spec(state, t.id)
        n = spec.get("env", {}).get("FOGCTL_CHUNKS")
        if n is not None:
            total = int(n)
        # a re-queued chunk may appear twice: a finished one wins
        if k not in chunks or t.state == "done":
            chunks[k] = t
    if not chunks:
        raise InvalidInput(f"no harvest tasks named {name}-N in the queue")
    total = total or (max(chunks) + 1)
    missing = [k for k in range(total) if k not in chunks or chunks[k].state != "done"]
    if missing:
        states = ", ".join(f"{k}:{chunks[k].state if k in chunks else 'absent'}" for k in missing)
        raise OperationFailed(f"{name}: chunks not finished: {states}")
    import json

    results = [json.loads(chunks[k].result) if chunks[k].result else None for k in range(total)]
    if output is not None:
        data = b"".join(
            state.blobs.get(chunks[k].output) if chunks[k].output else b"" for k in range(total)
        )
        write_atomic(output, data)
    energy = round(sum(chunks[k].energy_j for k in range(total)), 3)
    return MergeRecord(name, total, tuple(results), str(output) if output else None, energy)
