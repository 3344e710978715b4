"""``fogctl mix client``: a long-running client that keeps the Loopix streams going.

Anonymity needs the cover streams to run all the time, not only while a message is
being sent (else the start of cover traffic marks the moment of sending). The client
daemon runs the :class:`MixClient` core continuously: payload stream with real
packets substituted, loop and drop cover, pulling from the provider, acking what
arrives, resending what is not acked. ``send``, ``recv`` and ``reply`` talk to it
through a Unix socket in the state dir (``mix/client.sock``, mode 0600) when it runs;
requests are one JSON object per line, answers too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

from fogctl.errors import InvalidInput, OperationFailed, ServiceUnavailable
from fogctl.mix.message import MAX_DATA
from fogctl.mix.node import (
    Acked,
    ClientAddress,
    Delivered,
    Failed,
    LoopReturned,
    Params,
    ReplyReceived,
)
from fogctl.mix.records import MixMessageRecord, MixSentRecord, MixStatsRecord
from fogctl.state import State

__all__ = ["call", "run_client", "running", "send_via", "socket_path", "unseen"]

log = logging.getLogger("fogctl.mix")


def socket_path(state: State) -> Path:
    return state.subdir("mix") / "client.sock"


def call(state: State, request: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """One request to the running client daemon."""
    path = socket_path(state)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(path))
            s.sendall(json.dumps(request).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
    except OSError as exc:
        raise ServiceUnavailable(f"mix client at {path}: {exc.strerror or exc}") from None
    try:
        answer: dict[str, Any] = json.loads(buf)
    except ValueError:
        raise ServiceUnavailable(f"mix client at {path}: bad answer") from None
    if "error" in answer:
        exc_type = InvalidInput if answer.get("code") == "invalid" else OperationFailed
        raise exc_type(str(answer["error"]))
    return answer


def running(state: State) -> bool:
    if not socket_path(state).exists():
        return False
    try:
        call(state, {"op": "ping"}, timeout=2.0)
    except ServiceUnavailable:
        return False
    return True


def send_via(
    state: State, recipient: ClientAddress, data: bytes, *, want_reply: bool, wait: float
) -> MixSentRecord:
    ans = call(
        state,
        {"op": "send", "to": str(recipient), "data": data.hex(), "want_reply": want_reply},
    )
    msg_id = str(ans["id"])
    deadline = time.time() + wait
    status: dict[str, Any] = {"acked": False, "failed": False, "tries": 1}
    while wait > 0 and time.time() < deadline:
        status = call(state, {"op": "status", "id": msg_id})
        if status["acked"] or status["failed"]:
            break
        time.sleep(0.1)
    if wait > 0 and not status["acked"]:
        raise OperationFailed(
            f"message {msg_id[:12]} was not acknowledged within {wait:g}s"
            + (" after every retry" if status["failed"] else "")
        )
    return MixSentRecord(
        id=msg_id,
        to=str(recipient),
        bytes=len(data),
        hops=int(ans["hops"]),
        packets=-(-max(1, len(data)) // MAX_DATA),
        reply_surb=want_reply,
    )


def unseen(state: State, wait: float) -> list[MixMessageRecord]:
    """Messages the daemon stored and nobody has printed yet (marks them shown)."""
    from fogctl.mix.engine import _db

    deadline = time.time() + wait
    while True:
        db = _db(state)
        with db.transaction() as conn:
            rows = conn.execute(
                "SELECT msg_id, type, data, reply_surb, in_reply_to, received_at "
                "FROM mix_inbox WHERE shown = 0 ORDER BY received_at"
            ).fetchall()
            conn.execute("UPDATE mix_inbox SET shown = 1 WHERE shown = 0")
        if rows or time.time() >= deadline:
            break
        time.sleep(0.2)
    out = []
    for r in rows:
        data = bytes(r["data"])
        try:
            text: str | None = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        out.append(
            MixMessageRecord(
                id=r["msg_id"],
                type=r["type"],
                data=text,
                data_hex=None if text is not None else data.hex(),
                can_reply=r["reply_surb"] is not None,
                in_reply_to=r["in_reply_to"],
                received_at=r["received_at"],
            )
        )
    return out


def run_client(
    state: State,
    params: Params,
    *,
    provider: str | None = None,
    poll: float = 0.5,
    stop: threading.Event | None = None,
    directory_every: float = 60.0,
) -> MixStatsRecord:
    """Run the client in the foreground until SIGTERM/SIGINT (or ``stop`` is set).

    Every ``directory_every`` seconds it re-fetches the directory from its provider
    (and from the DHT when a local DHT node serves), so it follows key epochs and new
    nodes.
    """
    return asyncio.run(
        _run(state, params, provider, poll, stop or threading.Event(), directory_every)
    )


async def _run(
    state: State,
    params: Params,
    provider: str | None,
    poll: float,
    stop: threading.Event,
    directory_every: float,
) -> MixStatsRecord:
    from fogctl.mix import sphinx
    from fogctl.mix.engine import _client, _db, _save_surbs, _store_received, save_vrf_proofs
    from fogctl.mix.net import ClientService

    c = _client(state, params, provider, time.time())
    loaded = set(c.core.surbs)
    svc = ClientService(c.core, c.secret, c.provider, poll=poll)
    acked: dict[str, int] = {}
    failed: set[str] = set()
    path = socket_path(state)
    if running(state):
        raise OperationFailed(f"a mix client already runs for this state dir ({path})")
    path.unlink(missing_ok=True)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            try:
                req = json.loads(line)
                answer = dispatch(req)
            except (ValueError, KeyError, TypeError) as exc:
                answer = {"error": f"bad request: {exc}", "code": "invalid"}
            except (InvalidInput, OperationFailed) as exc:
                answer = {"error": exc.message, "code": exc.code}
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def dispatch(req: dict[str, Any]) -> dict[str, Any]:
        now = time.time()
        op = req.get("op")
        if op == "ping":
            return {"ok": True, "address": str(c.core.address)}
        if op == "send":
            to = ClientAddress.parse(str(req["to"]))
            if c.topo.node(to.provider) is None:
                raise InvalidInput(f"the recipient's provider {to.provider.hex()[:12]} is unknown")
            sent = c.core.send(
                to, bytes.fromhex(req["data"]), now, want_reply=bool(req.get("want_reply", True))
            )
            return {"id": sent.hex(), "hops": c.core.params.hops}
        if op == "status":
            mid = str(req["id"])
            return {"acked": mid in acked, "failed": mid in failed, "tries": acked.get(mid, 1)}
        if op == "reply":
            rows = _db(state).query(
                "SELECT reply_surb FROM mix_inbox WHERE msg_id = ?", (str(req["msg_id"]),)
            )
            if not rows or rows[0]["reply_surb"] is None:
                raise InvalidInput("no reply block for that message (or it was used)")
            surb = sphinx.Surb.from_bytes(bytes(rows[0]["reply_surb"]))
            c.core.reply(surb, bytes.fromhex(req["msg_id"]), bytes.fromhex(req["data"]), now)
            with _db(state).transaction() as conn:
                conn.execute(
                    "UPDATE mix_inbox SET reply_surb = NULL WHERE msg_id = ?", (req["msg_id"],)
                )
            return {"ok": True}
        if op == "stats":
            return {"counters": dict(c.core.counters)}
        raise InvalidInput(f"unknown op {op!r}")

    async def refresh_directory() -> None:
        """Follow key epochs and new nodes: re-fetch the provider's directory, and the
        descriptors in the DHT when a DHT node serves from this state dir (each one is
        verified by the store like a provider's)."""
        from fogctl.dht.api import serving
        from fogctl.mix import dhtdir
        from fogctl.mix.directory import Topology
        from fogctl.mix.engine import _directory_path
        from fogctl.mix.net import DirectoryStore, fetch_directory, split_hostport

        host, port = split_hostport(c.provider.address)
        descs = []
        try:
            descs += await fetch_directory(host, port)
        except ServiceUnavailable as exc:
            log.warning("directory refresh from the provider failed: %s", exc)
        try:
            if await asyncio.to_thread(serving, state):
                descs += await asyncio.to_thread(dhtdir.fetch, state)
        except Exception as exc:  # the DHT being unwell must not stop the client
            log.warning("directory refresh from the DHT failed: %s", exc)
        if not descs:
            return
        now = time.time()
        store = DirectoryStore(_directory_path(state))
        store.add_many(c.topo.by_id.values(), now)
        store.add_many(descs, now)
        store.save()
        topo = Topology(store.by_id.values(), now)
        if topo.providers and topo.depth >= c.core.params.hops:
            c.topo = c.core.topology = topo
        fresh = topo.node(c.provider.id)
        if fresh is not None and fresh.public_key != c.provider.public_key:
            # the provider's key epoch turned: pull, register and submit under the new key
            c.provider = svc.provider = fresh

    server = await asyncio.start_unix_server(handle, path=str(path))
    os.chmod(path, 0o600)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    log.info("mix client %s via provider %s", c.core.address, c.provider.id[:12])
    next_pull = 0.0
    next_save = time.time() + 5
    next_directory = time.time() + directory_every
    try:
        while not stop.is_set():
            before = len(svc.events)
            try:
                await svc.step()
                if time.time() >= next_pull:
                    await svc.pull_once()
                    next_pull = time.time() + poll
                    await svc.step()  # acks leave on the next payload tick
            except ServiceUnavailable as exc:
                log.warning("provider unreachable: %s", exc)
                await asyncio.sleep(1.0)
            new = svc.events[before:]
            if new:
                _store_received(state, c, new, shown=False)
                for e in new:
                    if isinstance(e, Acked):
                        acked[e.msg_id.hex()] = e.tries
                    elif isinstance(e, Failed):
                        failed.add(e.msg_id.hex())
                    elif isinstance(e, Delivered | ReplyReceived | LoopReturned):
                        pass
                del svc.events[:]
            if time.time() >= next_save:
                save_vrf_proofs(state, c.core)
                _save_surbs(state, c.core.surbs, [])
                next_save = time.time() + 5
            if time.time() >= next_directory:
                next_directory = time.time() + directory_every
                await refresh_directory()
            t = c.core.get_timer()
            wake = min(x for x in (t, next_pull) if x is not None)
            await asyncio.sleep(max(0.0, min(0.05, wake - time.time())))
    finally:
        server.close()
        path.unlink(missing_ok=True)
        await svc.close()
        save_vrf_proofs(state, c.core)
        _save_surbs(state, c.core.surbs, [i for i in loaded if i not in c.core.surbs])
    return MixStatsRecord(node=str(c.core.address), role="client", counters=dict(c.core.counters))
