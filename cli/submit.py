"""fogctl submit: run jobs from job specs (fogctl-job(5)) on Docker, Swarm or WASM."""

import contextlib
import signal
import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Annotated

import typer
from fogctl.cli import output
from fogctl.cli.common import examples
from fogctl.cli.common import state as current_state

from fogctl.errors import InvalidInput, ServiceUnavailable

if TYPE_CHECKING:
    from fogctl.jobs.records import JobRecord
    from fogctl.jobs.spec import JobSpec
    from fogctl.state import State

app = typer.Typer()


@app.command(
    epilog=examples(
        "fogctl submit examples/hello.yaml --wait",
        "fogctl submit examples/batch.yaml --concurrency 4",
        "fogctl schedule --jobs examples/batch.jsonl nodes.jsonl | fogctl submit --wait -",
        "fogctl submit --harvest examples/checkpoint.yaml",
    )
)
@output.with_output
def submit(
    specs: Annotated[
        list[str],
        typer.Argument(
            metavar="SPEC...",
            help="Job spec files (YAML, several documents allowed) or JSON Lines; - is stdin.",
        ),
    ],
    wait: Annotated[
        bool,
        typer.Option("--wait", "-w", help="Run here and stream job records until every job ends."),
    ] = False,
    executor: Annotated[
        str | None,
        typer.Option(
            "--executor",
            "-e",
            metavar="NAME",
            help="Override the specs' executor (docker, swarm, wasm...).",
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-j",
            min=1,
            help="Jobs run at once (default: jobs.concurrency, else CPUs).",
        ),
    ] = None,
    retry: Annotated[
        bool,
        typer.Option(
            "--retry", help="Run again jobs that failed, were cancelled or ran out of time."
        ),
    ] = False,
    harvest: Annotated[
        bool,
        typer.Option(
            "--harvest", help="Queue the jobs for fogctl harvest instead of running them."
        ),
    ] = False,
    check: Annotated[
        bool,
        typer.Option("--check", help="Validate the specs and print them; run nothing."),
    ] = False,
) -> None:
    """Run jobs from job spec files (fogctl-job(5)) on WASM, Docker or Swarm.

    Every spec is validated first (exit 2 naming file:line and the field); then the
    jobs are recorded in the state DB and run by their executor (wasm for modules,
    docker for images, or as chosen). A job id already submitted is not run twice.

    Assignment records from fogctl schedule bind jobs to their node, and the running
    jobs an assignment names in preempts are evicted: checkpoint signal, grace, then
    back to retrying to resume from their checkpoint. Jobs a partial plan left out
    (fogctl schedule --allow-partial: node null) are skipped with a notice naming each.

    Without --wait a detached runner drives the jobs and submit prints one job record
    each; follow them with fogctl jobs. With --wait the jobs run here, state changes
    stream as job records, and the exit status is 1 if any job did not succeed.
    """
    code = submit_command(
        current_state(),
        specs,
        wait=wait,
        executor=executor,
        concurrency=concurrency,
        retry=retry,
        harvest=harvest,
        check=check,
    )
    if code:
        raise typer.Exit(code)


# -- what the commands do (shared with fogctl jobs) --------------------------------


def load_all(sources: Iterable[str]) -> "list[JobSpec]":
    """Every spec from every source; all are validated before any is used."""
    from fogctl.jobs.spec import load_specs

    specs: list = []
    seen: dict[str, str] = {}
    left_out: list[tuple[str, str]] = []
    sources = list(sources)
    if sources.count("-") > 1:
        raise InvalidInput("stdin (-) can be read only once")
    for src in sources:
        for spec in load_specs(src, unplaced=left_out):
            if spec.id in seen:
                raise InvalidInput(f"{src}: job {spec.id!r} is also in {seen[spec.id]}")
            seen[spec.id] = src
            specs.append(spec)
    for job, why in left_out:  # a partial plan (fogctl schedule --allow-partial)
        output.notice(f"job {job} skipped: the scheduler left it out ({why})")
    if not specs:
        if left_out:
            raise InvalidInput(f"{', '.join(sources)}: the scheduler placed none of the jobs")
        raise InvalidInput(f"{', '.join(sources)}: no job specs found")
    return specs


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops a foreground run like Ctrl-C: in-process (WASM) attempts are
    stopped, containers are left running for a later fogctl jobs wait to adopt."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. embedded): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _stream(rec: "JobRecord") -> None:
    if output.current().json_lines:
        output.write_json_line(rec)
    else:
        output.emit_stream([rec])


def submit_command(
    state: "State",
    sources: list[str],
    *,
    wait: bool = False,
    executor: str | None = None,
    concurrency: int | None = None,
    retry: bool = False,
    harvest: bool = False,
    check: bool = False,
) -> int:
    from fogctl.jobs import lifecycle as lc
    from fogctl.jobs.records import JobRecord

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
        with _sigterm_interrupts():
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


def _harvest(state: "State", specs: "list[JobSpec]") -> int:
    from fogctl.jobs.records import JobRecord

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


def wait_command(
    state: "State",
    ids: list[str],
    *,
    concurrency: int | None = None,
    timeout: float | None = None,
) -> int:
    from fogctl.jobs import engine
    from fogctl.jobs import lifecycle as lc

    if not ids:
        ids = [r.id for r in engine.list_jobs(state) if r.state in lc.ACTIVE]
        if not ids:
            return 0
    if timeout is not None:
        final = engine.wait_for(
            state, ids, timeout=timeout, concurrency=concurrency, on_event=_stream
        )
        return 1 if any(r.state != lc.SUCCEEDED for r in final) else 0
    with _sigterm_interrupts():
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
