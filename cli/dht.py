"""fogctl dht: the Kademlia network: serve a node, put/get signed values, find providers."""

from typing import Annotated, Any

import typer
from fogctl.cli import output
from fogctl.cli.common import examples
from fogctl.cli.common import state as current_state

app = typer.Typer(
    help="Kademlia DHT: signed values, node descriptors, pub/sub, NAT reachability.",
    no_args_is_help=True,
)

Bootstrap = Annotated[
    list[str] | None,
    typer.Option(
        "--bootstrap",
        "-b",
        help="IP:PORT of a DHT node to join through (repeatable; default: dht.bootstrap, "
        "then the saved routing table). Forces a brief join even if a node is serving.",
    ),
]


def _call(op: str, params: dict[str, Any], bootstrap: list[str] | None) -> list[dict[str, Any]]:
    from fogctl.dht.service import call

    state = current_state().require()
    return call(state, op, params, bootstrap)


@app.command(
    epilog=examples(
        "fogctl dht serve --port 8468 --bootstrap HOST:8468",
        "fogctl dht serve --host 127.0.0.1 --port 0",
    )
)
@output.with_output
def serve(
    port: Annotated[int, typer.Option(help="UDP port to listen on (0: any free port).")] = 8468,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "0.0.0.0",
    bootstrap: Bootstrap = None,
    announce: Annotated[
        bool, typer.Option(help="Publish this node's descriptor under the provider keys.")
    ] = True,
    mdns: Annotated[
        bool, typer.Option(help="Advertise on the LAN with mDNS and join the nodes found there.")
    ] = False,
) -> None:
    """Run a DHT node in the foreground until SIGTERM or Ctrl-C.

    Logs to stderr. Opens a control socket (dht.sock in the state dir) that one-shot
    commands use, saves the routing table on exit and reloads it on start, so a
    restarted node needs no bootstrap peer.
    """
    import asyncio
    import logging
    import sys

    from fogctl.dht.records import DhtPeerRecord
    from fogctl.dht.service import serve as run_serve

    if not 0 <= port < 65536:
        raise typer.BadParameter("port must be 0-65535", param_hint="--port")
    state = current_state().require()
    if not output.current().quiet:
        logging.basicConfig(
            stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
        )

    def ready(server: Any) -> None:
        h, p = server.address
        output.emit_one(DhtPeerRecord(id=server.identity.node_id, address=f"{h}:{p}"))

    asyncio.run(
        run_serve(
            state,
            port=port,
            host=host,
            bootstrap=bootstrap,
            announce=announce,
            mdns=mdns,
            ready=ready,
        )
    )


@app.command(epilog=examples("fogctl dht put greeting hello", "fogctl dht put region HOST"))
@output.with_output
def put(
    key: Annotated[str, typer.Argument(help="Key (any text).")],
    value: Annotated[str, typer.Argument(help="Value (text, at most 4096 bytes).")],
    bootstrap: Bootstrap = None,
) -> None:
    """Sign VALUE under KEY with this node's key and store it on the k closest nodes.

    Each put takes a higher sequence number; a serving node republishes it hourly.
    """
    if len(value.encode("utf-8")) > 4096:
        from fogctl.errors import InvalidInput

        raise InvalidInput(f"value is {len(value.encode())} bytes; the limit is 4096")
    recs = _call("put", {"key": key, "value": value}, bootstrap)
    output.emit(recs)


@app.command(epilog=examples("fogctl dht get greeting", "fogctl dht get greeting --signer ID"))
@output.with_output
def get(
    key: Annotated[str, typer.Argument(help="Key to look up.")],
    signer: Annotated[
        str, typer.Option(help="Only the value signed by this node id (40 hex digits).")
    ] = "",
    bootstrap: Bootstrap = None,
) -> None:
    """Print the verified values stored under KEY: the highest sequence per signer.

    Exits 1 when nothing valid is found.
    """
    from fogctl.errors import OperationFailed

    recs = _call("get", {"key": key, "signer": signer}, bootstrap)
    if not recs:
        raise OperationFailed(f"no value found for key {key!r}")
    output.emit(recs)


@app.command("find-node", epilog=examples("fogctl dht find-node ID"))
@output.with_output
def find_node(
    node_id: Annotated[str, typer.Argument(metavar="ID", help="Node id (40 hex digits).")],
    bootstrap: Bootstrap = None,
) -> None:
    """Print the k nodes closest to ID that answered, closest first."""
    from fogctl.dht.service import check_node_id

    check_node_id(node_id)
    output.emit(_call("find_node", {"node_id": node_id}, bootstrap))


@app.command(epilog=examples("fogctl dht peers", "fogctl dht peers --json | wc -l"))
@output.with_output
def peers(bootstrap: Bootstrap = None) -> None:
    """Print the verified contacts in the routing table."""
    output.emit(_call("peers", {}, bootstrap))


@app.command(epilog=examples("fogctl dht announce"))
@output.with_output
def announce(bootstrap: Bootstrap = None) -> None:
    """Publish this node's signed descriptor (a node record) under the provider keys.

    Region, operator, price, cost, stake_address, onion, mix_key and tier come from
    the dht.* configuration keys; addresses from dht.advertise or the serving socket.
    """
    output.emit(_call("announce", {}, bootstrap))


@app.command(
    epilog=examples(
        "fogctl dht providers",
        "fogctl dht providers --json | fogctl schedule --jobs examples/batch.yaml -",
    )
)
@output.with_output
def providers(bootstrap: Bootstrap = None) -> None:
    """Print node records of the providers found in the DHT (each signed by itself)."""
    output.emit(_call("providers", {}, bootstrap))


@app.command(
    epilog=examples(
        "fogctl dht pub jobs < msgs.jsonl",
        'echo \'{"job":"j1"}\' | fogctl dht pub jobs -',
    )
)
@output.with_output
def pub(
    topic: Annotated[str, typer.Argument(help="Topic name.")],
    source: Annotated[
        str, typer.Argument(help="File of messages, one per line, or - for stdin.")
    ] = "-",
    bootstrap: Bootstrap = None,
) -> None:
    """Publish each line of SOURCE as a signed message on TOPIC (GossipSub-style).

    Prints a dht_message record per message sent. Each message is at most 4096 bytes.
    """
    import sys

    from fogctl.dht.service import publish
    from fogctl.errors import InvalidInput

    try:
        if source == "-":
            lines = [line.rstrip("\n") for line in sys.stdin if line.strip()]
        else:
            with open(source, encoding="utf-8") as fh:
                lines = [line.rstrip("\n") for line in fh if line.strip()]
    except OSError as exc:
        raise InvalidInput(f"{source}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{source}: not valid UTF-8") from None
    if not lines:
        raise InvalidInput(f"{source}: no messages to publish")
    state = current_state().require()
    output.emit(publish(state, topic, lines, bootstrap))


@app.command(
    epilog=examples(
        "fogctl dht sub jobs",
        "fogctl dht sub jobs --count 1 --json | jq -r .data",
    )
)
@output.with_output
def sub(
    topic: Annotated[str, typer.Argument(help="Topic name.")],
    count: Annotated[
        int, typer.Option(help="Exit after this many messages (0: run until Ctrl-C).")
    ] = 0,
    bootstrap: Bootstrap = None,
) -> None:
    """Print each message published on TOPIC as a dht_message record, as it arrives.

    Uses the serving node when there is one, else joins the network for as long as
    it runs.
    """
    from fogctl.dht.service import subscribe

    if count < 0:
        raise typer.BadParameter("must be 0 or more", param_hint="--count")
    state = current_state().require()
    subscribe(
        state,
        topic,
        output.write_json_line if output.current().json_lines else _row,
        count=count,
        bootstrap=bootstrap,
    )


def _row(rec: dict[str, Any]) -> None:
    output.emit([rec])


@app.command(
    epilog=examples(
        "fogctl dht nat --stun HOST:3478",
        "fogctl dht nat --stun HOST:3478 --stun HOST2:3478 --json | jq -r .nat",
    )
)
@output.with_output
def nat(
    stun: Annotated[
        list[str] | None,
        typer.Option(
            "--stun",
            help="STUN server IP:PORT (repeatable; two servers at different addresses tell "
            "endpoint-independent from symmetric NAT; default: dht.stun).",
        ),
    ] = None,
    port: Annotated[int, typer.Option(help="Local UDP port to probe from (0: any).")] = 0,
    timeout: Annotated[float, typer.Option(help="Seconds to wait per request.")] = 2.0,
) -> None:
    """Report reachability: public, or behind a NAT (and which kind), with the reflexive address.

    Sends RFC 5389 Binding requests from one socket to each STUN server and compares
    the mapped addresses with the local one.
    """
    from fogctl.dht.stun import probe

    state = current_state().require()
    output.emit_one(probe(state, stun or [], port=port, timeout=timeout))


@app.command(
    epilog=examples(
        "fogctl dht connect PEER_ID --stun HOST:3478",
        "fogctl dht connect PEER_ID --stun HOST:3478 --turn HOST:3478 --turn-user USER",
    )
)
@output.with_output
def connect(
    peer_id: Annotated[str, typer.Argument(metavar="PEER_ID", help="The peer's node id.")],
    stun: Annotated[str, typer.Option(help="STUN server IP:PORT (default: dht.stun).")] = "",
    turn: Annotated[
        str, typer.Option(help="TURN server IP:PORT for the relay fallback (default: dht.turn).")
    ] = "",
    turn_user: Annotated[str, typer.Option(help="TURN user (default: dht.turn_user).")] = "",
    message: Annotated[str, typer.Option(help="Text to send once connected.")] = "",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the peer.")] = 30.0,
    bootstrap: Bootstrap = None,
) -> None:
    """Open a UDP path to PEER_ID through NATs: hole punching, else a TURN relay.

    Both peers run this command at about the same time. ICE offers are exchanged as
    signed DHT values; the TURN password comes from dht.turn_password (config or
    FOGCTL_DHT_TURN_PASSWORD). Prints a dht_connection record (path: direct or relay).
    """
    from fogctl.dht.service import ice_connect

    state = current_state().require()
    output.emit_one(
        ice_connect(
            state,
            peer_id,
            stun=stun,
            turn=turn,
            turn_user=turn_user,
            message=message,
            timeout=timeout,
            bootstrap=bootstrap,
        )
    )


@app.command(epilog=examples("fogctl dht discover", "fogctl dht discover --timeout 5 --json"))
@output.with_output
def discover(
    timeout: Annotated[float, typer.Option(help="Seconds to listen.")] = 3.0,
    interface: Annotated[
        str, typer.Option(help="Local IPv4 address to browse on (default: all).")
    ] = "0.0.0.0",
) -> None:
    """Print DHT nodes advertised on the local network (mDNS), as dht_peer records."""
    from fogctl.dht.service import discover as run_discover

    output.emit(run_discover(current_state(), timeout=timeout, interface=interface))
