"""fogctl mesh: delay-tolerant messaging on BPv7 bundles, encrypted end to end."""

import sys
from pathlib import Path
from typing import Annotated

import typer
from fogctl.cli import output
from fogctl.cli.common import examples
from fogctl.cli.common import state as current_state

MESH_HELP = """Delay-tolerant mesh messaging: BPv7 bundles, store-carry-forward, E2E ratchet.

Bundles: RFC 9171 BPv7 in CBOR. Every bundle carries a primary block (CRC-32C by
default; CRC-16/X-25 and none are accepted; the CRC covers the whole block with only
its value bytes zeroed, per RFC 9171 erratum 8043), a hop-count block (limit 7), a
bundle-age block and, once forwarded, a previous-node block. Lifetime defaults to one
hour (send --lifetime). Status reports (received, forwarded, delivered, deleted) are
sent when a bundle asks for them (send --report). Payloads larger than a link allows
are fragmented and reassembled at the destination; overlapping fragments must agree.
Malformed CBOR, wrong CRCs, absurd lengths, conflicting fragments, expired bundles and
bundles past their hop limit are dropped and counted, never fatal.

Store: bundles live in the state directory (database plus content-addressed blobs).
A bundle up to 128 KiB is stored in its database row; a larger one in a blob file
written and fsynced before the row that names it is committed; a crash loses nothing
committed. Group commit: every bundle (and acknowledgement) that arrives in one
socket read is stored in one transaction, and TCPCL's final XFER_ACK, which lets the
sender drop its copy, is sent only after that transaction has committed. Expired
bundles are purged. Quota (mesh.store_quota, bytes, default 256 MiB; the inbox does
not count). Drop policy when full: expired bundles first, then relayed bundles that
expire soonest; a relayed bundle never displaces one this node sent, nor one that
outlives it (it is refused instead, status reason 4); a bundle this node sends may
displace relayed ones.

Convergence layers: TCPCLv4 (RFC 9174), MTCP (bundles as CBOR byte strings, as
dtn7 and uD3TN speak it) and UDP (one bundle per datagram). Neighbours are dialled
from --peer or mesh.peers, or found by mDNS (--mdns, service _dtn-tcpcl._tcp). Other
transports are plugins (fogctl.transports entry points, serve --transport NAME); BLE
is the optional plugins/ble distribution on bleak, untested where no radio exists.

TCPCL TLS (serve --tls, mesh.tls: on by default, require, off): the contact header
offers CAN_TLS; when both sides do, TLS 1.3 starts right after the headers (the
dialling node is the TLS client) and the session runs inside it. Each node has a TLS
key (keys/mesh-tls.key) and a self-signed certificate naming its node ID as a URI
subjectAltName. The listening node is authenticated by that certificate (its SAN
must equal the node ID in its SESS_INIT); the dialling node by a SESS_INIT extension
item (type 0xFC01) holding its certificate and a signature over the TLS channel
binding and its node ID. The first key seen for a node ID is pinned (trust on first
use); a later session with another key for that node is refused and logged. mesh
status shows this node's key (tls_key; made by mesh keys publish or the first TLS
session); mesh keys pin NODE KEY pins a node's key in
advance (a closed set), mesh keys pins lists the pins, mesh keys unpin NODE forgets one. A peer
that does not offer TLS (another implementation) gets plain TCPCL with "on" and is
refused with "require". Routing exchanges (summary vectors, PRoPHET tables) travel in
the session, so over TLS they come from the authenticated peer. MTCP and UDP have no
TLS. BPSec (RFC 9172) blocks are decoded and re-encoded byte for byte but not
applied or checked by the node; the tests verify RFC 9173 Appendix A's
BIB-HMAC-SHA2 and BCB-AES-GCM examples with the RFC's keys.

Routing (mesh.router or --router, one per node): epidemic (summary-vector
anti-entropy), prophet (RFC 6693: P_encounter_max 0.7, P_encounter_first 0.5, delta
0.01, beta 0.9, gamma 0.999 per second, transitivity, aging, GRTR+ forwarding and
acknowledgements of delivered bundles), spray (binary spray-and-wait, L copies:
--copies or mesh.spray_copies, default 8),
flooding (managed flooding: relay within 10 minutes of reception while hops < 7) and
direct (only to the destination). The routing cores are sans-IO: mesh sim runs the
same code.

End-to-end encryption: X3DH-style key agreement against the destination's signed
prekey bundle (mesh keys publish / trust), then the Double Ratchet (X25519,
HKDF-SHA256, ChaCha20-Poly1305): forward secrecy, out-of-order messages, and relays
see only ciphertext; a tampered bundle fails authentication and is dropped.

Simulator (mesh sim): random-waypoint mobility (or a ONE-format contact trace), a
message every --interval seconds between random nodes, each router run on the same
contacts and messages. Metrics are those of the ONE simulator's MessageStatsReport:
delivery ratio = delivered / created; latency = creation to first delivery; overhead
ratio = (relayed - delivered) / delivered, counting every completed transfer (relays,
the delivery itself, transfers of copies later dropped). Messages are made for the
whole run, but only those created in [--warmup, --duration - --cooldown) are counted;
the cool-down defaults to one --lifetime, so every counted message lives its whole
lifetime inside the run (one made a minute before the end is neither delivered nor
lost). Each record also gives generated and delivery_ratio_all, the ratio over every
message made, those cut off at the end counted as undelivered. Epidemic swaps summary
vectors, so a node is never sent a bundle it holds or has received: its overhead is at
most about nodes - 1 per message (simulators without anti-entropy, such as pons-dtn's
epidemic router, count every duplicate reception and report far more).

Names: a node is dtn://NAME/ (mesh.name, --name, default the first 12 hex digits of
the node id); messages go to dtn://NAME/inbox, routing exchanges to dtn://NAME/~routing.
Configuration keys: mesh.name, mesh.router, mesh.spray_copies, mesh.tcpcl, mesh.mtcp,
mesh.udp, mesh.peers, mesh.store_quota, mesh.tls (environment FOGCTL_MESH_NAME and so on)."""

app = typer.Typer(help=MESH_HELP, no_args_is_help=True, short_help=MESH_HELP.split("\n")[0])
keys_app = typer.Typer(
    help="Prekey bundles for end-to-end encryption (X3DH + Double Ratchet).",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")

NameOpt = Annotated[
    str | None,
    typer.Option(
        "--name", help="This node's name (dtn://NAME/); default mesh.name or the node id."
    ),
]


@app.command(
    epilog=examples(
        "fogctl mesh serve --name bob --tcpcl 0.0.0.0:4556 --peer tcpcl://HOST:4556",
        "fogctl mesh serve --router prophet --mdns",
        "fogctl mesh serve --mtcp 127.0.0.1:4224 --peer mtcp://HOST:4224/ud3tn",
    )
)
@output.with_output
def serve(
    name: NameOpt = None,
    router: Annotated[
        str | None,
        typer.Option(help="Routing: epidemic, prophet, spray, flooding or direct (mesh.router)."),
    ] = None,
    tcpcl: Annotated[
        str | None,
        typer.Option(help="TCPCLv4 listen HOST:PORT, or 'off' (default 127.0.0.1:4556)."),
    ] = None,
    mtcp: Annotated[
        str | None, typer.Option(help="MTCP listen HOST:PORT (off by default).")
    ] = None,
    udp: Annotated[str | None, typer.Option(help="UDP listen HOST:PORT (off by default).")] = None,
    peer: Annotated[
        list[str] | None,
        typer.Option(
            "--peer",
            help="A neighbour to dial: tcpcl://HOST:PORT, mtcp://HOST:PORT/NAME or "
            "udp://HOST:PORT/NAME (repeatable).",
        ),
    ] = None,
    poll: Annotated[float, typer.Option(help="Seconds between store scans and redials.")] = 1.0,
    mdns: Annotated[
        bool, typer.Option("--mdns", help="Announce and discover TCPCL nodes by mDNS.")
    ] = False,
    transport: Annotated[
        list[str] | None,
        typer.Option(
            "--transport",
            help="Also run a plugin transport (fogctl.transports entry point, e.g. ble).",
        ),
    ] = None,
    tls: Annotated[
        str | None,
        typer.Option(
            help="TCPCL TLS: on (offer TLS 1.3, fall back to plain TCPCL for peers "
            "without it), require (refuse sessions without TLS) or off (mesh.tls; "
            "default on)."
        ),
    ] = None,
    copies: Annotated[
        int | None,
        typer.Option(
            "--copies",
            metavar="L",
            help="Spray-and-wait: copies of each bundle this node makes (mesh.spray_copies; "
            "default 8).",
        ),
    ] = None,
) -> None:
    """Run a DTN node in the foreground: bundle store, convergence layers, routing.

    Logs to stderr; SIGTERM or Ctrl-C stops it cleanly. Bundles queued with
    'fogctl mesh send' (in another process) are picked up from the shared store.
    """
    from fogctl.mesh.api import serve as engine

    engine(
        current_state(),
        name=name,
        router=router,
        tcpcl=tcpcl,
        mtcp=mtcp,
        udp=udp,
        peers=peer or [],
        poll=poll,
        mdns=mdns,
        transports=transport or [],
        tls=tls,
        copies=copies,
    )


@app.command(
    epilog=examples(
        "fogctl mesh send --to dtn://alice/ < note.txt",
        "echo hi | fogctl mesh send --to dtn://alice/ --lifetime 7200 --json",
        "fogctl mesh send --to dtn://bob/ --plain --fragment 1000 photo.jpg",
    )
)
@output.with_output
def send(
    to: Annotated[str, typer.Option("--to", help="Destination endpoint, e.g. dtn://alice/.")],
    file: Annotated[str, typer.Argument(help="File to send, or - for stdin.")] = "-",
    lifetime: Annotated[float, typer.Option(help="Seconds until the bundle expires.")] = 3600,
    plain: Annotated[
        bool, typer.Option("--plain", help="Do not encrypt (relays can read it).")
    ] = False,
    fragment: Annotated[
        int | None, typer.Option(help="Split into fragments of at most this many payload bytes.")
    ] = None,
    report: Annotated[
        bool, typer.Option("--report", help="Ask the destination for a delivery status report.")
    ] = False,
    name: NameOpt = None,
) -> None:
    """Encrypt a message for its destination and queue it for store-carry-forward.

    Needs the destination's trusted prekeys (see 'fogctl mesh keys trust'). The
    running 'fogctl mesh serve' forwards it until delivered or expired.
    """
    from fogctl.errors import InvalidInput
    from fogctl.mesh.api import send as engine

    if file == "-":
        data = (
            sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
        )
    else:
        try:
            data = Path(file).read_bytes()
        except OSError as exc:
            raise InvalidInput(f"{file}: {exc.strerror or exc}") from None
    rec = engine(
        current_state(),
        to,
        data,
        lifetime_s=lifetime,
        plain=plain,
        fragment_size=fragment,
        report=report,
        name=name,
    )
    output.notice(f"queued {rec.id} for {rec.destination}")
    output.emit_one(rec)


@app.command(epilog=examples("fogctl mesh inbox", "fogctl mesh inbox --json | jq -r .id"))
@output.with_output
def inbox() -> None:
    """List messages delivered to this node (sender, time, size, read or not)."""
    from fogctl.mesh.api import inbox as engine

    output.emit(engine(current_state()))


@app.command(epilog=examples("fogctl mesh read 3f2a9c", "fogctl mesh read 3f2a9c --json"))
@output.with_output
def read(
    message_id: Annotated[str, typer.Argument(metavar="ID", help="Message ID (or a prefix).")],
) -> None:
    """Write a message's content to stdout (its record with --json) and mark it read."""
    from fogctl.mesh.api import read as engine

    rec, data = engine(current_state(), message_id)
    if output.current().json:
        output.emit_one({**rec.to_dict(), "content": data.decode("utf-8", "replace")})
    else:
        sys.stdout.flush()
        if hasattr(sys.stdout, "buffer"):
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            sys.stdout.write(data.decode("utf-8", "replace"))


@app.command(epilog=examples("fogctl mesh peers", "fogctl mesh peers --json | jq .node"))
@output.with_output
def peers() -> None:
    """List neighbours this node has had contact with, and their predictability."""
    from fogctl.mesh.api import peers as engine

    output.emit(engine(current_state()))


@app.command(epilog=examples("fogctl mesh bundles", "fogctl mesh bundles --json | jq .size"))
@output.with_output
def bundles() -> None:
    """List bundles held in the store for forwarding (local and relayed)."""
    from fogctl.mesh.api import bundles as engine

    output.emit(engine(current_state()))


@app.command(epilog=examples("fogctl mesh status", "fogctl mesh status --json | jq .drops"))
@output.with_output
def status(name: NameOpt = None) -> None:
    """Summarise this node: name, router, store use and quota, inbox, peers, keys, and
    how many bundles were dropped (by reason) since the state dir was made."""
    from fogctl.mesh.api import status as engine

    output.emit_one(engine(current_state(), name=name))


@keys_app.command(
    "publish",
    epilog=examples(
        "fogctl mesh keys publish --json > alice.key",
        "fogctl mesh keys publish --rotate",
    ),
)
@output.with_output
def keys_publish(
    rotate: Annotated[
        bool, typer.Option("--rotate", help="Make a new signed prekey and one-time prekeys.")
    ] = False,
    name: NameOpt = None,
) -> None:
    """Print this node's signed prekey bundle (give it to peers; nodes also swap it on
    contact). Compare the fingerprint out of band."""
    from fogctl.mesh.api import keys_publish as engine

    output.emit_one(engine(current_state(), rotate=rotate, name=name))


@keys_app.command(
    "trust",
    epilog=examples(
        "fogctl mesh keys trust alice.key",
        "fogctl mesh keys trust dtn://alice/ --fingerprint '1a2b 3c4d ...'",
        "ssh HOST fogctl mesh keys publish --json | fogctl mesh keys trust -",
    ),
)
@output.with_output
def keys_trust(
    what: Annotated[
        str,
        typer.Argument(metavar="ID", help="Node (dtn://NAME/ or NAME), or a key file, or -."),
    ],
    fingerprint: Annotated[
        str | None, typer.Option(help="Refuse unless the key has this fingerprint.")
    ] = None,
) -> None:
    """Trust a node's prekeys: messages to it may then be sent, and its messages are
    shown as verified."""
    from fogctl.mesh.api import keys_trust as engine

    output.emit(
        engine(current_state(), what, fingerprint=fingerprint),
        columns=["node", "fingerprint", "one_time_prekeys", "trusted"],
    )


@keys_app.command("list", epilog=examples("fogctl mesh keys list", "fogctl mesh keys list --json"))
@output.with_output
def keys_list() -> None:
    """List known prekey bundles, their fingerprints and whether they are trusted."""
    from fogctl.mesh.api import keys_list as engine

    output.emit(
        engine(current_state()), columns=["node", "fingerprint", "one_time_prekeys", "trusted"]
    )


@keys_app.command("pins", epilog=examples("fogctl mesh keys pins", "fogctl mesh keys pins --json"))
@output.with_output
def keys_pins() -> None:
    """List pinned TCPCL TLS keys (first key seen per node, or pinned in advance)."""
    from fogctl.mesh.api import tls_pins as engine

    output.emit(engine(current_state()))


@keys_app.command(
    "pin",
    epilog=examples(
        "fogctl mesh keys pin dtn://bob/ 3f2a...e91c   # bob's 'mesh status' tls_key",
    ),
)
@output.with_output
def keys_pin(
    node: Annotated[str, typer.Argument(help="Node (dtn://NAME/ or NAME).")],
    key: Annotated[
        str, typer.Argument(help="SHA-256 of its TLS public key ('mesh status': tls_key).")
    ],
) -> None:
    """Pin a node's TLS key in advance: sessions claiming that node with another key
    are refused (instead of trusting the first key seen)."""
    from fogctl.mesh.api import tls_pin as engine

    output.emit_one(engine(current_state(), node, key))


@keys_app.command("unpin", epilog=examples("fogctl mesh keys unpin dtn://bob/"))
@output.with_output
def keys_unpin(
    node: Annotated[str, typer.Argument(help="Node (dtn://NAME/ or NAME).")],
) -> None:
    """Forget a node's TLS pin, e.g. after it legitimately got a new key (its next key
    is then trusted on first use)."""
    from fogctl.mesh.api import tls_unpin as engine

    output.emit_one(engine(current_state(), node))


@app.command(
    epilog=examples(
        "fogctl mesh sim --nodes 50 --router prophet",
        "fogctl mesh sim --nodes 50 --router epidemic --router spray --copies 3 --table",
        "fogctl mesh sim --buffer 20 --plot sim.png --table",
        "fogctl mesh sim --trace examples/mesh-trace.txt --duration 600 --interval 10 "
        "--lifetime 300",
    )
)
@output.with_output
def sim(
    nodes: Annotated[int, typer.Option(help="Number of nodes (random waypoint).")] = 40,
    router: Annotated[
        list[str] | None,
        typer.Option("--router", help="Router(s) to compare (repeatable; default all)."),
    ] = None,
    duration: Annotated[
        float, typer.Option(help="Seconds simulated (contacts and message creation).")
    ] = 7200,
    warmup: Annotated[
        float, typer.Option(help="Messages made in the first SECONDS are not counted.")
    ] = 0,
    cooldown: Annotated[
        float | None,
        typer.Option(
            help="Messages made in the last SECONDS are not counted "
            "(default: one --lifetime; 0 counts those cut off at the end as undelivered)."
        ),
    ] = None,
    area: Annotated[float, typer.Option(help="Side of the square area in metres.")] = 1000,
    range_m: Annotated[float, typer.Option("--range", help="Radio range in metres.")] = 50,
    speed_min: Annotated[float, typer.Option(help="Minimum speed (m/s).")] = 1.0,
    speed_max: Annotated[float, typer.Option(help="Maximum speed (m/s).")] = 5.0,
    interval: Annotated[float, typer.Option(help="Mean seconds between messages.")] = 30,
    lifetime: Annotated[float, typer.Option(help="Message lifetime in seconds.")] = 3600,
    buffer: Annotated[
        int | None, typer.Option(help="Bundles each node can hold (default unlimited).")
    ] = None,
    trace: Annotated[
        Path | None, typer.Option(help="Contact trace file (TIME CONN A B up|down) instead.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same contacts).")] = 1,
    plot: Annotated[
        Path | None, typer.Option(help="Also write a bar chart (PNG or SVG) here.")
    ] = None,
    copies: Annotated[
        int | None,
        typer.Option(
            "--copies", metavar="L", help="Spray-and-wait's copies per message (default 8)."
        ),
    ] = None,
) -> None:
    """Simulate contacts and compare routers: delivery ratio, latency, overhead.

    Every router runs the same sans-IO code as 'mesh serve', over the same contacts
    and messages.
    """
    from fogctl.errors import InvalidInput
    from fogctl.mesh.api import simulate

    if speed_min <= 0 or speed_max < speed_min:
        raise InvalidInput("--speed-min must be positive and at most --speed-max")
    if buffer is not None and buffer < 1:
        raise InvalidInput("--buffer must be at least 1")
    recs = simulate(
        router or [],
        plot=plot,
        nodes=nodes,
        duration=duration,
        warmup=warmup,
        cooldown=cooldown,
        width=area,
        height=area,
        range_m=range_m,
        speed=(speed_min, speed_max),
        interval=interval,
        lifetime=lifetime,
        buffer=buffer,
        trace=trace,
        seed=seed,
        copies=copies,
    )
    if plot is not None:
        output.notice(f"wrote {plot}")
    output.emit(
        recs,
        columns=[
            "router",
            "nodes",
            "messages",
            "delivered",
            "delivery_ratio",
            "latency_median_s",
            "overhead",
            "dropped",
        ],
    )
