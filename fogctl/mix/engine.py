"""The functions ``fogctl mix`` calls: one per command, usable without the CLI.

State kept in the state directory:

- ``keys/mix-client.x25519`` (0600): this client's X25519 key (its mix address);
- ``keys/mix-<name>.ed25519`` / ``mix-<name>-<epoch>.x25519``: per-mix node keys;
- ``mix/directory.jsonl``: verified descriptors fetched with ``directory fetch``;
- ``mix/<name>/replay-*.bloom``: a node's replay filters;
- database tables ``mix_surbs`` (SURB keys we handed out), ``mix_inbox`` (received
  messages and their reply SURBs) and ``mix_client`` (the chosen provider).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from fogctl.errors import InvalidInput, OperationFailed, Refused, StateError
from fogctl.mix import sphinx
from fogctl.mix.directory import Topology, select_path
from fogctl.mix.message import MAX_DATA
from fogctl.mix.node import (
    Acked,
    ClientAddress,
    Delivered,
    Failed,
    MixClient,
    Params,
    ReplyReceived,
    SurbRecord,
)
from fogctl.mix.records import (
    AnonymityRecord,
    MixDescriptor,
    MixHopRecord,
    MixMessageRecord,
    MixSentRecord,
    MixStatsRecord,
)
from fogctl.state import State
from fogctl.state.atomic import create_exclusive

__all__ = [
    "client_address",
    "directory_fetch",
    "directory_ls",
    "directory_publish",
    "recv",
    "reply",
    "route",
    "send",
    "serve",
]

log = logging.getLogger("fogctl.mix")

_MIGRATIONS = [
    """
    CREATE TABLE mix_surbs (
        identifier BLOB PRIMARY KEY,
        keys       BLOB NOT NULL,
        purpose    TEXT NOT NULL,
        msg_id     BLOB NOT NULL,
        created    REAL NOT NULL
    );
    CREATE TABLE mix_inbox (
        msg_id      TEXT PRIMARY KEY,
        type        TEXT NOT NULL,
        data        BLOB NOT NULL,
        reply_surb  BLOB,
        in_reply_to TEXT,
        received_at REAL NOT NULL
    );
    CREATE TABLE mix_client (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    "ALTER TABLE mix_inbox ADD COLUMN shown INTEGER NOT NULL DEFAULT 1;",
    """
    CREATE TABLE mix_vrf (
        alpha   BLOB PRIMARY KEY,
        proof   BLOB NOT NULL,
        created REAL NOT NULL
    );
    """,
]


def params_from_config(state: State, **flags: object) -> Params:
    """Mixing parameters: flags > FOGCTL_MIX_* > config.yaml (``mix:``) > defaults."""
    d = Params()
    cfg = state.config

    def get(key: str, default: float) -> float:
        flag = flags.get(key)
        value = cfg.get(f"mix.{key}", default) if flag is None else flag
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise InvalidInput(f"mix.{key}: expected a number, got {value!r}") from None

    p = Params(
        hops=int(get("hops", d.hops)),
        mean_delay=get("mean_delay", d.mean_delay),
        lambda_p=get("lambda_p", d.lambda_p),
        lambda_l=get("lambda_l", d.lambda_l),
        lambda_d=get("lambda_d", d.lambda_d),
        lambda_m=get("lambda_m", d.lambda_m),
        ack_timeout=get("ack_timeout", d.ack_timeout),
        max_tries=int(get("max_tries", d.max_tries)),
    )
    if not 1 <= p.hops <= sphinx.MAX_HOPS - 2:
        raise InvalidInput(f"--hops must be 1..{sphinx.MAX_HOPS - 2}")
    if min(p.mean_delay, p.lambda_p, p.lambda_l, p.lambda_d, p.lambda_m) < 0:
        raise InvalidInput("delays and rates must not be negative")
    return p


# -- client state ----------------------------------------------------------------------


def _db(state: State):  # type: ignore[no-untyped-def]
    db = state.db
    db.migrate("mix", _MIGRATIONS)
    return db


def _client_secret(state: State) -> bytes:
    path = state.keys_dir / "mix-client.x25519"
    state.keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    create_exclusive(path, os.urandom(32), mode=0o600)
    key = path.read_bytes()
    if len(key) != 32:
        raise StateError(f"{path}: not a 32-byte X25519 key")
    return key


def _directory_path(state: State) -> Path:
    return state.subdir("mix") / "directory.jsonl"


def _topology(state: State, now: float) -> Topology:
    from fogctl.mix.directory import load_directory

    path = _directory_path(state)
    if not path.exists():
        raise InvalidInput(
            "no mix directory here: run 'fogctl mix directory fetch' first "
            "(--from HOST:PORT for a mix node, else the DHT)"
        )
    topo = Topology(load_directory(path), now)
    if not topo.by_id:
        raise InvalidInput(f"{path}: no valid (signed, unexpired) descriptors")
    return topo


def _provider(state: State, topo: Topology, pinned: str | None) -> MixDescriptor:
    db = _db(state)
    if pinned is None:
        rows = db.query("SELECT value FROM mix_client WHERE key = 'provider'")
        pinned = rows[0]["value"] if rows else None
    if pinned is not None:
        d = topo.node(pinned)
        if d is None or d.layer != 0:
            raise InvalidInput(f"provider {pinned[:12]} is not in the directory")
    else:
        if not topo.providers:
            raise InvalidInput("the directory has no provider")
        d = topo.providers[0]
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO mix_client(key, value) VALUES('provider', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (d.id,),
        )
    return d


def _load_surbs(state: State) -> dict[bytes, SurbRecord]:
    out = {}
    for row in _db(state).query("SELECT identifier, keys, purpose, msg_id FROM mix_surbs"):
        out[bytes(row["identifier"])] = SurbRecord(
            sphinx.SurbKeys.from_bytes(bytes(row["keys"])), row["purpose"], bytes(row["msg_id"])
        )
    return out


def _save_surbs(state: State, surbs: dict[bytes, SurbRecord], used: Sequence[bytes]) -> None:
    now = time.time()
    with _db(state).transaction() as conn:
        for ident, rec in surbs.items():
            conn.execute(
                "INSERT OR IGNORE INTO mix_surbs VALUES (?, ?, ?, ?, ?)",
                (ident, rec.keys.to_bytes(), rec.purpose, rec.msg_id, now),
            )
        for ident in used:
            conn.execute("DELETE FROM mix_surbs WHERE identifier = ?", (ident,))


@dataclass
class _Client:
    state: State
    secret: bytes
    topo: Topology
    provider: MixDescriptor
    core: MixClient


def vrf_key(state: State) -> bytes | None:
    """The VRF key (``keys/mix-vrf.ed25519``, 0600) when ``mix.vrf_delays`` is on."""
    if not state.config.get("mix.vrf_delays", False):
        return None
    path = state.keys_dir / "mix-vrf.ed25519"
    state.keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    create_exclusive(path, os.urandom(32), mode=0o600)
    seed = path.read_bytes()
    if len(seed) != 32:
        raise StateError(f"{path}: not a 32-byte Ed25519 seed")
    return seed


def save_vrf_proofs(state: State, core: MixClient) -> None:
    """Keep the proofs of VRF-drawn delays so the draws can be audited later."""
    if not core.vrf_proofs:
        return
    now = time.time()
    with _db(state).transaction() as conn:
        conn.executemany(
            "INSERT OR IGNORE INTO mix_vrf VALUES (?, ?, ?)",
            [(a, p, now) for a, p in core.vrf_proofs],
        )
    core.vrf_proofs.clear()


def _client(state: State, params: Params, provider: str | None, now: float) -> _Client:
    topo = _topology(state, now)
    prov = _provider(state, topo, provider)
    secret = _client_secret(state)
    core = MixClient(
        secret,
        bytes.fromhex(prov.id),
        topo,
        params=params,
        rng=random.SystemRandom(),
        vrf_key=vrf_key(state),
    )
    core.surbs.update(_load_surbs(state))
    return _Client(state, secret, topo, prov, core)


def client_address(state: State, provider: str | None = None) -> str:
    """This client's mix address, ``PUBKEY@PROVIDER`` (creates the key if needed)."""
    c = _client(state, Params(), provider, time.time())
    return str(c.core.address)


# -- commands ---------------------------------------------------------------------------


def route(state: State, hops: int, *, seed: int | None = None) -> list[MixHopRecord]:
    """The path a message would take now, with the delays the sender would draw."""
    params = params_from_config(state, hops=hops)
    now = time.time()
    topo = _topology(state, now)
    prov = _provider(state, topo, None)
    rng = random.Random(seed) if seed is not None else random.SystemRandom()
    path = select_path(topo, params.hops, rng, entry=prov.id)
    out = []
    for i, d in enumerate(path.nodes):
        last = i == len(path.nodes) - 1
        delay = 0.0 if last else rng.expovariate(1 / params.mean_delay) * 1000
        out.append(MixHopRecord(i, d.id, d.layer, d.address, d.operator, d.region, round(delay, 3)))
    return out


def send(
    state: State,
    to: str,
    data: bytes,
    *,
    hops: int | None = None,
    want_reply: bool = True,
    wait: float = 30.0,
    cover: bool = True,
    provider: str | None = None,
) -> MixSentRecord:
    """Send ``data`` to a mix address through a fresh path; with ``wait`` > 0 keep the
    cover streams running until the recipient's ack arrives (resending on loss)."""
    from fogctl.mix.net import ClientService

    recipient = ClientAddress.parse(to)
    from fogctl.mix import daemon

    if daemon.running(state):
        return daemon.send_via(state, recipient, data, want_reply=want_reply, wait=wait)
    flags: dict[str, object] = {"hops": hops}
    if not cover:
        flags.update(lambda_p=0.0, lambda_l=0.0, lambda_d=0.0)
    params = params_from_config(state, **flags)
    now = time.time()
    c = _client(state, params, provider, now)
    if c.topo.node(recipient.provider) is None:
        raise InvalidInput(f"the recipient's provider {recipient.provider.hex()[:12]} is unknown")
    msg_id = c.core.send(recipient, data, now, want_reply=want_reply)
    svc = ClientService(c.core, c.secret, c.provider)

    async def run() -> bool:
        try:
            if wait <= 0:
                c.core.handle_timer(time.time())
                while c.core.real:  # leave at once: no cover stream will carry it
                    c.core.out.append(c.core.real.popleft())
                await svc.step()
                return True
            return await svc.run_until(lambda: c.core.done(msg_id), wait)
        finally:
            await svc.close()

    acked = asyncio.run(run())
    save_vrf_proofs(state, c.core)
    received = [e for e in svc.events if isinstance(e, Delivered | ReplyReceived)]
    _store_received(state, c, received)
    _save_surbs(state, c.core.surbs, [])
    if wait > 0 and not acked:
        failed = any(isinstance(e, Failed) for e in svc.events)
        raise OperationFailed(
            f"message {msg_id.hex()[:12]} was not acknowledged within {wait:g}s"
            + (" after every retry" if failed else "")
        )
    return MixSentRecord(
        id=msg_id.hex(),
        to=str(recipient),
        bytes=len(data),
        hops=params.hops,
        packets=-(-max(1, len(data)) // MAX_DATA),
        reply_surb=want_reply,
    )


def _store_received(
    state: State, c: _Client | None, events: Sequence[object], *, shown: bool = True
) -> list[MixMessageRecord]:
    """Keep delivered messages and replies in ``mix_inbox`` (``shown`` = already printed)."""
    out = []
    now = time.time()
    with _db(state).transaction() as conn:
        for e in events:
            if isinstance(e, Delivered):
                if e.duplicate:
                    continue
                mid, typ, data = e.msg_id.hex(), "message", e.data
                surb = e.reply_surb.to_bytes() if e.reply_surb else None
                irt = None
            elif isinstance(e, ReplyReceived):
                mid, typ, data, surb = os.urandom(16).hex(), "reply", e.data, None
                irt = e.in_reply_to.hex()
            else:
                continue
            conn.execute(
                "INSERT OR IGNORE INTO mix_inbox VALUES (?, ?, ?, ?, ?, ?, ?)",
                (mid, typ, data, surb, irt, now, int(shown)),
            )
            try:
                text: str | None = data.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            out.append(
                MixMessageRecord(
                    id=mid,
                    type=typ,
                    data=text,
                    data_hex=None if text is not None else data.hex(),
                    can_reply=surb is not None,
                    in_reply_to=irt,
                    received_at=now,
                )
            )
    return out


def recv(state: State, *, wait: float = 0.0, provider: str | None = None) -> list[MixMessageRecord]:
    """Fetch what waits at this client's provider, decode it, ack it; returns new messages.

    When ``fogctl mix client`` runs for this state dir it does the fetching (and acks
    at once); then this returns what it stored that was not shown yet.
    """
    from fogctl.mix import daemon
    from fogctl.mix.net import ClientService

    if daemon.running(state):
        return daemon.unseen(state, wait)

    params = params_from_config(state, lambda_p=0.0, lambda_l=0.0, lambda_d=0.0)
    c = _client(state, params, provider, time.time())
    before = set(c.core.surbs)
    svc = ClientService(c.core, c.secret, c.provider)

    async def run() -> None:
        try:
            deadline = time.time() + wait
            while True:
                got = await svc.pull_once()
                await svc.step()  # acks leave at once
                if got or time.time() >= deadline:
                    return
                await asyncio.sleep(0.2)
        finally:
            await svc.close()

    asyncio.run(run())
    used = [i for i in before if i not in c.core.surbs]
    _save_surbs(state, c.core.surbs, used)
    acks = [e for e in svc.events if isinstance(e, Acked)]
    for a in acks:
        log.info("message %s acknowledged", a.msg_id.hex()[:12])
    return _store_received(state, c, svc.events)


def reply(state: State, msg_id: str, data: bytes, *, provider: str | None = None) -> MixSentRecord:
    """Answer message ``msg_id`` through its SURB (single use; the sender stays unknown)."""
    from fogctl.mix.net import split_hostport, submit

    if not msg_id or any(ch not in "0123456789abcdef" for ch in msg_id.lower()):
        raise InvalidInput(f"not a message id: {msg_id!r}")
    rows = _db(state).query(
        "SELECT msg_id, reply_surb FROM mix_inbox WHERE msg_id LIKE ?", (msg_id.lower() + "%",)
    )
    if len(rows) != 1:
        raise InvalidInput(f"no single received message matches {msg_id!r}")
    if rows[0]["reply_surb"] is None:
        raise InvalidInput(f"message {msg_id[:12]} carried no reply block (or it was used)")
    surb = sphinx.Surb.from_bytes(bytes(rows[0]["reply_surb"]))
    from fogctl.mix.message import KIND_REPLY, MAX_REPLY_DATA, encode_reply

    if len(data) > MAX_REPLY_DATA:  # a SURB carries exactly one packet
        raise InvalidInput(f"a reply holds at most {MAX_REPLY_DATA} bytes")
    rid = rows[0]["msg_id"]
    from fogctl.mix import daemon

    if daemon.running(state):  # the reply joins the payload stream, like any packet
        daemon.call(state, {"op": "reply", "msg_id": rid, "data": data.hex()})
        return MixSentRecord(
            id=rid, to="surb", bytes=len(data), hops=0, packets=1, reply_surb=False
        )
    first, pkt = sphinx.use_surb(surb, encode_reply(KIND_REPLY, bytes.fromhex(rid), data))
    topo = _topology(state, time.time())
    entry = topo.node(first)
    if entry is None:
        raise InvalidInput("the reply block starts at a provider not in the directory")
    host, port = split_hostport(entry.address)
    secret = _client_secret(state)
    asyncio.run(submit(host, port, [pkt], secret, bytes.fromhex(entry.public_key)))
    with _db(state).transaction() as conn:
        conn.execute("UPDATE mix_inbox SET reply_surb = NULL WHERE msg_id = ?", (rid,))
    return MixSentRecord(id=rid, to="surb", bytes=len(data), hops=0, packets=1, reply_surb=False)


# -- directory ------------------------------------------------------------------------


@dataclass
class FetchReport:
    """What ``directory fetch`` found: the verified descriptors now known, the refused
    ones (id, reason), and how many came from each source."""

    descriptors: list[MixDescriptor]
    refused: list[tuple[str, str]]
    from_node: int = 0
    from_dht: int = 0


def fetch_descriptors(
    state: State,
    source: str | None = None,
    *,
    dht: bool | None = None,
    bootstrap: Sequence[str] = (),
) -> FetchReport:
    """Fetch descriptors from a node (``source``) and/or the DHT; keep the verified ones.

    ``dht``: None = from the DHT when no ``source`` is named, ``bootstrap`` is, or a
    local DHT node serves; True = always (a brief join when none serves); False =
    never. Descriptors from the DHT pass the same check as a node's (signed, bound to
    their id, unexpired); the others are refused, named in the report, never kept.
    """
    from fogctl.mix.directory import load_directory
    from fogctl.mix.net import DirectoryStore, fetch_directory, split_hostport

    use_dht = _use_dht(state, dht, named_other=source is not None, bootstrap=bootstrap)
    if source is None and not use_dht:
        raise InvalidInput("nothing to fetch from: give --from HOST:PORT or leave out --no-dht")
    addr = split_hostport(source) if source is not None else None
    fetched: list[MixDescriptor] = []
    from_node = from_dht = 0
    if addr is not None:
        got = asyncio.run(fetch_directory(*addr))
        from_node = len(got)
        fetched += got
    if use_dht:
        from fogctl.mix import dhtdir

        with _dht_hint():
            got = dhtdir.fetch(state, bootstrap=list(bootstrap) or None)
        from_dht = len(got)
        fetched += got
    now = time.time()  # the state dir is touched only once something was fetched
    store = DirectoryStore(_directory_path(state))
    if store.path is not None and store.path.exists():
        store.add_many(load_directory(store.path), now)
    refused: dict[tuple[str, str], None] = {}
    for d in fetched:
        try:
            store.add(d, now)
        except Refused as exc:
            refused[(d.id, exc.message)] = None
    store.save()
    good = list(store.topology(now).by_id.values())
    return FetchReport(good, list(refused), from_node, from_dht)


def directory_fetch(
    state: State,
    source: str | None = None,
    *,
    dht: bool | None = None,
    bootstrap: Sequence[str] = (),
) -> list[MixDescriptor]:
    """Fetch descriptors (see :func:`fetch_descriptors`); the verified ones known now."""
    return fetch_descriptors(state, source, dht=dht, bootstrap=bootstrap).descriptors


@contextlib.contextmanager
def _dht_hint() -> Iterator[None]:
    """Name the mix options in the DHT's 'no peer' error."""
    from fogctl.errors import ServiceUnavailable

    try:
        yield
    except ServiceUnavailable as exc:
        if "no DHT peer answered" not in exc.message:
            raise
        raise ServiceUnavailable(
            "no DHT peer answered: pass --dht-bootstrap HOST:PORT, set dht.bootstrap or run "
            "'fogctl dht serve'; or use a mix node: --from/--to HOST:PORT --no-dht"
        ) from None


def _use_dht(
    state: State, flag: bool | None, *, named_other: bool, bootstrap: Sequence[str]
) -> bool:
    if flag is not None:
        return flag
    from fogctl.dht.api import serving

    return not named_other or bool(bootstrap) or serving(state)


def directory_ls(state: State) -> tuple[list[MixDescriptor], list[tuple[str, str]]]:
    """Verified descriptors known locally, and the refused ones with reasons."""
    now = time.time()
    topo = _topology(state, now)
    return sorted(topo.by_id.values(), key=lambda d: (d.layer, d.id)), topo.refused


@dataclass
class PublishReport:
    descriptors: list[MixDescriptor]
    to_node: bool
    dht_keys: int  # DHT keys written (0: not published in the DHT)
    dht_stored_on: int  # fewest nodes that took one of them


def directory_publish(
    state: State,
    to: str | None,
    descriptors: Sequence[MixDescriptor],
    *,
    dht: bool | None = None,
    bootstrap: Sequence[str] = (),
) -> PublishReport:
    """Publish signed descriptors to a node (``to``, which verifies them) and into the
    DHT: with ``dht`` None when no ``to`` is named, ``bootstrap`` is, or a local DHT
    node serves (``fogctl dht serve``); always with True (a brief join if none serves);
    never with False.
    """
    from fogctl.mix.net import publish_descriptor, split_hostport

    use_dht = _use_dht(state, dht, named_other=to is not None, bootstrap=bootstrap)
    if to is None and not use_dht:
        raise InvalidInput("nowhere to publish: give --to HOST:PORT or leave out --no-dht")
    if not descriptors:
        raise InvalidInput("no descriptor to publish")
    addr = split_hostport(to) if to is not None else None
    now = time.time()
    if addr is not None:

        async def run() -> None:
            for d in descriptors:
                await publish_descriptor(*addr, d)

        asyncio.run(run())
    keys = stored_on = 0
    if use_dht:
        from fogctl.mix import dhtdir

        with _dht_hint():
            stored = dhtdir.publish(state, descriptors, now, bootstrap=list(bootstrap) or None)
        keys = len(stored)
        stored_on = min((s.stored_on for s in stored), default=0)
    return PublishReport(list(descriptors), addr is not None, keys, stored_on)


def own_descriptors(state: State) -> list[MixDescriptor]:
    """Descriptors of the nodes served from this state dir (written by ``serve``)."""
    from fogctl.mix.directory import load_directory

    out: list[MixDescriptor] = []
    for p in sorted(state.subdir("mix").glob("self-*.jsonl")):
        out += load_directory(p)
    return out


# -- serve ------------------------------------------------------------------------------


@dataclass
class ServeOptions:
    layer: int
    port: int
    host: str = "127.0.0.1"
    advertise: str | None = None
    name: str | None = None
    operator: str = "unknown"
    region: str = "unknown"
    bootstrap: Sequence[str] = ()
    directory: Sequence[Path] = ()
    sync: float = 30.0
    epoch_s: int = 24 * 3600
    overlap_s: int = 3600
    replay_capacity: int = 25 * 3600 * 2000
    replay_fpr: float = 1e-5
    use_identity: bool = False
    clients: Path | None = None  # allow-list of client keys (providers)
    transport: str = "udp"  # how this node sends packets to the next hop: udp or tcp


def serve(
    state: State, opts: ServeOptions, params: Params, *, stop: asyncio.Event | None = None
) -> MixStatsRecord:
    """Run a mix node (``layer`` >= 1) or provider (``layer`` 0) until SIGTERM/SIGINT."""
    return asyncio.run(_serve(state, opts, params, stop))


async def _serve(
    state: State, opts: ServeOptions, params: Params, stop: asyncio.Event | None
) -> MixStatsRecord:
    from fogctl.mix.directory import load_directory, sign_descriptor
    from fogctl.mix.keys import KeyRing, epoch_of, identity_signer, load_signer
    from fogctl.mix.localnet import ring_keys, ring_private_keys
    from fogctl.mix.net import (
        ClientRegistry,
        DirectoryStore,
        NodeService,
        fetch_directory,
        publish_descriptor,
        read_allow_list,
        split_hostport,
    )
    from fogctl.mix.node import MixNode
    from fogctl.records import to_json_line
    from fogctl.state.atomic import write_atomic

    if opts.layer < 0 or opts.layer > sphinx.MAX_HOPS - 2:
        raise InvalidInput(f"--layer must be 0..{sphinx.MAX_HOPS - 2}")
    if opts.transport not in ("udp", "tcp"):
        raise InvalidInput(f"--transport must be udp or tcp, not {opts.transport!r}")
    allowed = read_allow_list(opts.clients) if opts.clients is not None else None
    name = opts.name or f"{'provider' if opts.layer == 0 else 'mix'}-{opts.port}"
    if opts.use_identity:
        signer = identity_signer(state.require().identity())
    else:
        signer = load_signer(state.keys_dir, name)
    ring = KeyRing(
        state.keys_dir,
        state.subdir("mix") / name,
        name,
        epoch_s=opts.epoch_s,
        overlap_s=opts.overlap_s,
        capacity=opts.replay_capacity,
        fpr=opts.replay_fpr,
    )
    store = DirectoryStore(state.subdir("mix") / f"known-{name}.jsonl")
    now = time.time()
    for path in [store.path, *opts.directory]:
        if path is not None and path.exists():
            store.add_many(load_directory(path), now)
    core = MixNode(
        bytes.fromhex(signer.node_id),
        ring_keys(ring),
        layer=opts.layer,
        params=params,
        rng=random.SystemRandom(),
    )
    registry = ClientRegistry(state.subdir("mix") / name / "clients.txt", allowed)
    svc = NodeService(
        core,
        store,
        host=opts.host,
        port=opts.port,
        live_keys=ring_private_keys(ring),
        clients=registry,
        transport=opts.transport,
    )
    await svc.start()
    advertise = opts.advertise or f"{opts.host}:{svc.port}"
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    current: dict[str, MixDescriptor] = {}

    def describe(t: float) -> MixDescriptor:
        epoch = epoch_of(t, ring.epoch_s)
        d = MixDescriptor(
            id=signer.node_id,
            layer=opts.layer,
            public_key=ring.public_key(epoch).hex(),
            address=advertise,
            epoch=epoch,
            expires=float((epoch + 1) * ring.epoch_s + ring.overlap_s),
            operator=opts.operator,
            region=opts.region,
            signing_key=signer.public.hex(),
        )
        return sign_descriptor(d, signer.sign)

    in_dht = {"epoch": -1.0, "at": 0.0}

    async def dht_publish(desc: MixDescriptor, t: float) -> None:
        """Also into the DHT when a DHT node serves from this state dir (hourly)."""
        from fogctl.dht.api import serving
        from fogctl.mix import dhtdir

        if desc.epoch == in_dht["epoch"] and t - in_dht["at"] < 3600:
            return
        try:
            if not await asyncio.to_thread(serving, state):
                return
            await asyncio.to_thread(dhtdir.publish, state, [desc], t)
        except Exception as exc:  # the DHT being unwell must not stop the mix
            log.warning("publishing the descriptor in the DHT failed: %s", exc)
            return
        in_dht.update(epoch=float(desc.epoch), at=t)
        log.info("descriptor %s published in the DHT", desc.id[:12])

    async def sync() -> None:
        t = time.time()
        desc = current.get("d")
        if desc is None or desc.epoch != epoch_of(t, ring.epoch_s):
            desc = describe(t)
            current["d"] = desc
            store.add(desc, t)
            store.save()
            write_atomic(
                state.subdir("mix") / f"self-{name}.jsonl", (to_json_line(desc) + "\n").encode()
            )
            log.info(
                "serving %s layer %d at %s (epoch %d)",
                desc.id[:12],
                opts.layer,
                advertise,
                desc.epoch,
            )
        await dht_publish(desc, t)
        for b in opts.bootstrap:
            host, port = split_hostport(b)
            try:
                await publish_descriptor(host, port, desc)
                store.add_many(await fetch_directory(host, port), t)
            except Exception as exc:  # a peer being down must not stop the node
                log.warning("directory sync with %s failed: %s", b, exc)
        store.save()
        svc.refresh_routes()
        ring.flush()

    await sync()
    try:
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), opts.sync)
            if not stop.is_set():
                await sync()
    finally:
        await svc.stop()
        ring.close()
        log.info("stopped; counters %s", dict(core.counters))
    return MixStatsRecord(node=signer.node_id, role=core.role, counters=dict(core.counters))


def node_stats(target: str) -> MixStatsRecord:
    """Counters of a running node, fetched over its TCP port."""
    import json

    from fogctl.mix.net import OP_STATS, request, split_hostport

    host, port = split_hostport(target)
    data = json.loads(asyncio.run(request(host, port, OP_STATS)))
    return MixStatsRecord(node=target, role="remote", counters=data)


def read_input(path: str) -> bytes:
    import sys

    if path == "-":
        buf = getattr(sys.stdin, "buffer", None)
        return buf.read() if buf is not None else sys.stdin.read().encode()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{path}: {exc.strerror}") from None


def iter_chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def observed_anonymity(
    state: State, node: str, *, window: float = 5.0, hops: int | None = None
) -> AnonymityRecord:
    """The anonymity the traffic through ``node`` actually affords now.

    Counts the packets ``node`` receives over ``window`` seconds, turns that into a
    number of clients sending at the configured rates (lambda_p + lambda_l +
    lambda_d), and simulates the sender entropy at that load and the configured
    delay (see :mod:`fogctl.mix.anonymity`). Few packets means a small set, and the
    record says so.
    """
    import dataclasses

    from fogctl.mix.anonymity import simulate_entropy

    if window <= 0:
        raise InvalidInput("--window must be positive")
    params = params_from_config(state, hops=hops)
    first = node_stats(node).counters.get("received", 0)
    time.sleep(window)
    second = node_stats(node).counters.get("received", 0)
    rate = max(0.0, (second - first) / window)
    per_client = params.lambda_p + params.lambda_l + params.lambda_d
    if per_client <= 0:
        raise InvalidInput("cover rates are all 0: every packet is real, nothing hides it")
    senders = max(1, round(rate / per_client))
    rec = simulate_entropy(
        senders, per_client, max(params.mean_delay, 1e-4), params.hops, samples=200
    )
    note = (
        f"observed {rate:.1f} packets/s at {node}, about {senders} client(s) at "
        f"{per_client:g}/s each; {rec.note}"
    )
    return dataclasses.replace(rec, note=note)
