"""fogctl mix: a Loopix-style Sphinx mixnet (nodes, directory, send/recv/reply, bench)."""

from pathlib import Path
from typing import Annotated

import typer
from fogctl.cli import output
from fogctl.cli.common import examples
from fogctl.cli.common import state as current_state

MIX_HELP = """A Sphinx mixnet: run mix nodes and providers, send and receive anonymously.

Topology (Loopix, stratified): client -> its provider -> one mix from each of layers
1..n -> the recipient's provider, where the recipient pulls its messages. Nodes publish
signed descriptors (id, layer, X25519 key, address, epoch, operator, region, expiry;
Ed25519 by a per-mix key under keys/ or the node identity) to directory nodes, and
into the DHT when a DHT node serves from the same state dir (fogctl dht serve): under
the keys fogctl:mix/descriptors/0..f, one bundle per publishing node. Clients fetch
from a node (--from) or the DHT, and refuse unsigned, rebound or expired descriptors
from either source alike; they pick one node per layer, keeping operators and regions
distinct when the directory allows (route says when it cannot).

Entry: a provider takes packets only from clients registered with it (REGISTER proves
the client's X25519 key; every SUBMIT carries an HMAC under the client-provider
shared secret; serve --clients limits registration to an allow-list), and UDP
packets only from the addresses of nodes in its directory; each refusal is counted
(fogctl mix stats). Clients register automatically.

Transport: mix-to-mix packets are UDP datagrams by default, one 2,432-byte packet
each, which IP fragments in two on a 1,500-byte MTU path (losing either fragment
loses the packet); loss is handled end to end by acks and resends over other paths,
and measured by loop cover. Where fragments do not pass, serve --transport tcp sends
over one TCP connection per next hop instead (every node accepts both). Clients use
TCP to their provider.

Packets: Sphinx, every packet 2,432 bytes on the wire: a 384-byte header (alpha 32,
routing information 7 x 48, MAC 16) and a 2,048-byte payload; at most 7 Sphinx hops
(entry provider, 5 mix layers, exit provider). X25519 with the blinding chain computed
once (hops + 1 scalar multiplications per packet), HKDF-SHA256 per-hop keys,
AES-128-CTR routing stream, HMAC-SHA256/16 header MAC checked in constant time, and
LIONESS (ChaCha20 + BLAKE2b) over the payload so a tagged payload is caught by the
recipient. A message of up to 69,440 bytes travels as up to 64 packets.

Mixing and cover (config mix.* or FOGCTL_MIX_*): every hop holds a packet an
exponential time whose mean is mix.mean_delay (default 0.05 s; Nym uses 0.015 s, the
Loopix code 0.001 s), drawn by the sender and carried in the header. Clients emit a
payload stream at mix.lambda_p (default 2/s) into which real messages are substituted,
loop cover at mix.lambda_l (1/s) and drop cover at mix.lambda_d (1/s); mixes send loop
cover at mix.lambda_m (0.5/s). Nym runs lambda_p about 50/s and lambda_l 5/s. Cover
and real packets have the same size and path structure. Each message carries an ack
reply block; without an ack in mix.ack_timeout (10 s) it is resent over a path
avoiding the previous mixes, up to mix.max_tries (3).

Replay protection: the per-hop replay tag goes into a Bloom filter persisted under the
state dir, sized by default for 25 h at 2,000 packets/s at a false-positive rate of
1e-5 (180 million tags: a 539 MB sparse file, 17 hashes); keys rotate every --epoch
(24 h) with an --overlap (1 h) where both keys and both filters are live. A full
filter starts a new generation instead of failing. Delays can be drawn from
ECVRF-EDWARDS25519-SHA512-TAI (RFC 9381) so that they are verifiable.

Anonymity: with little traffic a message hides among few senders; fogctl mix anonymity
estimates the sender entropy for a load instead of promising any.

Measured (tests/bench/bench_mix.py on a shared 2-core AMD EPYC VM at load average
3-4.5, each figure beside its same-run reference, medians of many short alternating
rounds): per-hop processing 87 us against 61.5 us for its two X25519 operations
(1.41-1.42x; the primitive calls alone are 1.37-1.38x); a 5-hop packet is created in
300 us (one fixed-base and five X25519: 172 us); against the sphinxmix package,
creation is 3.1x faster than its P-224 mode and 4.0x faster than its Curve25519
mode, per-hop processing 2.0x and 1.4x faster; a mix and a provider sharing one core
relay 2,400-3,300 packets/s over loopback UDP; measured hold times pass a
Kolmogorov-Smirnov test against the configured exponential (p 0.04-0.13); a client's
inter-departure times with and without real messages are indistinguishable
(two-sample KS p = 1.0).
"""

app = typer.Typer(help=MIX_HELP, no_args_is_help=True)
directory_app = typer.Typer(
    help="Signed mix descriptors: publish, fetch, list.", no_args_is_help=True
)
app.add_typer(directory_app, name="directory")

HopsOpt = Annotated[
    int | None,
    typer.Option("--hops", min=1, max=5, help="Mix layers to cross (config mix.hops, default 3)."),
]
ProviderOpt = Annotated[
    str | None,
    typer.Option(
        "--provider", metavar="ID", help="Use this provider (node id) as our entry/inbox."
    ),
]


@app.command(
    epilog=examples(
        "fogctl mix serve --provider --port 9000",
        "fogctl mix serve --layer 2 --port 9002 --bootstrap HOST:9000 --operator acme --region eu",
        "fogctl mix serve --layer 1 --port 9001 --host 0.0.0.0 --advertise HOST:9001",
        "fogctl mix serve --provider --port 9000 --clients allowed-clients.txt",
        "fogctl mix serve --layer 3 --port 9003 --transport tcp --bootstrap HOST:9000",
    )
)
@output.with_output
def serve(
    layer: Annotated[
        int, typer.Option("--layer", min=0, max=5, help="Mix layer 1..5 (0 = provider).")
    ] = 1,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="UDP and TCP port (0 = any).")
    ] = 9000,
    provider: Annotated[
        bool, typer.Option("--provider", help="Run an entry/exit provider (layer 0).")
    ] = False,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    advertise: Annotated[
        str | None,
        typer.Option(
            "--advertise", metavar="HOST:PORT", help="Address published in the descriptor."
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Key name under keys/ (default: mix-PORT / provider-PORT)."),
    ] = None,
    identity: Annotated[
        bool,
        typer.Option(
            "--identity",
            help="Sign descriptors with the node identity (fogctl init) instead of a per-mix key.",
        ),
    ] = False,
    operator: Annotated[
        str, typer.Option("--operator", help="Operator named in the descriptor (path diversity).")
    ] = "unknown",
    region: Annotated[
        str, typer.Option("--region", help="Region named in the descriptor (path diversity).")
    ] = "unknown",
    bootstrap: Annotated[
        list[str] | None,
        typer.Option(
            "--bootstrap",
            metavar="HOST:PORT",
            help="Node to publish to and fetch the directory from (repeatable).",
        ),
    ] = None,
    directory: Annotated[
        list[Path] | None,
        typer.Option(
            "--directory", metavar="FILE", help="Descriptor JSON Lines file to load (repeatable)."
        ),
    ] = None,
    sync: Annotated[
        float, typer.Option("--sync", min=0.1, help="Seconds between directory syncs.")
    ] = 30.0,
    mean_delay: Annotated[
        float | None,
        typer.Option(
            "--mean-delay",
            help="Mean per-hop delay, seconds, for this node's loop cover (mix.mean_delay).",
        ),
    ] = None,
    lambda_m: Annotated[
        float | None,
        typer.Option("--lambda-m", help="Loop-cover rate of this mix, per second (mix.lambda_m)."),
    ] = None,
    epoch: Annotated[int, typer.Option("--epoch", min=60, help="Key epoch, seconds.")] = 24 * 3600,
    overlap: Annotated[
        int, typer.Option("--overlap", min=0, help="Seconds the previous epoch's key stays live.")
    ] = 3600,
    clients: Annotated[
        Path | None,
        typer.Option(
            "--clients",
            metavar="FILE",
            help="Provider: serve only these clients (one key or PUBKEY@PROVIDER per line).",
        ),
    ] = None,
    transport: Annotated[
        str,
        typer.Option(
            "--transport",
            help="How to send packets to the next hop: udp (one datagram each, fragmented "
            "on a 1,500-byte MTU) or tcp (a connection per next hop). Every node accepts both.",
        ),
    ] = "udp",
    replay_capacity: Annotated[
        int,
        typer.Option(
            "--replay-capacity",
            min=1000,
            help="Packets per epoch the replay filter is sized for (default 25 h at 2,000/s).",
        ),
    ] = 25 * 3600 * 2000,
) -> None:
    """Run a mix node or provider in the foreground until SIGTERM.

    Packets arrive on UDP; clients, directory requests and stats use TCP on the same
    port. A provider takes packets only from clients registered with it (each packet
    authenticated with the client's key; --clients restricts who may register) and
    UDP only from nodes of its directory; refusals are counted (fogctl mix stats).
    Keys rotate every --epoch with an --overlap window; replay filters persist
    under the state dir. Logs go to stderr; final counters are printed as a
    mix_stats record on exit. examples/mix-node.service is a systemd unit for it.
    """
    import logging

    from fogctl.mix.engine import ServeOptions, params_from_config
    from fogctl.mix.engine import serve as run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    state = current_state()
    params = params_from_config(state, mean_delay=mean_delay, lambda_m=lambda_m)
    opts = ServeOptions(
        layer=0 if provider else layer,
        port=port,
        host=host,
        advertise=advertise,
        name=name,
        operator=operator,
        region=region,
        bootstrap=tuple(bootstrap or ()),
        directory=tuple(directory or ()),
        sync=sync,
        epoch_s=epoch,
        overlap_s=min(overlap, epoch - 1),
        replay_capacity=replay_capacity,
        use_identity=identity,
        clients=clients,
        transport=transport,
    )
    output.emit_one(run(state, opts, params))


@app.command(
    epilog=examples(
        "fogctl mix client",
        "fogctl mix client --provider ID --poll 1   # then send/recv/reply go through it",
    )
)
@output.with_output
def client(
    provider: ProviderOpt = None,
    poll: Annotated[
        float, typer.Option("--poll", min=0.05, help="Seconds between pulls from the provider.")
    ] = 0.5,
) -> None:
    """Run this client in the foreground: cover streams all the time, until SIGTERM.

    Keeps the Loopix payload (real messages substituted), loop and drop streams
    running so that sending is not marked by the start of cover traffic; pulls and
    acks arriving messages and resends lost ones. While it runs, send, recv and reply
    for this state dir go through it (a Unix socket under the state dir). Every minute
    it re-fetches the directory from its provider, and from the DHT when a DHT node
    serves from the same state dir, so it follows key epochs and new nodes.
    """
    import logging

    from fogctl.mix.daemon import run_client
    from fogctl.mix.engine import params_from_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    state = current_state()
    output.emit_one(run_client(state, params_from_config(state), provider=provider, poll=poll))


@app.command(
    epilog=examples(
        "fogctl mix send --to PUBKEY@PROVIDER < message.txt",
        'echo hi | fogctl mix send --to "$(cat friend.addr)" --hops 5 --json',
        "fogctl mix send --to PUBKEY@PROVIDER --no-wait --no-reply < note",
    )
)
@output.with_output
def send(
    to: Annotated[
        str, typer.Option("--to", metavar="ADDRESS", help="Recipient mix address, PUBKEY@PROVIDER.")
    ],
    hops: HopsOpt = None,
    input_path: Annotated[
        str,
        typer.Option(
            "--input", "-i", metavar="FILE", help="Read the message from FILE ('-' = stdin)."
        ),
    ] = "-",
    no_reply: Annotated[
        bool, typer.Option("--no-reply", help="Do not include a reply block (SURB).")
    ] = False,
    wait: Annotated[
        float,
        typer.Option(
            "--wait", min=0, help="Seconds to keep cover traffic running while waiting for the ack."
        ),
    ] = 30.0,
    no_wait: Annotated[
        bool,
        typer.Option(
            "--no-wait", help="Hand the packet to the provider and exit (no ack, no resend)."
        ),
    ] = False,
    no_cover: Annotated[
        bool,
        typer.Option(
            "--no-cover",
            help="Send without cover streams (weaker anonymity; the packet leaves at once).",
        ),
    ] = False,
    provider: ProviderOpt = None,
) -> None:
    """Send a message through a fresh stratified path, with Loopix cover traffic.

    The message travels in a fixed-size Sphinx packet with an ack block; until the
    recipient's ack arrives, cover streams keep running, and a lost packet is resent
    over a different path. A packet carries 1,085 bytes of message; longer messages
    travel as up to 64 packets (69,440 bytes), each acknowledged and resent alone.

    Without a running `fogctl mix client`, cover traffic starts when you send, which
    an observer can see; run the client to keep the streams going all the time (send
    then hands the message to it).
    """
    from fogctl.mix.engine import read_input
    from fogctl.mix.engine import send as run

    data = read_input(input_path)
    rec = run(
        current_state(),
        to,
        data,
        hops=hops,
        want_reply=not no_reply,
        wait=0.0 if no_wait else wait,
        cover=not no_cover,
        provider=provider,
    )
    output.emit_one(rec)


@app.command(
    epilog=examples(
        "fogctl mix recv",
        "fogctl mix recv --wait 30 --json | jq -r .data",
    )
)
@output.with_output
def recv(
    wait: Annotated[
        float,
        typer.Option(
            "--wait", min=0, help="Keep polling up to this many seconds until something arrives."
        ),
    ] = 0.0,
    provider: ProviderOpt = None,
) -> None:
    """Fetch messages waiting at this client's provider (SURB replies included).

    Each new message is acknowledged at once through its ack block, kept in the
    state dir (for reply), and printed as a mix_message record.
    """
    from fogctl.mix.engine import recv as run

    output.emit(run(current_state(), wait=wait, provider=provider))


@app.command(
    epilog=examples(
        "fogctl mix reply 3f2a9c < answer.txt",
        "echo thanks | fogctl mix reply MSG_ID",
    )
)
@output.with_output
def reply(
    msg_id: Annotated[
        str, typer.Argument(metavar="MSG_ID", help="Id (or unique prefix) of a received message.")
    ],
    input_path: Annotated[
        str,
        typer.Option(
            "--input", "-i", metavar="FILE", help="Read the answer from FILE ('-' = stdin)."
        ),
    ] = "-",
) -> None:
    """Answer a received message through its single-use reply block.

    The reply is indistinguishable from a forward packet at every mix; you never
    learn who the sender is, and the block cannot be used twice.
    """
    from fogctl.mix.engine import read_input
    from fogctl.mix.engine import reply as run

    output.emit_one(run(current_state(), msg_id, read_input(input_path)))


@app.command(
    epilog=examples("fogctl mix route --hops 5", "fogctl mix route --json | jq -r .address")
)
@output.with_output
def route(
    hops: HopsOpt = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed the choice (for reproducible demos).")
    ] = None,
) -> None:
    """Show the path a message would take now, one mix_hop record per hop."""
    from fogctl.mix.engine import params_from_config
    from fogctl.mix.engine import route as run

    state = current_state()
    output.emit(run(state, params_from_config(state, hops=hops).hops, seed=seed))


@app.command(epilog=examples("fogctl mix address", "fogctl mix address --provider ID > my.addr"))
@output.with_output
def address(provider: ProviderOpt = None) -> None:
    """Print this client's mix address (PUBKEY@PROVIDER) for others to send to.

    With mix.vrf_delays on, hop delays are drawn from ECVRF-EDWARDS25519-SHA512-TAI
    (RFC 9381) and their proofs kept in the state dir; the record then also carries
    the VRF public key that verifies them.
    """
    from fogctl.mix.engine import client_address, vrf_key
    from fogctl.mix.vrf import public_key

    state = current_state()
    addr = client_address(state, provider)
    seed = vrf_key(state)
    rec = {"kind": "mix_address", "address": addr}
    if seed is not None:  # mix.vrf_delays is on: auditors need this key
        rec["vrf_public_key"] = public_key(seed).hex()
    output.emit_one(rec)


@app.command(epilog=examples("fogctl mix stats --node HOST:9000"))
@output.with_output
def stats(
    node: Annotated[str, typer.Option("--node", metavar="HOST:PORT", help="A running node.")],
) -> None:
    """Counters of a running node: relayed, stored, loops, and drops by reason."""
    from fogctl.mix.engine import node_stats

    output.emit_one(node_stats(node))


@app.command(
    epilog=examples(
        "fogctl mix anonymity --senders 100 --rate 10 --mean-delay 0.05 --hops 5",
        "fogctl mix anonymity --senders 1   # the honest answer: a set of one",
        "fogctl mix anonymity --node HOST:9000 --window 10   # what traffic there gives now",
    )
)
@output.with_output
def anonymity(
    senders: Annotated[int, typer.Option("--senders", min=1, help="Active clients.")] = 10,
    rate: Annotated[
        float,
        typer.Option("--rate", min=0.001, help="Packets per second per client (real + cover)."),
    ] = 3.0,
    mean_delay: Annotated[
        float, typer.Option("--mean-delay", min=0.0001, help="Mean per-hop delay, seconds.")
    ] = 0.05,
    hops: Annotated[int, typer.Option("--hops", min=1, max=5, help="Mix layers crossed.")] = 3,
    samples: Annotated[int, typer.Option("--samples", min=10, help="Messages simulated.")] = 300,
    node: Annotated[
        str | None,
        typer.Option(
            "--node",
            metavar="HOST:PORT",
            help="Measure the load at this running node instead of assuming --senders/--rate.",
        ),
    ] = None,
    window: Annotated[
        float, typer.Option("--window", min=0.1, help="Seconds to observe --node.")
    ] = 5.0,
) -> None:
    """Estimate the sender anonymity a message gets at this load (entropy, bits).

    A simulation in the manner of the Loopix evaluation against a global passive
    observer; with little traffic it reports an anonymity set of one.
    """
    if node is not None:
        from fogctl.mix.engine import observed_anonymity

        output.emit_one(observed_anonymity(current_state(), node, window=window, hops=hops))
        return
    from fogctl.mix.anonymity import simulate_entropy

    output.emit_one(simulate_entropy(senders, rate, mean_delay, hops, samples=samples))


@app.command(epilog=examples("fogctl mix bench", "fogctl mix bench --hops 5 --json"))
@output.with_output
def bench(
    hops: Annotated[
        int, typer.Option("--hops", min=1, max=7, help="Hops of the benchmark packet.")
    ] = 5,
    repeat: Annotated[
        int, typer.Option("--repeat", min=3, help="Rounds per figure (median).")
    ] = 30,
) -> None:
    """Per-hop processing and packet creation cost beside the X25519 floor, same run."""
    from fogctl.mix.bench import bench_sphinx

    output.emit(bench_sphinx(hops=hops, repeat=repeat))


DhtOpt = Annotated[
    bool | None,
    typer.Option(
        "--dht/--no-dht",
        help="Use the DHT (default: when a local 'fogctl dht serve' runs, --dht-bootstrap "
        "is given, or no node is named).",
        show_default=False,
    ),
]
DhtBootstrapOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--dht-bootstrap",
        metavar="HOST:PORT",
        help="DHT node to join through when none serves locally (repeatable; "
        "default dht.bootstrap, then the saved routing table).",
    ),
]


@directory_app.command(
    "fetch",
    epilog=examples(
        "fogctl mix directory fetch --from HOST:9000",
        "fogctl mix directory fetch            # from the DHT (local node or dht.bootstrap)",
        "fogctl mix directory fetch --dht-bootstrap HOST:8468 --json | jq -r .address",
    ),
)
@output.with_output
def directory_fetch(
    source: Annotated[
        str | None, typer.Option("--from", metavar="HOST:PORT", help="A mix node to fetch from.")
    ] = None,
    dht: DhtOpt = None,
    dht_bootstrap: DhtBootstrapOpt = None,
) -> None:
    """Fetch signed descriptors from a node and/or the DHT; keep the verified ones.

    Descriptors from the DHT are checked exactly like a node's: unsigned, expired or
    re-bound ones (signed by a key that is not their id's) are refused, named on
    stderr, and never kept. Prints every verified descriptor now known.
    """
    from fogctl.mix.engine import fetch_descriptors

    rep = fetch_descriptors(current_state(), source, dht=dht, bootstrap=tuple(dht_bootstrap or ()))
    for node_id, why in rep.refused:
        output.notice(f"refused {node_id[:12]}: {why}")
    if rep.from_dht or dht:
        output.notice(f"{rep.from_dht} descriptor(s) found in the DHT")
    output.emit(rep.descriptors)


@directory_app.command(
    "ls", epilog=examples("fogctl mix directory ls", "fogctl mix directory ls --json | jq .layer")
)
@output.with_output
def directory_ls() -> None:
    """List the verified descriptors known here (refused ones are named on stderr)."""
    from fogctl.mix.engine import directory_ls as run

    good, refused = run(current_state())
    for node_id, why in refused:
        output.notice(f"refused {node_id[:12]}: {why}")
    output.emit(good)


@directory_app.command(
    "publish",
    epilog=examples(
        "fogctl mix directory publish --to HOST:9000",
        "fogctl mix directory publish          # into the DHT via the local 'fogctl dht serve'",
        "fogctl mix directory publish --to HOST:9000 --no-dht descriptors.jsonl",
    ),
)
@output.with_output
def directory_publish(
    to: Annotated[
        str | None, typer.Option("--to", metavar="HOST:PORT", help="Mix node to publish to.")
    ] = None,
    source: Annotated[
        str | None,
        typer.Argument(
            metavar="[FILE|-]", help="Descriptors to publish (default: this state dir's own nodes)."
        ),
    ] = None,
    dht: DhtOpt = None,
    dht_bootstrap: DhtBootstrapOpt = None,
) -> None:
    """Publish signed descriptors to a node (it verifies them) and into the DHT.

    With a local DHT node running (fogctl dht serve) the descriptors also go into the
    DHT, under fogctl:mix/descriptors/0..f, merged with what this node published
    there before; --dht forces it (joining briefly), --no-dht skips it.
    """
    from fogctl.errors import InvalidInput
    from fogctl.mix.engine import directory_publish as run
    from fogctl.mix.engine import own_descriptors
    from fogctl.mix.records import MixDescriptor
    from fogctl.records import read_records

    state = current_state()
    if source is None:
        descs = own_descriptors(state)
        if not descs:
            raise InvalidInput("no node is served from this state dir; name a FILE or '-'")
    else:
        descs = [r for r in read_records(source) if isinstance(r, MixDescriptor)]
    rep = run(state, to, descs, dht=dht, bootstrap=tuple(dht_bootstrap or ()))
    if rep.dht_keys:
        output.notice(
            f"published {len(rep.descriptors)} descriptor(s) in the DHT "
            f"({rep.dht_keys} key(s), each stored on at least {rep.dht_stored_on} peer(s)"
            + (": no DHT peer holds them yet)" if not rep.dht_stored_on else ")")
        )
    output.emit(rep.descriptors)
