"""Engine functions behind ``fogctl dht``: the node service and one-shot operations.

``serve()`` runs a node in the foreground with a control socket (``dht.sock`` in the
state dir). Every one-shot operation goes through :func:`call`: it talks to the
local node over that socket when one is serving, else joins the network briefly as
a client (it answers no requests, so no peer keeps it in a routing table) and
leaves nothing running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from fogctl.dht.envelope import Envelope, InvalidEnvelope
from fogctl.dht.records import DhtPeerRecord, DhtPutRecord, DhtValueRecord
from fogctl.dht.server import FogServer, parse_hostport
from fogctl.errors import FogError, InvalidInput, OperationFailed, ServiceUnavailable
from fogctl.records import NodeRecord, record_from_dict
from fogctl.state import State

log = logging.getLogger("fogctl.dht")

__all__ = ["PROVIDER_SHARDS", "SOCKET", "call", "provider_key", "serve"]

SOCKET = "dht.sock"
DEFAULT_PORT = 8468
PROVIDER_SHARDS = 16
DESCRIPTOR_FIELDS = (
    "region",
    "operator",
    "price",
    "cost",
    "stake_address",
    "onion",
    "mix_key",
    "tier",
)


def provider_key(shard: int) -> str:
    """Well-known provider keys: descriptors spread over 16 shards by node id."""
    return f"fogctl:providers/{shard:x}"


def _shard(node_id: str) -> int:
    return int(node_id[0], 16) % PROVIDER_SHARDS


def bootstrap_addrs(state: State, flags: list[str]) -> list[tuple[str, int]]:
    raw = list(flags)
    if not raw:
        conf = str(state.config.get("dht.bootstrap", "") or "")
        raw = [p for p in conf.replace(",", " ").split() if p]
    return [parse_hostport(p, DEFAULT_PORT) for p in raw]


def _value_record(key: str, env: Envelope) -> DhtValueRecord:
    try:
        text: str | None = env.value.decode("utf-8")
        hexed = None
    except UnicodeDecodeError:
        text, hexed = None, env.value.hex()
    return DhtValueRecord(
        key=key,
        dkey=env.dkey.hex(),
        signer=env.signer_id.hex(),
        seq=env.seq,
        expiry=env.expiry,
        value=text,
        value_hex=hexed,
    )


def _multiaddr(host: str, port: int) -> str:
    return f"/ip6/{host}/udp/{port}" if ":" in host else f"/ip4/{host}/udp/{port}"


def descriptor(state: State, server: FogServer) -> NodeRecord:
    """This node's signed descriptor: id, keys, multiaddrs, capacity, offer."""
    from fogctl.node import node_record

    base = node_record(state)
    conf = state.config
    advertise = str(conf.get("dht.advertise", "") or "")
    addrs = [p for p in advertise.replace(",", " ").split() if p]
    if not addrs and server.transport is not None and not server.client:
        host, port = server.address
        if host not in ("0.0.0.0", "::"):
            addrs = [_multiaddr(host, port)]
    extra: dict[str, Any] = {}
    for name in DESCRIPTOR_FIELDS:
        val = conf.get(f"dht.{name}", None)
        if val not in (None, ""):
            extra[name] = float(val) if name in ("price", "cost") else str(val)
    return NodeRecord(
        id=base.id,
        ed25519=base.ed25519,
        x25519=base.x25519,
        addresses=tuple(addrs),
        cpu=base.cpu,
        memory=base.memory,
        cpu_util=base.cpu_util,
        memory_util=base.memory_util,
        version=base.version,
        **extra,
    )


# -- operations (run against a live server) -------------------------------------------


async def op_put(server: FogServer, key: str, value: str) -> list[dict[str, Any]]:
    res = await server.put(key, value.encode("utf-8"))
    return [DhtPutRecord(key, res.dkey.hex(), res.seq, res.expiry, res.stored_on).to_dict()]


async def op_get(server: FogServer, key: str, signer: str = "") -> list[dict[str, Any]]:
    envs = await server.get_envelopes(key)
    if signer:
        envs = [e for e in envs if e.signer_id.hex() == signer or e.signer.hex() == signer]
    return [_value_record(key, e).to_dict() for e in envs]


async def op_find_node(server: FogServer, node_id: str) -> list[dict[str, Any]]:
    target = _node_id(node_id)
    res = await server.find_node(target)
    proto = server.protocol
    return [
        DhtPeerRecord(
            id=n.id.hex(),
            address=f"{n.ip}:{n.port}",
            ed25519=proto.verified[n.id][0].hex() if n.id in proto.verified else None,
            distance_bits=(
                int.from_bytes(n.id, "big") ^ int.from_bytes(target, "big")
            ).bit_length(),
        ).to_dict()
        for n in res.nodes
    ]


async def op_peers(server: FogServer) -> list[dict[str, Any]]:
    return [
        DhtPeerRecord(id=nid.hex(), address=f"{host}:{port}", ed25519=key.hex()).to_dict()
        for nid, key, host, port in server.protocol.contacts()
    ]


async def op_announce(server: FogServer, desc: dict[str, Any]) -> list[dict[str, Any]]:
    key = provider_key(_shard(desc["id"]))
    data = json.dumps(desc, separators=(",", ":"), sort_keys=True)
    res = await server.put(key, data.encode("utf-8"))
    return [DhtPutRecord(key, res.dkey.hex(), res.seq, res.expiry, res.stored_on).to_dict()]


async def op_providers(server: FogServer) -> list[dict[str, Any]]:
    keys = [provider_key(i) for i in range(PROVIDER_SHARDS)]
    found = await asyncio.gather(*(server.get_envelopes(k) for k in keys))
    out: dict[str, dict[str, Any]] = {}
    for envs in found:
        for env in envs:
            rec = _provider(env)
            if rec is not None and rec["id"] not in out:
                out[rec["id"]] = rec
    return sorted(out.values(), key=lambda r: r["id"])


def _provider(env: Envelope) -> dict[str, Any] | None:
    """A descriptor is valid only if signed by the node it describes."""
    try:
        obj = json.loads(env.value)
        if not isinstance(obj, dict):
            return None
        obj["kind"] = "node"
        rec = record_from_dict(obj)
    except (ValueError, RecursionError, InvalidInput):
        return None
    data = rec.to_dict()
    if data.get("id") != env.signer_id.hex() or data.get("ed25519") != env.signer.hex():
        return None
    return data


def check_node_id(text: str) -> bytes:
    """A node id from 40 hex digits; :class:`InvalidInput` otherwise."""
    return _node_id(text)


def _node_id(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 20:
        raise InvalidInput(f"{text!r}: a node id is 40 hex digits")
    return raw


OPS: dict[str, Callable[..., Awaitable[list[dict[str, Any]]]]] = {
    "put": op_put,
    "get": op_get,
    "find_node": op_find_node,
    "peers": op_peers,
    "announce": op_announce,
    "providers": op_providers,
}


# -- one-shot entry point -----------------------------------------------------------------


def call(
    state: State, op: str, params: dict[str, Any], bootstrap: list[str] | None = None
) -> list[dict[str, Any]]:
    """Run ``op`` on the local serving node, else as a brief client; result records."""
    if op not in OPS and op not in ("announce_self",):
        raise InvalidInput(f"unknown dht operation {op!r}")
    addrs = bootstrap_addrs(state, bootstrap or [])
    path = state.root / SOCKET
    if path.exists() and not bootstrap:
        try:
            return _via_socket(path, op, params)
        except (ConnectionRefusedError, FileNotFoundError):
            pass  # a stale socket: no node is serving
    return asyncio.run(_one_shot(state, op, params, addrs))


def _via_socket(path: Path, op: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    return list(_socket_lines(path, {"op": op, **params}))


def _error(err: dict[str, Any]) -> FogError:
    cls = {"invalid": InvalidInput, "unavailable": ServiceUnavailable}.get(
        str(err.get("code")), OperationFailed
    )
    return cls(str(err.get("message", "dht operation failed")))


@contextlib.asynccontextmanager
async def joined(
    state: State, addrs: list[tuple[str, int]], *, client: bool = True
) -> AsyncIterator[FogServer]:
    """A temporary node joined to the network through saved contacts and ``addrs``."""
    server = FogServer(state.identity(), db=state.db, client=client, persist=False)
    host = str(state.config.get("dht.host", "0.0.0.0"))
    await server.listen(0, host)
    try:
        await server.restore()
        if addrs:
            await server.bootstrap(addrs)
        if not server.protocol.contacts():
            raise ServiceUnavailable(
                "no DHT peer answered: pass --bootstrap HOST:PORT, set dht.bootstrap, "
                "or run 'fogctl dht serve'"
            )
        yield server
    finally:
        server.stop()


async def _one_shot(
    state: State, op: str, params: dict[str, Any], addrs: list[tuple[str, int]]
) -> list[dict[str, Any]]:
    async with joined(state, addrs) as server:
        return await _dispatch(state, server, op, params)


async def _dispatch(
    state: State, server: FogServer, op: str, params: dict[str, Any]
) -> list[dict[str, Any]]:
    if op in ("announce", "announce_self"):
        return await op_announce(server, descriptor(state, server).to_dict())
    return await OPS[op](server, **params)


# -- the service ---------------------------------------------------------------------------


async def serve(
    state: State,
    *,
    port: int = DEFAULT_PORT,
    host: str = "0.0.0.0",
    bootstrap: list[str] | None = None,
    announce: bool = True,
    mdns: bool = False,
    ready: Callable[[FogServer], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run a node until SIGTERM/SIGINT (or ``stop``): control socket, saved table."""
    addrs = bootstrap_addrs(state, bootstrap or [])
    ident = state.identity()
    path = state.root / SOCKET
    if len(str(path).encode()) > 100:
        raise InvalidInput(f"{path}: too long for a control socket; use a shorter FOGCTL_HOME")
    if _alive(path):
        raise OperationFailed(f"a DHT node is already serving from {state.root}")
    server = FogServer(ident, db=state.db)
    pubsub = None
    try:
        await server.listen(port, host)
    except OSError as exc:
        raise ServiceUnavailable(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    from fogctl.dht.pubsub import PubSub

    pubsub = PubSub(server)
    pubsub.start()
    control = await asyncio.start_unix_server(
        lambda r, w: _control(state, server, pubsub, r, w), path=str(path)
    )
    os.chmod(path, 0o600)
    saver: asyncio.Task[None] | None = None
    announcer: asyncio.Task[None] | None = None
    advertiser: Any = None
    try:
        restored = await server.restore()
        if mdns:
            advertiser, lan = await _mdns_start(server, host)
            addrs = addrs + [a for a in lan if a != server.address]
        joined_nodes = await server.bootstrap(addrs) if addrs else []
        log.info(
            "dht node %s on %s:%d (%d saved contacts answered, %d via bootstrap)",
            ident.node_id,
            *server.address,
            restored,
            len(joined_nodes),
        )
        saver = asyncio.ensure_future(_save_regularly(server))
        if announce:
            announcer = asyncio.ensure_future(_announce_when_joined(state, server))
        if ready is not None:
            ready(server)
        await stop.wait()
    finally:
        for task in (saver, announcer):
            if task is not None:
                task.cancel()
        pubsub.stop()
        if advertiser is not None:
            await advertiser.stop()
        control.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        server.save_contacts()
        server.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
        log.info("dht node stopped")


def _alive(path: Path) -> bool:
    """Is a node listening on this control socket?"""
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


async def _announce_when_joined(state: State, server: FogServer) -> None:
    """Publish the descriptor once the node has a peer (then it is republished hourly)."""
    while not server.protocol.contacts():
        await asyncio.sleep(1.0)
    try:
        await op_announce(server, descriptor(state, server).to_dict())
    except FogError as exc:
        log.warning("announce failed: %s", exc)


async def _save_regularly(server: FogServer, every: float = 300.0) -> None:
    while True:
        await asyncio.sleep(every)
        server.save_contacts()


async def _control(
    state: State,
    server: FogServer,
    pubsub: Any,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    try:
        line = await reader.readline()
        if not line.strip():  # a liveness probe (or a client gone): nothing to answer
            return
        try:
            req = json.loads(line)
            if not isinstance(req, dict) or not isinstance(req.get("op"), str):
                raise InvalidInput("control request is not {op: ...}")
            op = req.pop("op")
            if op == "sub":
                await _stream_sub(pubsub, str(req["topic"]), int(req.get("count", 0)), writer)
                return
            if op == "pub":
                records = await _publish_lines(pubsub, str(req["topic"]), list(req["lines"]), 0.0)
            elif op not in OPS and op != "announce_self":
                raise InvalidInput(f"unknown dht operation {op!r}")
            else:
                records = await _dispatch(state, server, op, req)
        except (ValueError, TypeError, KeyError) as exc:
            writer.write(_line({"error": {"code": "invalid", "message": str(exc)}}))
        except FogError as exc:
            writer.write(_line({"error": {"code": exc.code, "message": exc.message}}))
        except InvalidEnvelope as exc:
            writer.write(_line({"error": {"code": "invalid", "message": str(exc)}}))
        else:
            for rec in records:
                writer.write(_line({"record": rec}))
            writer.write(_line({"done": True}))
        with contextlib.suppress(ConnectionError):  # the client left before the answer
            await writer.drain()
    finally:
        writer.close()


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


# -- pub/sub ---------------------------------------------------------------------------------


def _message_record(msg: Any) -> dict[str, Any]:
    from fogctl.dht.records import DhtMessageRecord
    from fogctl.state.identity import node_id_for

    try:
        data = msg.data.decode("utf-8")
    except UnicodeDecodeError:
        data = msg.data.hex()
    return DhtMessageRecord(
        topic=msg.topic,
        data=data,
        source=node_id_for(msg.source),
        seqno=msg.seqno,
        id=msg.id.hex(),
    ).to_dict()


async def _publish_lines(
    pubsub: Any, topic: str, lines: list[str], wait_peers: float
) -> list[dict[str, Any]]:
    from fogctl.dht.gossip import MAX_DATA, MalformedFrame

    out = []
    for i, text in enumerate(lines):
        data = text.encode("utf-8")
        if len(data) > MAX_DATA:
            raise InvalidInput(f"message {i + 1} is {len(data)} bytes; the limit is {MAX_DATA}")
        try:
            msg = await pubsub.publish(topic, data, wait_peers=wait_peers if i == 0 else 0.0)
        except MalformedFrame as exc:
            raise InvalidInput(str(exc)) from None
        out.append(_message_record(msg))
    await asyncio.sleep(0.05)  # let the datagrams leave before a brief node closes
    return out


async def _stream_sub(pubsub: Any, topic: str, count: int, writer: asyncio.StreamWriter) -> None:
    queue = await pubsub.subscribe(topic)
    try:
        n = 0
        while count <= 0 or n < count:
            msg = await queue.get()
            writer.write(_line({"record": _message_record(msg)}))
            await writer.drain()
            n += 1
        writer.write(_line({"done": True}))
        await writer.drain()
    except (ConnectionError, BrokenPipeError):
        pass
    finally:
        pubsub.unsubscribe(topic, queue)


def publish(
    state: State, topic: str, lines: list[str], bootstrap: list[str] | None = None
) -> list[dict[str, Any]]:
    """Publish each line as a message on ``topic`` (through the serving node if any)."""
    from fogctl.dht.gossip import MAX_TOPIC

    if not 0 < len(topic) <= MAX_TOPIC:
        raise InvalidInput(f"topic must be 1-{MAX_TOPIC} characters")
    path = state.root / SOCKET
    if path.exists() and not bootstrap:
        try:
            return list(_socket_lines(path, {"op": "pub", "topic": topic, "lines": lines}))
        except (ConnectionRefusedError, FileNotFoundError):
            pass
    addrs = bootstrap_addrs(state, bootstrap or [])

    async def run() -> list[dict[str, Any]]:
        from fogctl.dht.pubsub import PubSub

        async with joined(state, addrs, client=False) as server:
            pubsub = PubSub(server, heartbeat=0.2)
            pubsub.start()
            try:
                return await _publish_lines(pubsub, topic, lines, wait_peers=3.0)
            finally:
                pubsub.stop()

    return asyncio.run(run())


def subscribe(
    state: State,
    topic: str,
    on_record: Callable[[dict[str, Any]], None],
    *,
    count: int = 0,
    bootstrap: list[str] | None = None,
) -> None:
    """Call ``on_record`` for each message on ``topic`` (``count`` > 0: stop after that many)."""
    from fogctl.dht.gossip import MAX_TOPIC

    if not 0 < len(topic) <= MAX_TOPIC:
        raise InvalidInput(f"topic must be 1-{MAX_TOPIC} characters")
    path = state.root / SOCKET
    if path.exists() and not bootstrap:
        try:
            for rec in _socket_lines(path, {"op": "sub", "topic": topic, "count": count}, None):
                on_record(rec)
            return
        except (ConnectionRefusedError, FileNotFoundError):
            pass
    addrs = bootstrap_addrs(state, bootstrap or [])

    async def run() -> None:
        from fogctl.dht.pubsub import PubSub

        async with joined(state, addrs, client=False) as server:
            pubsub = PubSub(server, heartbeat=0.5)
            pubsub.start()
            try:
                queue = await pubsub.subscribe(topic)
                n = 0
                while count <= 0 or n < count:
                    on_record(_message_record(await queue.get()))
                    n += 1
            finally:
                pubsub.stop()

    asyncio.run(run())


def _socket_lines(
    path: Path, request: dict[str, Any], timeout: float | None = 60.0
) -> Iterator[dict[str, Any]]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(json.dumps(request).encode() + b"\n")
        for line in sock.makefile("r", encoding="utf-8"):
            msg = json.loads(line)
            if "error" in msg:
                raise _error(msg["error"])
            if msg.get("done"):
                return
            yield msg["record"]
    raise ServiceUnavailable(f"{path}: the serving node closed the connection")


def ice_connect(
    state: State,
    peer_id: str,
    *,
    stun: str = "",
    turn: str = "",
    turn_user: str = "",
    turn_password: str = "",
    message: str = "",
    timeout: float = 30.0,
    bootstrap: list[str] | None = None,
) -> dict[str, Any]:
    """Join briefly, exchange ICE offers with ``peer_id`` through the DHT, connect."""
    from fogctl.dht.ice import connect
    from fogctl.dht.records import DhtConnectionRecord

    _node_id(peer_id)
    conf = state.config
    stun = stun or str(conf.get("dht.stun", "") or "").split(",")[0].split(" ")[0]
    turn = turn or str(conf.get("dht.turn", "") or "")
    turn_user = turn_user or str(conf.get("dht.turn_user", "") or "")
    turn_password = turn_password or str(conf.get("dht.turn_password", "") or "")
    stun_addr = parse_hostport(stun, 3478) if stun else None
    turn_addr = parse_hostport(turn, 3478) if turn else None
    if turn_addr and not (turn_user and turn_password):
        raise InvalidInput("--turn needs --turn-user and a password (dht.turn_password)")
    addrs = bootstrap_addrs(state, bootstrap or [])

    async def run() -> dict[str, Any]:
        async with joined(state, addrs) as server:
            res = await connect(
                server,
                peer_id,
                stun=stun_addr,
                turn=turn_addr,
                turn_user=turn_user or None,
                turn_password=turn_password or None,
                message=message,
                timeout=timeout,
            )
        return DhtConnectionRecord(
            peer=res.peer,
            path=res.path,
            local=res.local,
            remote=res.remote,
            local_type=res.local_type,
            remote_type=res.remote_type,
            received=res.received,
        ).to_dict()

    return asyncio.run(run())


async def _mdns_start(server: FogServer, host: str) -> tuple[Any, list[tuple[str, int]]]:
    """Advertise this node on the LAN and return the DHT nodes found there."""
    from fogctl.dht.mdns import Advertiser, browse

    bound, port = server.address
    if bound in ("0.0.0.0", "::"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: picks the LAN address
            bound = probe.getsockname()[0]
    adv = Advertiser(server.identity.node_id, server.public_key.hex(), bound, port)
    await adv.start()
    found = await browse(2.0, interface=host, exclude=server.identity.node_id)
    return adv, [(f.host, f.port) for f in found]


def discover(
    state: State, *, timeout: float = 3.0, interface: str = "0.0.0.0"
) -> list[dict[str, Any]]:
    """DHT nodes advertised on the LAN (mDNS), as dht_peer records."""
    from fogctl.dht.mdns import browse

    me = ""
    with contextlib.suppress(FogError):
        me = state.identity().node_id
    found = asyncio.run(browse(timeout, interface=interface, exclude=me))
    return [
        DhtPeerRecord(id=f.id, address=f"{f.host}:{f.port}", ed25519=f.key).to_dict() for f in found
    ]
