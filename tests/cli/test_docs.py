"""Docs can't drift: every command has help and a current man page naming its options."""

from __future__ import annotations

from pathlib import Path

from fogctl.cli import manpages

MAN = Path(__file__).resolve().parents[2] / "man"


def test_man_pages_are_current() -> None:
    pages = manpages.generate()
    stale = [
        n for n, text in pages.items() if not (MAN / n).exists() or (MAN / n).read_text() != text
    ]
    assert not stale, f"stale man pages {stale}: run 'python -m fogctl.cli.manpages man/'"


def test_every_command_has_help_and_every_option_is_documented() -> None:
    from fogctl.cli.main import get_click_command

    root = get_click_command()
    ctx = root.context_class(root, info_name="fogctl")
    tree = list(manpages.walk(root, ctx, ["fogctl"]))
    assert len(tree) > 3
    for path, command, sub_ctx in tree:
        name = "-".join(path)
        assert command.help and command.help.strip(), f"{name} has no help text"
        page = (MAN / f"{name}.1").read_text()
        for param in command.get_params(sub_ctx):
            for opt in param.opts:
                if opt.startswith("-"):
                    assert manpages.esc(opt) in page, f"{name}(1) does not mention {opt}"


def test_every_subcommand_has_an_example() -> None:
    from fogctl.cli.main import get_click_command

    root = get_click_command()
    ctx = root.context_class(root, info_name="fogctl")
    for path, command, _ in manpages.walk(root, ctx, ["fogctl"]):
        if len(path) > 1 and not hasattr(command, "list_commands"):
            assert command.epilog and "fogctl" in command.epilog, f"{' '.join(path)} has no example"
