"""fogctl plugins: list entry-point plugins and fogctl-NAME executables."""

from __future__ import annotations

import typer
from fogctl.cli import output
from fogctl.cli.common import examples

app = typer.Typer()


@app.command(
    epilog=examples(
        "fogctl plugins",
        "fogctl plugins --json | jq -r 'select(.type==\"executable\") | .name'",
    )
)
@output.with_output
def plugins() -> None:
    """List plugins: entry points (fogctl.commands, fogctl.executors, fogctl.transports)
    and fogctl-NAME executables on PATH, which run as 'fogctl NAME'.

    A plugin named like a built-in command is marked shadowed: built-ins always win.
    """
    from fogctl.cli.main import BUILTINS

    from fogctl.plugins import list_plugins

    found = list_plugins(BUILTINS)
    if not found:
        output.notice("no plugins found")
    output.emit(found, columns=["name", "type", "group", "target", "shadowed"])
