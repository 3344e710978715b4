"""The output layer: flags defined once, annotations resolved in the command's module."""

from __future__ import annotations

from typing import Annotated

import typer
from fogctl.cli import output
from typer.testing import CliRunner


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @output.with_output
    def show(
        count: Annotated[int, typer.Option("--count", "-n", help="How many.")] = 1,
    ) -> None:
        """Emit COUNT records."""
        output.emit({"kind": "n", "i": i} for i in range(count))

    return app


def test_future_annotations_keep_typer_options() -> None:
    res = CliRunner().invoke(_app(), ["--count", "2", "--json"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines() == ['{"kind":"n","i":0}', '{"kind":"n","i":1}']
    helptext = CliRunner().invoke(_app(), ["--help"]).output
    assert "--count" in helptext and "-n" in helptext and "--quiet" in helptext


def test_json_and_table_conflict() -> None:
    res = CliRunner().invoke(_app(), ["--json", "--table"])
    assert res.exit_code == 2
