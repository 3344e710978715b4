"""Generate man pages by walking the command tree (click-man leaves OPTIONS empty on
typer >= 0.26, which vendors click, so we walk it ourselves).

    python -m fogctl.cli.manpages man/          write the pages
    python -m fogctl.cli.manpages --check man/  exit 1 if any page is missing or stale

Pages: fogctl(1), fogctl-CMD(1), fogctl-CMD-SUB(1) and fogctl-records(5). A command's
``epilog`` becomes its EXAMPLES section. Hand-written pages (other section 5 formats)
may sit beside them; the check leaves pages it does not generate alone.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fogctl import __version__

MANUAL = "fogctl manual"
SOURCE = f"fogctl {__version__}"

EXIT_STATUS = [
    ("0", "Success."),
    ("1", "The operation failed."),
    ("2", "Usage error or invalid input (flags, files, records, specs)."),
    ("3", "A needed service is unreachable (Docker Engine, tor, chain RPC, peers)."),
    ("4", "Authentication or authorization refused."),
    ("130", "Interrupted."),
]

ENVIRONMENT = [
    (
        "FOGCTL_HOME",
        "State directory; default: the platform's user state directory "
        "(~/.local/state/fogctl on Linux).",
    ),
    (
        "FOGCTL_*",
        "Any configuration key, upper-cased with dots as underscores "
        "(harvest.min_battery is FOGCTL_HARVEST_MIN_BATTERY). Flags override the "
        "environment, which overrides config.yaml, which overrides defaults.",
    ),
    ("NO_COLOR", "When set, no colour in tables."),
    ("FOGCTL_DEBUG", "When set, an internal error prints its traceback."),
]

FILES = [
    ("$FOGCTL_HOME/state.db", "SQLite database (WAL mode) shared by all fogctl processes."),
    ("$FOGCTL_HOME/keys/", "Node keys (ed25519.pem, x25519.pem) and domain keys, mode 0600."),
    ("$FOGCTL_HOME/blobs/", "Content-addressed blobs: payloads, logs, outputs, checkpoints."),
    ("$FOGCTL_HOME/config.yaml", "Optional configuration, keys nested by dots."),
]


def esc(text: str) -> str:
    """Escape text for roff."""
    out = text.replace("\\", "\\e").replace("-", "\\-")
    lines = []
    for line in out.splitlines():
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def _paragraphs(text: str) -> str:
    blocks = [b.strip() for b in text.strip().split("\n\n") if b.strip()]
    return "\n.PP\n".join(esc(" ".join(b.split())) for b in blocks)


def _examples(text: str) -> str:
    """Epilog to EXAMPLES: indented lines are commands, others prose."""
    parts: list[str] = []
    for block in [b for b in text.strip().split("\n\n") if b.strip()]:
        lines = [ln for ln in block.splitlines() if ln.strip() != "\b"]
        if all(line.startswith("  ") for line in lines):
            parts.append(
                ".PP\n.RS 4\n.nf\n" + esc("\n".join(ln[2:] for ln in lines)) + "\n.fi\n.RE"
            )
        elif block.strip().rstrip(":").lower() != "examples":
            parts.append(".PP\n" + esc(" ".join(block.split())))
    return "\n".join(parts)


def _th(name: str, section: int) -> str:
    return f'.TH "{esc(name.upper())}" "{section}" "" "{esc(SOURCE)}" "{MANUAL}"\n'


def _table(rows: list[tuple[str, str]]) -> str:
    return "\n".join(f".TP\n.B {esc(k)}\n{esc(v)}" for k, v in rows)


def _param_rows(command: Any, ctx: Any, kind: str) -> list[tuple[str, str]]:
    """Help rows of the command's ``kind`` params ("option" or "argument")."""
    rows = []
    for param in command.get_params(ctx):
        if getattr(param, "param_type_name", "option") != kind:
            continue
        record = param.get_help_record(ctx)
        if record is None:
            if kind != "argument":
                continue
            record = (param.name.upper(), "")
        rows.append((record[0], record[1] or ""))
    return rows


def walk(command: Any, ctx: Any, path: list[str]) -> Iterator[tuple[list[str], Any, Any]]:
    """Yield (path, command, context) for every command in the tree, parents first."""
    yield path, command, ctx
    list_commands = getattr(command, "list_commands", None)
    if list_commands is None:
        return
    for name in list_commands(ctx):
        sub = command.get_command(ctx, name)
        if sub is None or getattr(sub, "hidden", False):
            continue
        if getattr(sub, "fogctl_external", False):
            continue
        sub_ctx = type(ctx)(sub, info_name=name, parent=ctx)
        yield from walk(sub, sub_ctx, [*path, name])


def render(path: list[str], command: Any, ctx: Any, all_paths: list[list[str]]) -> str:
    name = "-".join(path)
    short = command.get_short_help_str(limit=200) if hasattr(command, "get_short_help_str") else ""
    out = [_th(name, 1), ".SH NAME\n", f"{esc(name)} \\- {esc(short.rstrip('.'))}\n"]
    pieces = command.collect_usage_pieces(ctx)
    out.append(".SH SYNOPSIS\n.B " + esc(" ".join(path)) + "\n" + esc(" ".join(pieces)) + "\n")
    if command.help:
        out.append(".SH DESCRIPTION\n" + _paragraphs(command.help) + "\n")
    subs = [p for p in all_paths if len(p) == len(path) + 1 and p[: len(path)] == path]
    if subs:
        rows = []
        for p in subs:
            sub = command.get_command(ctx, p[-1])
            rows.append((" ".join(p), sub.get_short_help_str(limit=120) if sub else ""))
        out.append(".SH COMMANDS\n" + _table(rows) + "\n")
    args = _param_rows(command, ctx, "argument")
    if args:
        out.append(".SH ARGUMENTS\n" + _table(args) + "\n")
    opts = _param_rows(command, ctx, "option")
    if opts:
        out.append(".SH OPTIONS\n" + _table(opts) + "\n")
    if command.epilog and len(path) > 1:
        out.append(".SH EXAMPLES\n" + _examples(command.epilog) + "\n")
    out.append(".SH EXIT STATUS\n" + _table(EXIT_STATUS) + "\n")
    out.append(".SH ENVIRONMENT\n" + _table(ENVIRONMENT) + "\n")
    out.append(".SH FILES\n" + _table(FILES) + "\n")
    related = {"-".join(p) for p in all_paths if p[: len(path)] == path or p == path[:-1]}
    related.discard(name)
    see = [*sorted(f"{r}(1)" for r in related), "fogctl-records(5)"]
    if len(path) > 1:
        see.insert(0, "fogctl(1)")
    out.append(".SH SEE ALSO\n" + esc(", ".join(dict.fromkeys(see))) + "\n")
    return "".join(out)


def _type_name(hint: Any) -> str:
    text = str(hint) if not isinstance(hint, type) else hint.__name__
    return text.replace("typing.", "").replace("NoneType", "null")


def _load_record_modules() -> None:
    import fogctl

    for mod in ("fogctl.plugins",):
        importlib.import_module(mod)
    for info in pkgutil.iter_modules(fogctl.__path__):
        if info.ispkg:
            try:
                importlib.import_module(f"fogctl.{info.name}.records")
            except ModuleNotFoundError as exc:
                if exc.name != f"fogctl.{info.name}.records":
                    raise


def render_records() -> str:
    from fogctl.records import record_types

    _load_record_modules()
    out = [
        _th("fogctl-records", 5),
        ".SH NAME\nfogctl\\-records \\- the records fogctl commands read and write\n",
    ]
    out.append(
        ".SH DESCRIPTION\n"
        + _paragraphs(
            "fogctl commands write records: JSON objects, one per line (JSON Lines), each "
            "with a kind field and the fields listed here, in this order. Absent values "
            "are null. Readers ignore fields they do not know, so newer writers can feed "
            "older readers; a field listed here keeps its name and meaning.\n\n"
            "On failure with --json, a command also writes an error record to stderr."
        )
        + "\n"
    )
    for kind, cls in record_types().items():
        out.append(f".SS {esc(kind)}\n" + _paragraphs(cls.__doc__ or "") + "\n")
        hints = typing.get_type_hints(cls)
        rows = [(f.name, _type_name(hints[f.name])) for f in dataclasses.fields(cls)]
        out.append(_table(rows) + "\n")
    out.append(".SH SEE ALSO\nfogctl(1)\n")
    return "".join(out)


def generate() -> dict[str, str]:
    """All generated pages: file name -> roff text."""
    from fogctl.cli.main import get_click_command

    root = get_click_command()
    ctx = type(root.context_class(root))(root, info_name="fogctl")
    tree = list(walk(root, ctx, ["fogctl"]))
    paths = [p for p, _, _ in tree]
    pages = {f"{'-'.join(p)}.1": render(p, c, x, paths) for p, c, x in tree}
    pages["fogctl-records.5"] = render_records()
    return pages


def main(argv: list[str]) -> int:
    check = "--check" in argv
    targets = [a for a in argv if not a.startswith("--")]
    out_dir = Path(targets[0] if targets else "man")
    pages = generate()
    stale = []
    for name, text in sorted(pages.items()):
        path = out_dir / name
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            stale.append(name)
            if not check:
                out_dir.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    if check and stale:
        print("stale or missing man pages: " + ", ".join(stale), file=sys.stderr)
        print("run: python -m fogctl.cli.manpages man/", file=sys.stderr)
        return 1
    if not check:
        print(f"{len(pages)} pages, {len(stale)} written to {out_dir}/", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
