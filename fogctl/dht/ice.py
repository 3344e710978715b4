"""Peer-to-peer UDP through NATs: ICE (aioice) with signalling through the DHT.

Each side gathers host, server-reflexive (STUN) and, when a TURN server is given,
relayed candidates, and publishes them with its ICE credentials as a signed value
under ``fogctl:ice/<its id>/<peer id>``. It reads the peer's offer from the mirror
key and accepts it only if it is signed by the key whose node id is the peer's, so
a third party cannot redirect the connection. The side with the lower node id is
the controlling agent. ICE checks then punch holes through endpoint-independent
NATs (a direct pair is selected); when either side is behind a symmetric NAT only
the relayed pair succeeds and traffic goes through TURN.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from fogctl.dht.server import FogServer
from fogctl.errors import InvalidInput, OperationFailed, ServiceUnavailable

__all__ = ["IceResult", "connect"]


@dataclass(frozen=True, slots=True)
class IceResult:
    peer: str
    path: str  # direct | relay
    local: str
    remote: str
    local_type: str
    remote_type: str
    received: str


def offer_key(src: str, dst: str) -> str:
    return f"fogctl:ice/{src}/{dst}"


async def connect(
    server: FogServer,
    peer_id: str,
    *,
    stun: tuple[str, int] | None = None,
    turn: tuple[str, int] | None = None,
    turn_user: str | None = None,
    turn_password: str | None = None,
    message: str = "",
    timeout: float = 30.0,
) -> IceResult:
    """Connect to ``peer_id`` (which runs the same call), exchange one message each way."""
    import aioice

    me = server.identity.node_id
    if peer_id == me:
        raise InvalidInput("cannot connect to this node itself")
    conn = aioice.Connection(
        ice_controlling=me < peer_id,
        stun_server=stun,
        turn_server=turn,
        turn_username=turn_user,
        turn_password=turn_password,
        use_ipv6=False,
    )
    deadline = time.monotonic() + timeout
    try:
        await conn.gather_candidates()
        offer = {
            "ufrag": conn.local_username,
            "pwd": conn.local_password,
            "candidates": [c.to_sdp() for c in conn.local_candidates],
        }
        await server.put(offer_key(me, peer_id), json.dumps(offer).encode(), ttl=300)
        remote = await _await_offer(server, peer_id, me, deadline)
        conn.remote_username = remote["ufrag"]
        conn.remote_password = remote["pwd"]
        for sdp in remote["candidates"]:
            await conn.add_remote_candidate(aioice.Candidate.from_sdp(sdp))
        await conn.add_remote_candidate(None)
        try:
            await asyncio.wait_for(conn.connect(), max(1.0, deadline - time.monotonic()))
        except (TimeoutError, ConnectionError) as exc:
            raise OperationFailed(f"ICE found no working path to {peer_id}: {exc}") from None
        pair = conn._nominated.get(1)
        if pair is None:
            raise OperationFailed(f"ICE nominated no pair with {peer_id}")
        local_type = pair.local_candidate.type
        remote_type = pair.remote_candidate.type
        text = message or f"hello from {me}"
        await conn.send(text.encode())
        try:
            data = await asyncio.wait_for(conn.recv(), max(1.0, deadline - time.monotonic()))
        except TimeoutError:
            raise OperationFailed(f"connected to {peer_id} but no data arrived") from None
        await conn.send(text.encode())  # the peer may have missed our first datagram
        return IceResult(
            peer=peer_id,
            path="relay" if "relay" in (local_type, remote_type) else "direct",
            local=f"{pair.local_addr[0]}:{pair.local_addr[1]}",
            remote=f"{pair.remote_addr[0]}:{pair.remote_addr[1]}",
            local_type=local_type,
            remote_type=remote_type,
            received=data.decode("utf-8", "replace"),
        )
    finally:
        await asyncio.sleep(0.2)  # let the last datagrams and the nomination settle
        await conn.close()


async def _await_offer(server: FogServer, peer_id: str, me: str, deadline: float) -> Any:
    key = offer_key(peer_id, me)
    while time.monotonic() < deadline:
        for env in await server.get_envelopes(key):
            if env.signer_id.hex() != peer_id:
                continue  # only the peer itself may speak for the peer
            try:
                offer = json.loads(env.value)
                if (
                    isinstance(offer, dict)
                    and isinstance(offer.get("ufrag"), str)
                    and isinstance(offer.get("pwd"), str)
                    and isinstance(offer.get("candidates"), list)
                    and all(isinstance(c, str) for c in offer["candidates"])
                ):
                    return offer
            except (ValueError, RecursionError):
                pass
        await asyncio.sleep(0.2)
    raise ServiceUnavailable(f"peer {peer_id} published no ICE offer in time")
