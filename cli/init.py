"""fogctl init: create the state directory and the node identity."""

from __future__ import annotations

import typer
from fogctl.cli import output
from fogctl.cli.common import examples
from fogctl.cli.common import state as current_state

app = typer.Typer()


@app.command(
    epilog=examples(
        "fogctl init",
        "FOGCTL_HOME=/srv/fog fogctl init --json | jq -r .id",
    )
)
@output.with_output
def init() -> None:
    """Create the state directory with this node's Ed25519 and X25519 keys.

    Running it again changes nothing and says so. Prints the node record.
    """
    from fogctl.node import node_record
    from fogctl.state import State

    root = current_state().root
    state, created = State.create(root)
    if created:
        output.notice(f"initialised {state.root} (node {state.identity().node_id})")
    else:
        output.notice(f"already initialised at {state.root}; nothing changed")
    output.emit_one(node_record(state, created=created))
