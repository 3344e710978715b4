"""The one output layer: ``--json``/``--table``/``--quiet`` defined once, one ``emit()``.

* stdout carries data only: a rich table when stdout is a terminal, JSON Lines
  otherwise; an explicit ``--json`` or ``--table`` always wins.
* Notices and progress go to stderr; progress only on a terminal; nothing with
  ``--quiet``. ``NO_COLOR`` is honoured (rich reads it).
* Commands take the flags by decorating themselves with :func:`with_output`.
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import typer

from fogctl.records import Record, to_json_line

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class OutputMode:
    json: bool = False
    table: bool = False
    quiet: bool = False

    @property
    def json_lines(self) -> bool:
        """Write JSON Lines? (explicit flag wins, else JSON unless stdout is a TTY)."""
        if self.json:
            return True
        if self.table:
            return False
        return not _isatty(sys.stdout)


_mode = OutputMode()


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def current() -> OutputMode:
    return _mode


def configure(*, json: bool = False, table: bool = False, quiet: bool = False) -> OutputMode:
    global _mode
    if json and table:
        raise typer.BadParameter("--json and --table cannot be used together")
    _mode = OutputMode(json=json, table=table, quiet=quiet)
    return _mode


JsonFlag = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Write JSON Lines to stdout (the default when stdout is not a terminal).",
    ),
]
TableFlag = Annotated[
    bool, typer.Option("--table", help="Write a table (the default on a terminal).")
]
QuietFlag = Annotated[bool, typer.Option("--quiet", "-q", help="No notices or progress on stderr.")]


def with_output(fn: F) -> F:
    """Add ``--json``, ``--table`` and ``--quiet`` to a command and apply them first.

    The command's own annotations are resolved in its module first, so modules using
    ``from __future__ import annotations`` keep their ``Annotated`` typer options.
    """
    sig = inspect.signature(fn)
    hints = typing.get_type_hints(fn, include_extras=True)
    params = [
        p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values()
    ]
    kw_only = inspect.Parameter.KEYWORD_ONLY
    extra = [
        inspect.Parameter("json_out", kw_only, default=False, annotation=JsonFlag),
        inspect.Parameter("table_out", kw_only, default=False, annotation=TableFlag),
        inspect.Parameter("quiet", kw_only, default=False, annotation=QuietFlag),
    ]

    @functools.wraps(fn)
    def wrapper(
        *args: Any, json_out: bool = False, table_out: bool = False, quiet: bool = False, **kw: Any
    ) -> Any:
        configure(json=json_out, table=table_out, quiet=quiet)
        return fn(*args, **kw)

    wrapper.__signature__ = sig.replace(parameters=params + extra)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {
        **hints,
        "json_out": JsonFlag,
        "table_out": TableFlag,
        "quiet": QuietFlag,
    }
    del wrapper.__wrapped__  # typer must see the new signature, not the original
    return wrapper  # type: ignore[return-value]


# -- writing -------------------------------------------------------------------------


def _as_dict(rec: Record | Mapping[str, Any]) -> dict[str, Any]:
    return rec.to_dict() if isinstance(rec, Record) else dict(rec)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def _stdout_console() -> Any:
    from rich.console import Console

    return Console(soft_wrap=False)


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def write_json_line(rec: Record | Mapping[str, Any]) -> None:
    sys.stdout.write(to_json_line(rec) + "\n")
    sys.stdout.flush()


def emit(
    records: Iterable[Record | Mapping[str, Any]],
    *,
    columns: list[str] | None = None,
    title: str | None = None,
) -> int:
    """Write records: JSON Lines streamed as they come, or one table. Returns the count."""
    if current().json_lines:
        n = 0
        for rec in records:
            write_json_line(rec)
            n += 1
        return n
    rows = [_as_dict(r) for r in records]
    if not rows:
        return 0
    render_table(rows, columns=columns, title=title)
    return len(rows)


def emit_one(rec: Record | Mapping[str, Any], *, title: str | None = None) -> None:
    """Write one record: a JSON line, or a field/value table on a terminal."""
    if current().json_lines:
        write_json_line(rec)
        return
    from rich.table import Table

    data = _as_dict(rec)
    table = Table(title=title or data.get("kind"), show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in data.items():
        if key == "kind":
            continue
        if value is None or value == [] or value == {}:
            continue
        if isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()):
            for sub, inner in value.items():
                table.add_row(f"{key}.{sub}", _cell_inline(inner))
        else:
            table.add_row(key, _cell(value))
    _stdout_console().print(table)


def _cell_inline(value: dict[str, Any]) -> str:
    return "  ".join(f"{k}={_cell(v)}" for k, v in value.items())


def render_table(
    rows: list[dict[str, Any]], *, columns: list[str] | None = None, title: str | None = None
) -> None:
    from rich.table import Table

    if columns is None:
        columns = [k for k in rows[0] if k != "kind"]
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    _stdout_console().print(table)


def emit_stream(records: Iterable[Record | Mapping[str, Any]]) -> int:
    """Write records as they arrive: JSON Lines, or one readable line each on a terminal."""
    if current().json_lines:
        return emit(records)
    console = _stdout_console()
    n = 0
    for rec in records:
        data = _as_dict(rec)
        kind = data.pop("kind", "")
        fields = "  ".join(f"{k}={_cell(v)}" for k, v in data.items() if v is not None)
        console.print(f"[bold]{kind}[/bold]  {fields}", highlight=False, markup=True)
        n += 1
    return n


def notice(message: str) -> None:
    """A one-line human notice on stderr (suppressed by ``--quiet``)."""
    if current().quiet:
        return
    sys.stderr.write(f"fogctl: {message}\n")
    sys.stderr.flush()


def progress_enabled() -> bool:
    """Progress bars and spinners: only on a terminal, never with ``--quiet``."""
    return not current().quiet and _isatty(sys.stderr)


def stderr_console() -> Any:
    return _stderr_console()
