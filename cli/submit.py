"""fogctl submit: run jobs from job specs (fogctl-job(5)) on Docker, Swarm or WASM."""

from __future__ import annotations

from typing import Annotated

import typer
from fogctl.cli import output
from fogctl.cli.common import examples
from fogctl.cli.common import state as current_state

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
    """Run the jobs in SPEC files: validated first (exit 2 naming file:line and field),
    then recorded in the state DB and run by their executor (wasm for modules, docker
    for images, or as chosen). A job id already submitted is not run twice.

    Without --wait a detached runner drives the jobs and submit prints one job record
    each; follow them with fogctl jobs. With --wait the jobs run here, state changes
    stream as job records, and the exit status is 1 if any job did not succeed.
    """
    from fogctl.jobs.cli_impl import submit_command

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
