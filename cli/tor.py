"""fogctl tor: a real tor daemon under fogctl's control; onion services; a private testnet."""

from pathlib import Path
from typing import Annotated

import typer
from fogctl.cli import output
from fogctl.cli.common import examples
from fogctl.cli.common import state as current_state

app = typer.Typer(
    help=(
        "Run and control tor: circuits, SOCKS, onion services, a private test network.\n\n"
        "fogctl drives Debian's tor through its control protocol (stem). The managed tor "
        "keeps everything under $FOGCTL_HOME/tor/: torrc, data/ (DataDirectory, mode 0700, "
        "with the control auth cookie), control.sock (cookie authentication), tor.log and "
        "daemon.json (pid, control endpoint, SOCKS address). Persistent onion keys live in "
        "$FOGCTL_HOME/keys/tor-onion-ADDRESS.pem (mode 0600) and are never printed.\n\n"
        "Other fogctl commands reach peers through tor with fogctl.tor.open_connection(HOST, "
        "PORT, via='tor'): SOCKS5 with host names resolved by tor and one circuit per "
        "destination (SOCKS auth isolation). FOGCTL_TOR_SOCKS=HOST:PORT points it at another "
        "tor; FOGCTL_TOR_BINARY names the tor binary (default: tor on PATH, then /usr/sbin).\n\n"
        "'fogctl tor testnet' builds an offline Tor lab on 127.0.0.1: three directory "
        "authorities (keys from tor-gencert), relays of which some are exits accepting only "
        "127.0.0.0/8, and a client, with TestingTorNetwork, a 10 s voting interval and "
        "AssumeReachable; 'fogctl tor up --testnet DIR' joins it so onion services can be "
        "tried end to end without the Internet."
    ),
    no_args_is_help=True,
)
onion_app = typer.Typer(help="Onion services (v3) on the controlled tor.", no_args_is_help=True)
testnet_app = typer.Typer(
    help="A private Tor network on 127.0.0.1 (authorities, relays, exits, a client).",
    no_args_is_help=True,
)
app.add_typer(onion_app, name="onion")
app.add_typer(testnet_app, name="testnet")

PasswordOpt = Annotated[
    str | None,
    typer.Option(
        "--password",
        envvar="FOGCTL_TOR_PASSWORD",
        help="Control port password (HashedControlPassword), else cookie authentication.",
        show_envvar=True,
    ),
]
CookieOpt = Annotated[
    Path | None,
    typer.Option("--cookie", metavar="FILE", help="Auth cookie file to use instead of tor's."),
]
TestnetDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        metavar="DIR",
        help="Where the network lives (default: $FOGCTL_HOME/tor/testnet).",
    ),
]


def _progress(message: str) -> None:
    if output.progress_enabled():
        output.stderr_console().print(f"[dim]tor:[/dim] {message}", highlight=False)


def _testnet_dir(directory: Path | None) -> Path:
    return directory if directory is not None else current_state().root / "tor" / "testnet"


@app.command(
    epilog=examples(
        "fogctl tor up",
        "fogctl tor up --attach 9051",
        "fogctl tor up --testnet ~/.local/state/fogctl/tor/testnet",
        "fogctl tor up --foreground   # for a systemd unit",
    )
)
@output.with_output
def up(
    attach: Annotated[
        str | None,
        typer.Option(
            "--attach",
            metavar="CONTROL_PORT",
            help="Use a tor that is already running: PORT, HOST:PORT or a socket path.",
        ),
    ] = None,
    password: PasswordOpt = None,
    cookie: CookieOpt = None,
    testnet: Annotated[
        Path | None,
        typer.Option(
            "--testnet",
            metavar="DIR",
            help="Join the private network in DIR (from 'fogctl tor testnet up').",
        ),
    ] = None,
    socks_port: Annotated[
        str | None,
        typer.Option("--socks-port", help="SOCKS port on 127.0.0.1, or auto (default)."),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for bootstrap.")
    ] = 120.0,
    foreground: Annotated[
        bool,
        typer.Option(
            "--foreground",
            help="Stay in the foreground; stop tor on SIGTERM or when fogctl exits.",
        ),
    ] = False,
) -> None:
    """Launch and control tor, or attach to a running one; prints the tor record.

    The managed tor keeps its DataDirectory in the state dir, answers on a control
    socket with cookie authentication and offers SOCKS5 on 127.0.0.1. Running it again
    changes nothing; a tor that died is started again. Bootstrap progress is shown on
    stderr on a terminal. Persistent onion services are restored.
    """
    import contextlib
    import os

    from fogctl.tor import daemon

    state = current_state()
    with contextlib.ExitStack() as stack:
        # signals are caught from the start, so a SIGTERM during bootstrap also stops tor
        stop = stack.enter_context(daemon.StopSignals()) if foreground else None
        try:
            rec = daemon.up(
                state,
                attach=attach,
                password=password,
                cookie=cookie,
                testnet=testnet,
                socks_port=socks_port,
                timeout=timeout,
                owner_pid=os.getpid() if foreground else None,
                progress=_progress,
                notice=output.notice,
                stop=(lambda: stop.stopping) if stop is not None else None,
            )
        except daemon.Stopped:
            output.notice("stopped before tor finished bootstrapping")
            return
        output.emit_one(rec)
        if stop is not None and rec.managed:
            code = daemon.run_foreground(state, rec, output.notice, stop)
            if code:
                raise typer.Exit(code)


@app.command(
    epilog=examples("fogctl tor status", "fogctl tor status --json | jq .bootstrap"),
)
@output.with_output
def status(password: PasswordOpt = None, cookie: CookieOpt = None) -> None:
    """Print the tor record: version, bootstrap %, SOCKS address, circuit count.

    Exits 3 when tor is not running; a managed tor that died unexpectedly is reported
    as state crashed (restart it with 'fogctl tor up').
    """
    from fogctl.errors import ServiceUnavailable
    from fogctl.tor import daemon

    rec = daemon.status(current_state(), password=password, cookie=cookie)
    output.emit_one(rec)
    if rec.state == "crashed":
        raise ServiceUnavailable(
            f"tor (pid {rec.pid}) crashed or was killed", hint="restart it with 'fogctl tor up'"
        )
    if rec.state == "stopped":
        raise ServiceUnavailable("tor is not running", hint="start it with 'fogctl tor up'")


@app.command(
    epilog=examples(
        "fogctl tor circuits",
        "fogctl tor circuits --json | jq -r 'select(.status==\"BUILT\") | .path[-1].nickname'",
    )
)
@output.with_output
def circuits(password: PasswordOpt = None, cookie: CookieOpt = None) -> None:
    """List tor's circuits: one circuit record each (id, status, purpose, path)."""
    from fogctl.tor import daemon

    recs = daemon.circuits(current_state(), password=password, cookie=cookie)
    output.emit(
        recs if output.current().json_lines else [_circuit_row(r) for r in recs],
        columns=None if output.current().json_lines else ["id", "status", "purpose", "path"],
    )


def _circuit_row(rec: object) -> dict[str, object]:
    data = rec.to_dict()  # type: ignore[attr-defined]
    data["path"] = " > ".join(h["nickname"] or h["fingerprint"][:8] for h in data["path"])
    return data


@app.command(epilog=examples("fogctl tor newnym"))
@output.with_output
def newnym(password: PasswordOpt = None, cookie: CookieOpt = None) -> None:
    """Ask tor for new circuits for new streams (NEWNYM; tor rate-limits it)."""
    from fogctl.tor import daemon

    wait = daemon.newnym(current_state(), password=password, cookie=cookie)
    if wait > 0:
        output.notice(f"tor will switch circuits in {wait:.0f} s (NEWNYM is rate-limited)")
    else:
        output.notice("new streams will use new circuits")


@app.command(epilog=examples("fogctl tor down"))
@output.with_output
def down() -> None:
    """Stop the managed tor (or forget an attached one); prints the tor record."""
    from fogctl.tor import daemon

    output.emit_one(daemon.down(current_state()))


# -- onion ----------------------------------------------------------------------------


@onion_app.command(
    "add",
    epilog=examples(
        "fogctl tor onion add 80:127.0.0.1:8080",
        "fogctl tor onion add 22 80:8080 --persistent --json | jq -r .address",
    ),
)
@output.with_output
def onion_add(
    ports: Annotated[
        list[str],
        typer.Argument(
            metavar="PORTMAP", help="VIRTPORT[:HOST]:PORT, e.g. 80:127.0.0.1:8080 (or 80)."
        ),
    ],
    persistent: Annotated[
        bool,
        typer.Option(
            "--persistent",
            help="Keep the key (state dir keys/, mode 0600): same address after restarts.",
        ),
    ] = False,
    wait: Annotated[
        bool,
        typer.Option("--wait/--no-wait", help="Wait until the descriptor is published."),
    ] = True,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for publication.")
    ] = 60.0,
    password: PasswordOpt = None,
    cookie: CookieOpt = None,
) -> None:
    """Create a v3 onion service and print its record (the .onion address).

    Ephemeral by default: tor keeps the key in memory only. Keys are never printed.
    """
    from fogctl.tor import daemon, onions
    from fogctl.tor.onion import parse_port_map

    maps = [parse_port_map(p) for p in ports]
    state = current_state()
    with daemon.controller(state, password=password, cookie=cookie) as ctl:
        rec = onions.add(state, ctl, maps, persistent=persistent, wait=wait, timeout=timeout)
    output.emit_one(rec)


@onion_app.command("ls", epilog=examples("fogctl tor onion ls", "fogctl tor onion ls --json"))
@output.with_output
def onion_ls(password: PasswordOpt = None, cookie: CookieOpt = None) -> None:
    """List onion services: address, ports, persistent, active (served by tor now)."""
    from fogctl.errors import ServiceUnavailable
    from fogctl.tor import daemon, onions

    state = current_state()
    try:
        with daemon.controller(state, password=password, cookie=cookie) as ctl:
            recs = onions.list_onions(state, ctl)
    except ServiceUnavailable as exc:
        output.notice(f"{exc.message}; showing what fogctl remembers")
        recs = onions.list_onions(state, None)
    output.emit(recs, columns=["address", "ports", "persistent", "active"])


@onion_app.command(
    "rm",
    epilog=examples("fogctl tor onion rm ADDRESS.onion", "fogctl tor onion rm ADDRESS --keep-key"),
)
@output.with_output
def onion_rm(
    address: Annotated[str, typer.Argument(help="The service's .onion address.")],
    keep_key: Annotated[
        bool, typer.Option("--keep-key", help="Keep a persistent service's key file.")
    ] = False,
    password: PasswordOpt = None,
    cookie: CookieOpt = None,
) -> None:
    """Stop an onion service and forget it (deleting a persistent one's key)."""
    from fogctl.errors import ServiceUnavailable
    from fogctl.tor import daemon, onions

    state = current_state()
    try:
        with daemon.controller(state, password=password, cookie=cookie) as ctl:
            rec = onions.remove(state, ctl, address, keep_key=keep_key)
    except ServiceUnavailable:
        rec = onions.remove(state, None, address, keep_key=keep_key)
    output.emit_one(rec)


# -- testnet --------------------------------------------------------------------------


@testnet_app.command(
    "up",
    epilog=examples(
        "fogctl tor testnet up --relays 5",
        "fogctl tor testnet up --json | jq -r .socks",
        'curl --socks5-hostname "$(fogctl tor testnet status --json | jq -r .socks)" http://127.0.0.1:8080/',
    ),
)
@output.with_output
def testnet_up(
    relays: Annotated[int, typer.Option("--relays", help="Relays besides 3 authorities.")] = 3,
    exits: Annotated[
        int | None, typer.Option("--exits", help="How many relays are exits (default: half).")
    ] = None,
    directory: TestnetDirOpt = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for a usable network.")
    ] = 90.0,
    foreground: Annotated[
        bool,
        typer.Option("--foreground", help="Stay in the foreground; tear down on SIGTERM."),
    ] = False,
) -> None:
    """Start a private Tor network on 127.0.0.1 and wait until it carries traffic.

    Authorities (keys from tor-gencert), relays (some exits, accepting 127.0.0.0/8
    only) and a client with a SOCKS port; nothing leaves the machine. Ready means a
    circuit is established and a real stream through the client reached 127.0.0.1.
    """
    import contextlib
    import os

    from fogctl.tor import daemon, testnet

    where = _testnet_dir(directory)
    with contextlib.ExitStack() as stack:
        stop = stack.enter_context(daemon.StopSignals()) if foreground else None
        rec = testnet.testnet_up(
            where,
            relays=relays,
            exits=exits,
            owner_pid=os.getpid() if foreground else None,
            timeout=timeout,
            tor=current_state().config.get("tor.binary") or None,
            progress=_progress,
        )
        output.emit_one(rec)
        if stop is not None:
            testnet.wait_foreground(where, output.notice, stop)


@testnet_app.command(
    "status",
    epilog=examples("fogctl tor testnet status", "fogctl tor testnet status --json | jq .running"),
)
@output.with_output
def testnet_status(
    directory: TestnetDirOpt = None,
    nodes: Annotated[bool, typer.Option("--nodes", help="Also one record per tor.")] = False,
) -> None:
    """Print the private network's record (and with --nodes, one per tor)."""
    from fogctl.errors import ServiceUnavailable
    from fogctl.tor import testnet

    rec, node_recs = testnet.testnet_status(_testnet_dir(directory))
    if nodes and output.current().json_lines:
        output.emit([rec, *node_recs])
    else:
        output.emit_one(rec)
        if nodes:
            output.emit(
                node_recs,
                columns=[
                    "name",
                    "role",
                    "running",
                    "pid",
                    "or_port",
                    "dir_port",
                    "control_port",
                    "socks_port",
                    "fingerprint",
                ],
            )
    if rec.state != "running":
        raise ServiceUnavailable(f"private Tor network is {rec.state}")


@testnet_app.command("down", epilog=examples("fogctl tor testnet down"))
@output.with_output
def testnet_down(
    directory: TestnetDirOpt = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the directory (configs, keys, logs).")
    ] = False,
) -> None:
    """Stop every tor of the private network and remove its directory."""
    from fogctl.tor import testnet

    output.emit_one(testnet.testnet_down(_testnet_dir(directory), keep=keep))
