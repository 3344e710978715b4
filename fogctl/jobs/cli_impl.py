"""What the ``fogctl submit`` and ``fogctl jobs`` commands do, as plain functions
(the Typer modules in ``cli/`` only parse options and call these)."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from fogctl.cli import output
from fogctl.errors import InvalidInput, ServiceUnavailable
from fogctl.jobs import lifecycle as lc
from fogctl.jobs.records import JobRecord
from fogctl.jobs.spec import JobSpec, load_specs
from fogctl.state import State

__all__ = ["load_all", "submit_command", "wait_command"]


def load_all(sources: Iterable[str]) -> list[JobSpec]:
    """Every spec from every source; all are validated before any is used."""
    specs: list[JobSpec] = []
    seen: dict[str, str] = {}
    sources = list(sources)
    if sources.count("-") > 1:
        raise InvalidInput("stdin (-) can be read only once")
    for src in sources:
        for spec in load_specs(src):
            if spec.id in seen:
                raise InvalidInput(f"{src}: job {spec.id!r} is also in {seen[spec.id]}")
            seen[spec.id] = src
            specs.append(spec)
    if not specs:
        raise InvalidInput(f"{', '.join(sources)}: no job specs found")
    return specs


def _stream(rec: JobRecord) -> None:
    if output.current().json_lines:
        output.write_json_line(rec)
    else:
        output.emit_stream([rec])


def submit_command(
    state: State,
    sources: list[str],
    *,
    wait: bool = False,
    executor: str | None = None,
    concurrency: int | None = None,
    retry: bool = False,
    harvest: bool = False,
    check: bool = False,
) -> int:
    specs = load_all(sources)
    if check:
        output.emit(
            JobRecord(
                id=s.id, state="checked", executor=executor or s.executor, node=s.node, spec=s.raw
            )
            for s in specs
        )
        return 0
    if harvest:
        return _harvest(state, specs)
    from fogctl.jobs import engine

    records = engine.submit(state, specs, executor=executor, retry=retry)
    ids = [r.id for r in records]
    if wait:
        final = engine.run_jobs(state, ids, concurrency=concurrency, on_event=_stream)
        bad = [r for r in final if r.state != lc.SUCCEEDED]
        for r in bad:
            output.notice(f"job {r.id} {r.state}: {r.detail or r.reason}")
        return 1 if bad else 0
    output.emit(records)
    todo = [r.id for r in records if r.state in lc.ACTIVE]
    if todo:
        pid = engine.spawn_runner(state, todo, concurrency=concurrency)
        output.notice(
            f"{len(todo)} job(s) running in the background (runner pid {pid}); "
            f"follow with: fogctl jobs wait {' '.join(todo[:3])}{' ...' if len(todo) > 3 else ''}"
        )
    return 0


def _harvest(state: State, specs: list[JobSpec]) -> int:
    try:
        from fogctl.harvest import enqueue
    except ImportError:
        raise ServiceUnavailable(
            "fogctl harvest is not available in this installation (fogctl.harvest.enqueue)"
        ) from None
    task_ids = enqueue(state, specs)
    output.emit(
        JobRecord(id=s.id, state="pending", queue="harvest", ref=t, node=s.node)
        for s, t in zip(specs, task_ids, strict=False)
    )
    output.notice(f"queued {len(task_ids)} job(s) for fogctl harvest")
    return 0


def wait_command(state: State, ids: list[str], *, concurrency: int | None = None) -> int:
    from fogctl.jobs import engine

    if not ids:
        ids = [r.id for r in engine.list_jobs(state) if r.state in lc.ACTIVE]
        if not ids:
            return 0
    final = engine.run_jobs(state, ids, concurrency=concurrency, on_event=_stream)
    bad = [r for r in final if r.state != lc.SUCCEEDED]
    return 1 if bad else 0


def write_logs(chunks: Iterable[bytes]) -> None:
    out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else None
    for chunk in chunks:
        if out is not None:
            out.write(chunk)
            out.flush()
        else:
            sys.stdout.write(chunk.decode("utf-8", "replace"))
            sys.stdout.flush()
