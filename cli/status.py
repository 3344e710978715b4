"""fogctl status: this node's identity and which real components are reachable."""

from __future__ import annotations

import typer
from fogctl.cli import output
from fogctl.cli.common import examples
from fogctl.cli.common import state as current_state

app = typer.Typer()


@app.command(
    epilog=examples(
        "fogctl status",
        "fogctl status --json | jq .components.docker.reachable",
    )
)
@output.with_output
def status() -> None:
    """Print this node's record: id, public keys, state dir, capacity and components.

    Components are the real services fogctl drives: Docker Engine, tor's control port
    and the chain's JSON-RPC endpoint; each is probed with a short timeout.
    """
    from fogctl.node import node_record

    state = current_state().require()
    output.emit_one(node_record(state, probe=True))
