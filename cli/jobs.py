"""fogctl jobs: list, inspect, follow, wait for and cancel submitted jobs."""

from typing import Annotated

import typer
from fogctl.cli import output
from fogctl.cli.common import examples
from fogctl.cli.common import state as current_state

app = typer.Typer(
    help="List, inspect, follow, wait for and cancel jobs run by fogctl submit.",
    no_args_is_help=True,
)

COLUMNS = ["id", "state", "executor", "attempt", "reason", "exit_code", "started", "finished"]


@app.command(
    "ls",
    epilog=examples(
        "fogctl jobs ls",
        "fogctl jobs ls --state failed --json | jq -r .id",
    ),
)
@output.with_output
def ls(
    states: Annotated[
        list[str] | None,
        typer.Option(
            "--state", "-s", metavar="STATE", help="Only jobs in this state (repeatable)."
        ),
    ] = None,
) -> None:
    """List jobs, oldest first.

    Jobs whose runner died are reconciled first: a container found by its fogctl
    labels tells how it really ended."""
    from fogctl.jobs import engine
    from fogctl.jobs.lifecycle import STATES

    for s in states or []:
        if s not in STATES:
            from fogctl.errors import InvalidInput

            raise InvalidInput(f"--state: unknown state {s!r} (one of {', '.join(STATES)})")
    output.emit(engine.list_jobs(current_state(), states=states), columns=COLUMNS)


@app.command(
    "show",
    epilog=examples("fogctl jobs show hello", "fogctl jobs show hello --json | jq .spec"),
)
@output.with_output
def show(
    job: Annotated[str, typer.Argument(metavar="JOB", help="Job id (metadata.name).")],
) -> None:
    """Show one job's record with its spec, log and output blobs."""
    from fogctl.jobs import engine

    output.emit_one(engine.get_job(current_state(), job))


@app.command(
    "events",
    epilog=examples("fogctl jobs events hello"),
)
@output.with_output
def events(job: Annotated[str, typer.Argument(metavar="JOB", help="Job id.")]) -> None:
    """The job's state changes, oldest first (one job-event record each)."""
    from fogctl.jobs import engine

    output.emit(
        ({"kind": "job-event", **e} for e in engine.events(current_state(), job)),
        columns=["state", "at", "reason", "detail"],
    )


@app.command(
    "logs",
    epilog=examples("fogctl jobs logs hello", "fogctl jobs logs -f train"),
)
def logs(
    job: Annotated[str, typer.Argument(metavar="JOB", help="Job id.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing output until the job ends.")
    ] = False,
) -> None:
    """Print a job's output (stdout and stderr).

    While the job runs, the live attempt's output (with -f, followed to the end);
    afterwards the last attempt's, kept as a blob."""
    from fogctl.cli.submit import write_logs

    from fogctl.jobs import engine

    write_logs(engine.logs(current_state(), job, follow=follow))


@app.command(
    "wait",
    epilog=examples(
        "fogctl jobs wait hello",
        "fogctl jobs wait --json | jq -r .state",
        "fogctl jobs wait --timeout 60 train || fogctl jobs cancel train",
    ),
)
@output.with_output
def wait(
    jobs: Annotated[
        list[str] | None,
        typer.Argument(help="Job ids (default: every unfinished job)."),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", "-j", min=1, help="Jobs run at once.")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            "-t",
            min=0,
            metavar="SECONDS",
            help="Give up waiting after this long (exit 1, error code timeout); "
            "the jobs keep running.",
        ),
    ] = None,
) -> None:
    """Wait until jobs end, streaming job records on each state change.

    Exits 1 if any job did not succeed. Jobs whose runner died are adopted and driven
    from here (a container still running is waited for, not restarted). With
    --timeout they are handed to a detached runner instead and only watched from
    here, so giving up never stops them."""
    from fogctl.cli.submit import wait_command

    code = wait_command(current_state(), list(jobs or []), concurrency=concurrency, timeout=timeout)
    if code:
        raise typer.Exit(code)


@app.command(
    "cancel",
    epilog=examples(
        "fogctl jobs cancel train",
        "fogctl jobs ls -s running --json | jq -r .id | xargs fogctl jobs cancel",
    ),
)
@output.with_output
def cancel(
    jobs: Annotated[list[str], typer.Argument(metavar="JOB...", help="Job ids.")],
) -> None:
    """Cancel jobs.

    A pending job never starts; a running one gets its checkpoint signal (default
    SIGTERM), its grace period, then SIGKILL. Prints the jobs' records."""
    from fogctl.jobs import engine

    output.emit(engine.cancel(current_state(), jobs), columns=COLUMNS)


@app.command(
    "image",
    epilog=examples(
        "fogctl jobs image busybox", "fogctl jobs image busybox --tag fogctl/busybox:1"
    ),
)
@output.with_output
def image(
    kind: Annotated[str, typer.Argument(metavar="KIND", help="What to build: busybox.")],
    tag: Annotated[
        str, typer.Option("--tag", "-t", help="Image tag to create.")
    ] = "fogctl/busybox:1",
    busybox: Annotated[
        str, typer.Option("--busybox", metavar="PATH", help="A static busybox binary.")
    ] = "/bin/busybox",
) -> None:
    """Build a small local image without a registry.

    A rootfs holding a static busybox and its applets, imported with the Docker
    Engine API (docker import). Use it in job specs as image: fogctl/busybox:1."""
    from fogctl.jobs.images import build_busybox_image

    if kind != "busybox":
        from fogctl.errors import InvalidInput

        raise InvalidInput(f"unknown image kind {kind!r} (known: busybox)")
    output.emit_one(build_busybox_image(tag, busybox))
