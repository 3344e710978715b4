"""The library API behind ``fogctl mesh`` (one function per command)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from fogctl.errors import InvalidInput
from fogctl.mesh.agent import Agent, dtn_now, node_name
from fogctl.mesh.records import (
    BundleRecord,
    MeshKeyRecord,
    MeshMessageRecord,
    MeshPeerRecord,
    MeshSentRecord,
    MeshSimRecord,
    MeshStatusRecord,
    MeshTlsPinRecord,
)
from fogctl.records import iter_json_lines
from fogctl.state import State

__all__ = [
    "bundles",
    "inbox",
    "keys_list",
    "keys_publish",
    "keys_trust",
    "peers",
    "read",
    "send",
    "serve",
    "simulate",
    "status",
    "tls_pin",
    "tls_pins",
    "tls_unpin",
]


def _agent(state: State, name: str | None = None, router: str | None = None) -> Agent:
    state.require()
    r = router or str(state.config.get("mesh.router", "epidemic"))
    quota = int(state.config.get("mesh.store_quota", 256 * 1024 * 1024))
    return Agent(state, node_name(state, name), r, quota=quota)


def serve(
    state: State,
    *,
    name: str | None = None,
    router: str | None = None,
    tcpcl: str | None = None,
    mtcp: str | None = None,
    udp: str | None = None,
    peers: Sequence[str] = (),
    poll: float = 1.0,
    mdns: bool = False,
    transports: Sequence[str] = (),
    tls: str | None = None,
    copies: int | None = None,
) -> None:
    """Run a DTN node in the foreground until SIGTERM/SIGINT."""
    from fogctl.mesh.node import MeshNode, NodeConfig
    from fogctl.mesh.routing import ROUTERS, SPRAY_COPIES

    state.require()
    r = str(state.config.get("mesh.router", "epidemic", flag=router))
    if r not in ROUTERS:
        raise InvalidInput(f"--router must be one of {', '.join(ROUTERS)}")
    if poll <= 0:
        raise InvalidInput("--poll must be positive")
    tls_mode = str(state.config.get("mesh.tls", "on", flag=tls))
    if tls_mode not in ("on", "require", "off"):
        raise InvalidInput("--tls must be on, require or off (mesh.tls)")
    options: dict[str, float | str] = {}
    if r == "spray":
        value = state.config.get("mesh.spray_copies", SPRAY_COPIES, flag=copies)
        options["copies"] = spray_copies(value)
    cfg = NodeConfig(
        name=node_name(state, name),
        router=r,
        router_options=options,
        tcpcl=state.config.get("mesh.tcpcl", "127.0.0.1:4556", flag=tcpcl),
        mtcp=state.config.get("mesh.mtcp", None, flag=mtcp),
        udp=state.config.get("mesh.udp", None, flag=udp),
        peers=list(peers) or list(state.config.get("mesh.peers", []) or []),
        poll=poll,
        mdns=mdns,
        quota=int(state.config.get("mesh.store_quota", 256 * 1024 * 1024)),
        transports=list(transports),
        tls=tls_mode,
    )
    node = MeshNode(state, cfg)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await node.serve(stop)
        except OSError as exc:
            raise InvalidInput(f"cannot listen: {exc.strerror or exc}") from None

    asyncio.run(main())


def send(
    state: State,
    to: str,
    data: bytes,
    *,
    lifetime_s: float = 3600,
    plain: bool = False,
    fragment_size: int | None = None,
    report: bool = False,
    name: str | None = None,
) -> MeshSentRecord:
    """Queue ``data`` for ``to`` (encrypted end to end unless ``plain``)."""
    if lifetime_s <= 0:
        raise InvalidInput("--lifetime must be positive")
    if fragment_size is not None and fragment_size < 64:
        raise InvalidInput("--fragment must be at least 64 bytes")
    a = _agent(state, name)
    return a.send(
        to,
        data,
        now=dtn_now(),
        lifetime_ms=int(lifetime_s * 1000),
        encrypt=not plain,
        fragment_size=fragment_size,
        report=report,
    )


def inbox(state: State) -> list[MeshMessageRecord]:
    return _agent(state).inbox()


def read(state: State, message_id: str) -> tuple[MeshMessageRecord, bytes]:
    return _agent(state).read(message_id)


def peers(state: State) -> list[MeshPeerRecord]:
    return _agent(state).peers()


def bundles(state: State) -> list[BundleRecord]:
    return _agent(state).store.records()


def keys_publish(state: State, *, rotate: bool = False, name: str | None = None) -> MeshKeyRecord:
    """This node's prekey bundle; also makes its TCPCL TLS key if missing, so 'mesh
    status' can show the tls_key peers may pin in advance."""
    from fogctl.mesh.tls import credentials

    a = _agent(state, name)
    credentials(state, str(a.me))
    return a.key_record(a.publish_keys(rotate=rotate), True)


def keys_list(state: State) -> list[MeshKeyRecord]:
    return _agent(state).keys()


def keys_trust(state: State, what: str, *, fingerprint: str | None = None) -> list[MeshKeyRecord]:
    """Trust a node's prekeys: ``what`` is a node name/EID already seen, or a file (or
    ``-``) of ``mesh-key`` records as ``keys publish`` writes them."""
    from fogctl.mesh.ratchet import PrekeyBundle

    a = _agent(state)
    if what == "-" or Path(what).is_file():
        out = []
        for src, lineno, obj in iter_json_lines(what):
            if obj.get("kind") != "mesh-key" or not isinstance(obj.get("prekeys"), str):
                raise InvalidInput(f"{src}:{lineno}: expected a mesh-key record with prekeys")
            try:
                kb = PrekeyBundle.from_bytes(bytes.fromhex(obj["prekeys"]))
            except ValueError:
                raise InvalidInput(f"{src}:{lineno}: prekeys is not hex") from None
            if fingerprint is not None and fingerprint.replace(" ", "") != kb.fingerprint.replace(
                " ", ""
            ):
                raise InvalidInput(f"{src}:{lineno}: fingerprint does not match {kb.fingerprint}")
            a.remember_keys(kb, trusted=True)
            out.append(a.key_record(kb, True))
        if not out:
            raise InvalidInput(f"{what}: no mesh-key records")
        return out
    return [a.trust(what, fingerprint)]


def spray_copies(value: object) -> int:
    """Spray-and-wait's copy count L (``--copies``, ``mesh.spray_copies``): 1 to 1024."""
    try:
        n = int(str(value))
    except ValueError:
        raise InvalidInput(f"--copies {value!r}: expected a whole number") from None
    if not 1 <= n <= 1024:
        raise InvalidInput(f"--copies {n}: must be 1 to 1024")
    return n


def simulate(
    routers: Iterable[str],
    *,
    plot: Path | None = None,
    copies: int | None = None,
    **kw: Any,
) -> list[MeshSimRecord]:
    """Run a contact simulation (see :func:`fogctl.mesh.sim.run`), optionally plotting;
    ``copies`` is spray-and-wait's L."""
    from fogctl.mesh.routing import ROUTERS
    from fogctl.mesh.sim import plot_results, run

    names = list(routers) or list(ROUTERS)
    for r in names:
        if r not in ROUTERS:
            raise InvalidInput(f"--router must be one of {', '.join(ROUTERS)}")
    if copies is not None:
        kw["options"] = {**kw.get("options", {}), "spray": {"copies": spray_copies(copies)}}
    recs = run(names, **kw)
    if plot is not None:
        plot_results(recs, plot)
    return recs


def status(state: State, *, name: str | None = None) -> MeshStatusRecord:
    """A summary of this node's mesh state (changes nothing)."""
    from fogctl.mesh.ratchet import PrekeyBundle
    from fogctl.mesh.tls import own_key_pin

    a = _agent(state, name)
    msgs = a.inbox()
    keys = a.store.kv_get("prekeys")
    known = a.keys()
    return MeshStatusRecord(
        node=str(a.me),
        router=a.router_name,
        bundles=len(a.store.ids()),
        store_bytes=a.store.usage(),
        store_quota=a.store.quota,
        inbox=len(msgs),
        unread=sum(not m.read for m in msgs),
        peers=len(a.peers()),
        trusted_keys=sum(k.trusted for k in known),
        fingerprint=PrekeyBundle.from_bytes(keys).fingerprint if keys else None,
        drops=a.drop_totals(),
        tls_key=own_key_pin(state),
    )


def _node_arg(node: str) -> str:
    from fogctl.mesh.bundle import EID
    from fogctl.mesh.errors import ProtocolError

    text = node if "://" in node or node.startswith("ipn:") else f"dtn://{node}/"
    try:
        return str(EID.parse(text).node)
    except ProtocolError as exc:
        raise InvalidInput(f"bad node {node!r}: {exc}") from None


def tls_pins(state: State) -> list[MeshTlsPinRecord]:
    """Pinned TCPCL TLS keys (trust on first use, or set with :func:`tls_pin`)."""
    _agent(state)  # migrations
    rows = state.db.query("SELECT node, spki, first_seen FROM mesh_tls_pins ORDER BY node")
    return [MeshTlsPinRecord(node=r[0], tls_key=r[1], first_seen=r[2]) for r in rows]


def tls_pin(state: State, node: str, key: str) -> MeshTlsPinRecord:
    """Pin ``node``'s TLS key in advance (the value its 'mesh status' shows as tls_key);
    sessions from that node with any other key are then refused."""
    from fogctl.mesh.tls import pin

    key = key.strip().lower()
    if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
        raise InvalidInput("the TLS key must be 64 hex digits (mesh status: tls_key)")
    nid = _node_arg(node)
    pin(_agent(state).store, nid, key)
    return next(p for p in tls_pins(state) if p.node == nid)


def tls_unpin(state: State, node: str) -> MeshTlsPinRecord:
    """Forget ``node``'s TLS pin (its next key is trusted on first use again)."""
    nid = _node_arg(node)
    a = _agent(state)
    old = [p for p in tls_pins(state) if p.node == nid]
    if not old:
        raise InvalidInput(f"no TLS key pinned for {nid}")
    with a.store.tx() as conn:
        conn.execute("DELETE FROM mesh_tls_pins WHERE node = ?", (nid,))
    return old[0]
