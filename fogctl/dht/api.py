"""The public client API of the DHT, for other fogctl domains.

Every value in the DHT is a text value (UTF-8, at most :data:`MAX_VALUE` bytes) that
the putting node signs with its Ed25519 identity, under a sequence number and an
expiry (at most 24 h; a serving node republishes its own values hourly). A key holds
one slot per signer; a newer put by the same signer replaces its slot. Storing
nodes verify the signature before keeping a value and :func:`get` verifies again,
so what it returns is authentic *as the signer's*: whether that signer is to be
trusted for the key is the caller's decision (check ``signer_id``, or sign the
value's content yourself as ``fogctl mix`` does with its descriptors).

Each function talks to the local node (``fogctl dht serve`` for this state dir,
through its control socket) when one is serving; otherwise it joins the network
briefly as a client (through ``bootstrap``, else ``dht.bootstrap``, else the saved
routing table), does its work and leaves nothing running. Failures are fogctl
errors: :class:`~fogctl.errors.ServiceUnavailable` when no DHT peer answers,
:class:`~fogctl.errors.InvalidInput` for a bad key or value.

Usage::

    from fogctl.dht import api

    if api.serving(state):                       # a local node runs
        api.put(state, "myapp:hello", "world")
    for v in api.get(state, "myapp:hello"):      # verified, newest per signer
        print(v.signer_id, v.text)

Importing this module loads nothing heavy (kademlia loads on the first call).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from fogctl.errors import InvalidInput

if TYPE_CHECKING:
    from fogctl.state import State

__all__ = [
    "MAX_VALUE",
    "SignedValue",
    "Stored",
    "get",
    "get_many",
    "providers",
    "put",
    "put_many",
    "serving",
]

#: Largest value in bytes (one UDP datagram must carry it).
MAX_VALUE = 4096
T = TypeVar("T")
A = TypeVar("A")
SOCKET = "dht.sock"  # the serving node's control socket in the state dir


@dataclass(frozen=True, slots=True)
class SignedValue:
    """One verified value: the newest of one signer under ``key``."""

    key: str
    value: bytes
    signer_id: str  # the signer's node id (40 hex digits)
    seq: int
    expiry: int  # Unix seconds

    @property
    def text(self) -> str:
        return self.value.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class Stored:
    """What a put did: the key, its sequence number, expiry, and how many nodes took it."""

    key: str
    seq: int
    expiry: int
    stored_on: int


def serving(state: State) -> bool:
    """Is a DHT node serving from this state dir (its control socket answers)?"""
    path = state.root / SOCKET
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5.0)
        try:
            sock.connect(str(path))
            # a real (local, cheap) request, so that the node logs no broken connection
            sock.sendall(b'{"op":"peers"}\n')
            while sock.recv(65536):  # the node closes after answering
                pass
        except OSError:
            return False
    return True


def _text(key: str, value: str | bytes) -> str:
    if not key:
        raise InvalidInput("a DHT key must not be empty")
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"DHT value for {key!r} is not UTF-8 text") from None
    size = len(value.encode("utf-8"))
    if size > MAX_VALUE:
        raise InvalidInput(f"DHT value for {key!r} is {size} bytes; the limit is {MAX_VALUE}")
    return value


def _value(rec: dict[str, Any]) -> SignedValue:
    raw = (
        rec["value"].encode("utf-8")
        if rec.get("value") is not None
        else bytes.fromhex(rec.get("value_hex") or "")
    )
    return SignedValue(
        key=str(rec["key"]),
        value=raw,
        signer_id=str(rec["signer"]),
        seq=int(rec["seq"]),
        expiry=int(rec["expiry"]),
    )


def _stored(rec: dict[str, Any]) -> Stored:
    return Stored(str(rec["key"]), int(rec["seq"]), int(rec["expiry"]), int(rec["stored_on"]))


def put(
    state: State, key: str, value: str | bytes, *, bootstrap: Sequence[str] | None = None
) -> Stored:
    """Sign ``value`` under ``key`` with this node's identity and store it on the k
    closest nodes (a higher sequence number than this node's previous put)."""
    return put_many(state, {key: value}, bootstrap=bootstrap)[0]


def put_many(
    state: State, items: dict[str, str | bytes], *, bootstrap: Sequence[str] | None = None
) -> list[Stored]:
    """:func:`put` for several keys, in one brief join when no node is serving."""
    from fogctl.dht import service

    texts = {k: _text(k, v) for k, v in items.items()}
    if not texts:
        return []
    if serving(state) and not bootstrap:

        def one(item: tuple[str, str]) -> Stored:
            return _stored(service.call(state, "put", {"key": item[0], "value": item[1]})[0])

        return _each(one, list(texts.items()))

    async def run(server: Any) -> list[Stored]:
        res = await asyncio.gather(*(server.put(k, v.encode("utf-8")) for k, v in texts.items()))
        return [Stored(k, r.seq, r.expiry, r.stored_on) for k, r in zip(texts, res, strict=True)]

    return _joined(state, bootstrap, run)


def get(
    state: State, key: str, *, signer: str = "", bootstrap: Sequence[str] | None = None
) -> list[SignedValue]:
    """Verified values under ``key``, the newest per signer (only ``signer``'s, a node
    id, if given); an empty list when there is none."""
    return get_many(state, [key], signer=signer, bootstrap=bootstrap)[key]


def get_many(
    state: State,
    keys: Iterable[str],
    *,
    signer: str = "",
    bootstrap: Sequence[str] | None = None,
) -> dict[str, list[SignedValue]]:
    """:func:`get` for several keys (looked up concurrently in one brief join)."""
    from fogctl.dht import service

    wanted = list(dict.fromkeys(keys))
    if any(not k for k in wanted):
        raise InvalidInput("a DHT key must not be empty")
    if serving(state) and not bootstrap:

        def one(key: str) -> list[SignedValue]:
            return [_value(r) for r in service.call(state, "get", {"key": key, "signer": signer})]

        return dict(zip(wanted, _each(one, wanted), strict=True))

    async def run(server: Any) -> dict[str, list[SignedValue]]:
        found = await asyncio.gather(*(service.op_get(server, k, signer) for k in wanted))
        return {k: [_value(r) for r in recs] for k, recs in zip(wanted, found, strict=True)}

    return _joined(state, bootstrap, run)


def providers(state: State, *, bootstrap: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Node descriptors (``node`` records as dicts) announced under the provider keys,
    each signed by the node it describes."""
    from fogctl.dht import service

    return service.call(state, "providers", {}, list(bootstrap or []) or None)


def _each(fn: Callable[[A], T], items: list[A]) -> list[T]:
    """``fn`` over ``items`` through the serving node: one control connection per item,
    at most 8 at once (a single item runs here)."""
    if len(items) == 1:
        return [fn(items[0])]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(8, len(items))) as pool:
        return list(pool.map(fn, items))


def _joined(
    state: State, bootstrap: Sequence[str] | None, body: Callable[[Any], Awaitable[T]]
) -> T:
    from fogctl.dht import service

    addrs = service.bootstrap_addrs(state, list(bootstrap or []))

    async def run() -> T:
        async with service.joined(state, addrs) as server:
            return await body(server)

    return asyncio.run(run())
