"""The ``fogctl`` umbrella command.

Subcommands are looked up lazily: ``fogctl --help`` imports each thin command module
(which imports nothing heavy), and a command's engine and libraries load only when it
runs. Failures are mapped to exit codes here, in one place (see :mod:`fogctl.errors`).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any, NoReturn

from fogctl import __version__

# name -> module under fogctl.cli defining ``app`` (a typer.Typer). Order is help order.
# A name whose module is not part of this build is simply not offered.
BUILTINS: dict[str, str] = {
    "init": "init",
    "status": "status",
    "submit": "submit",
    "jobs": "jobs",
    "schedule": "schedule",
    "harvest": "harvest",
    "dht": "dht",
    "tor": "tor",
    "stake": "stake",
    "vote": "vote",
    "mix": "mix",
    "mesh": "mesh",
    "plugins": "plugins",
}


def available_builtins() -> list[str]:
    """Built-in command names whose module is present (cheap: no import)."""
    from importlib.util import find_spec

    return [name for name, mod in BUILTINS.items() if find_spec(f"fogctl.cli.{mod}") is not None]


PROG = "fogctl"


def _build_app() -> Any:
    import typer
    from typer import _click as click  # typer vendors click since 0.26
    from typer.core import TyperGroup

    class FogGroup(TyperGroup):
        """Built-ins first, then entry-point commands, then ``fogctl-NAME`` executables."""

        def list_commands(self, ctx: click.Context) -> list[str]:
            from fogctl import plugins as plugin_registry  # entry points: only when listing

            names = available_builtins()
            extra = [ep.name for ep in plugin_registry.group_entry_points("fogctl.commands")]
            names += sorted(n for n in extra if n not in BUILTINS)
            names += [n for n in super().list_commands(ctx) if n not in names]
            return names

        def get_command(self, ctx: click.Context, cmd_name: str) -> Any:
            if cmd_name in BUILTINS and cmd_name in available_builtins():
                module = importlib.import_module(f"fogctl.cli.{BUILTINS[cmd_name]}")
                module.app._add_completion = False  # completion is installed from the root
                module.app.rich_markup_mode = None  # plain, fast help everywhere
                command = typer.main.get_command(module.app)
                command.name = cmd_name
                return command
            found = super().get_command(ctx, cmd_name)
            if found is not None:
                return found
            from fogctl import plugins as plugin_registry

            try:
                target = plugin_registry.load_entry_point("fogctl.commands", cmd_name)
            except KeyError:
                target = None
            if target is not None:
                command = (
                    typer.main.get_command(target) if isinstance(target, typer.Typer) else target
                )
                command.name = cmd_name
                return command  # type: ignore[no-any-return]
            exe = plugin_registry.find_executable(cmd_name)
            if exe is not None:
                return _external_command(cmd_name, exe)
            return None

    def _external_command(name: str, exe: Any) -> Any:
        from fogctl import plugins as plugin_registry

        ext = typer.Typer(add_completion=False, rich_markup_mode=None)

        @ext.command(
            name=name,
            context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
            add_help_option=False,
            help=f"External command {exe}.",
        )
        def run_external(ctx: typer.Context) -> None:
            from fogctl.state import default_state_dir

            plugin_registry.exec_external(exe, list(ctx.args), default_state_dir())

        # typer is imported in this function, so string annotations can't be evaluated.
        run_external.__annotations__ = {"ctx": typer.Context, "return": None}

        command = typer.main.get_command(ext)
        command.fogctl_external = True  # type: ignore[attr-defined]
        return command

    app = typer.Typer(
        cls=FogGroup,
        name=PROG,
        help=(
            "Composable commands for a decentralized fog-computing network.\n\n"
            "Every command that produces data writes records: a table on a terminal, "
            "JSON Lines otherwise (or with --json)."
        ),
        epilog="See fogctl(1) for exit codes, environment and files.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        pretty_exceptions_show_locals=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    def version_callback(value: bool) -> None:
        if value:
            print(f"{PROG} {__version__}")
            raise typer.Exit()

    @app.callback()
    def root(
        home: str | None = typer.Option(
            None,
            "--home",
            metavar="DIR",
            help="State directory (overrides FOGCTL_HOME).",
        ),
        via: str | None = typer.Option(
            None,
            "--via",
            metavar="ROUTE",
            help=(
                "Route TCP connections to remote peers: direct, tor (the tor fogctl runs; "
                "one circuit per destination) or socks5://HOST:PORT (sets net.via)."
            ),
        ),
        version: bool = typer.Option(
            False,
            "--version",
            "-V",
            callback=version_callback,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ) -> None:
        if home is not None:
            os.environ["FOGCTL_HOME"] = home
        if via is not None:
            os.environ["FOGCTL_NET_VIA"] = via

    return app


def get_app() -> Any:
    return _build_app()


def get_click_command() -> Any:
    import typer

    return typer.main.get_command(_build_app())


def main(args: list[str] | None = None) -> int:
    """Run fogctl with ``args``; returns the exit status instead of exiting."""
    from typer._click import exceptions as click_exc
    from typer.exceptions import Abort, Exit

    from fogctl.errors import EXIT_INTERRUPTED, EXIT_USAGE, FogError

    argv = list(sys.argv[1:] if args is None else args)
    command = get_click_command()
    try:
        result = command.main(args=argv, prog_name=PROG, standalone_mode=False)
    except click_exc.NoArgsIsHelpError as exc:
        print(exc.ctx.get_help() if exc.ctx else "")
        return 0
    except Exit as exc:
        return int(exc.exit_code)
    except click_exc.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else PROG
        msg = exc.format_message().replace("\n", " ").strip()
        sub = where.removeprefix(PROG).strip()
        text = f"{sub}: {msg}" if sub else msg
        _fail(f"{text} (see '{where} --help')", "usage", EXIT_USAGE, argv)
        return EXIT_USAGE
    except Abort:
        _fail("interrupted", "interrupted", EXIT_INTERRUPTED, argv)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        _fail("interrupted", "interrupted", EXIT_INTERRUPTED, argv)
        return EXIT_INTERRUPTED
    except click_exc.ClickException as exc:
        _fail(exc.format_message(), "failed", exc.exit_code, argv)
        return exc.exit_code
    except FogError as exc:
        message = exc.message if not exc.hint else f"{exc.message} ({exc.hint})"
        _fail(message, exc.code, exc.exit_code, argv)
        return exc.exit_code
    except BrokenPipeError:
        _silence_stdout()
        return 141
    except Exception as exc:  # a bug: say so in one line; FOGCTL_DEBUG=1 shows the traceback
        if os.environ.get("FOGCTL_DEBUG"):
            import traceback

            traceback.print_exc()
        _fail(
            f"internal error: {exc.__class__.__name__}: {exc} "
            "(set FOGCTL_DEBUG=1 for a traceback and report it)",
            "internal",
            1,
            argv,
        )
        return 1
    return result if isinstance(result, int) else 0


def _fail(message: str, code: str, exit_code: int, argv: list[str]) -> None:
    from fogctl.cli import output

    from fogctl.records import ErrorRecord, to_json_line

    message = " ".join(message.split())
    try:
        sys.stderr.write(f"fogctl: {message}\n")
        if output.current().json or "--json" in argv:
            sys.stderr.write(to_json_line(ErrorRecord(code, exit_code, message)) + "\n")
        sys.stderr.flush()
    except OSError:
        pass


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


def run() -> NoReturn:
    """Console-script entry point."""
    argv = sys.argv[1:]
    if argv in (["--version"], ["-V"]):  # fast path: no Typer import
        sys.stdout.write(f"{PROG} {__version__}\n")
        sys.exit(0)
    sys.exit(main(argv))


if __name__ == "__main__":
    run()
