"""The DHT's datagram format and its strict decoder (sans-IO).

Framing is rpcudp's (the transport the ``kademlia`` package uses), msgpack bodies::

    0x00 | msg_id(20) | msgpack([method, args])    request, answered by a response
    0x01 | msg_id(20) | msgpack(result)            response
    0x02 | msg_id(20) | msgpack([method, args])    notification (gossip), no answer

Unlike rpcudp, every datagram is checked against a schema before anything acts on
it: size (:data:`MAX_DATAGRAM`, both directions), framing, msgpack, the method name,
the number and types of arguments, and for responses the shape of the answer to
the method that was asked. Anything else raises :class:`MalformedMessage`; the
adapter drops the datagram and counts it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import umsgpack  # type: ignore[import-untyped]

from fogctl.dht.envelope import HEADER, MAX_VALUE

__all__ = [
    "MAX_DATAGRAM",
    "MalformedMessage",
    "NodeTuple",
    "Notify",
    "Request",
    "Response",
    "decode_datagram",
    "encode_notify",
    "encode_request",
    "encode_response",
    "parse_result",
]

MAX_DATAGRAM = 8192
MAX_NODES = 20
MAX_VALUES_BYTES = 7000
REQUEST, RESPONSE, NOTIFY = 0, 1, 2

NodeTuple = tuple[bytes, str, int]


class MalformedMessage(ValueError):
    """A datagram that does not follow the protocol; it is dropped and counted."""


@dataclass(frozen=True, slots=True)
class Request:
    msg_id: bytes
    method: str
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Notify:
    msg_id: bytes
    method: str
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Response:
    msg_id: bytes
    body: Any


def _bytes(n: int | tuple[int, ...]) -> Any:
    sizes = (n,) if isinstance(n, int) else n

    def check(v: Any) -> bool:
        return isinstance(v, bytes) and len(v) in sizes

    return check


def _envelope(v: Any) -> bool:
    return isinstance(v, bytes) and HEADER <= len(v) <= HEADER + MAX_VALUE


def _blob(v: Any) -> bool:
    return isinstance(v, bytes) and len(v) <= MAX_DATAGRAM


# method -> argument checks (the sender's 32-byte Ed25519 key always comes first)
REQUESTS: dict[str, tuple[Any, ...]] = {
    "ping": (_bytes(32), _bytes(16)),
    "find_node": (_bytes(32), _bytes(20)),
    "find_value": (_bytes(32), _bytes(20), _bytes((0, 32))),
    "store": (_bytes(32), _envelope),
}
NOTIFICATIONS: dict[str, tuple[Any, ...]] = {
    "gossip": (_bytes(32), _blob),
}


def _unpack(data: bytes) -> Any:
    try:
        return umsgpack.unpackb(data, allow_invalid_utf8=False)
    except Exception as exc:  # umsgpack raises many types on hostile input
        raise MalformedMessage(f"not msgpack: {type(exc).__name__}") from None


def decode_datagram(data: bytes) -> Request | Response | Notify:
    """Decode one datagram; :class:`MalformedMessage` if it breaks any rule."""
    if len(data) > MAX_DATAGRAM:
        raise MalformedMessage(f"datagram of {len(data)} bytes exceeds {MAX_DATAGRAM}")
    if len(data) < 22:
        raise MalformedMessage("datagram too short")
    kind, msg_id, body = data[0], bytes(data[1:21]), _unpack(bytes(data[21:]))
    if kind == RESPONSE:
        return Response(msg_id, body)
    if kind not in (REQUEST, NOTIFY):
        raise MalformedMessage(f"unknown datagram type {kind}")
    if not isinstance(body, list) or len(body) != 2:
        raise MalformedMessage("request is not [method, args]")
    method, args = body
    table = REQUESTS if kind == REQUEST else NOTIFICATIONS
    if not isinstance(method, str) or method not in table:
        raise MalformedMessage(f"unknown method {method!r:.40}")
    checks = table[method]
    if not isinstance(args, list) or len(args) != len(checks):
        raise MalformedMessage(f"{method}: expected {len(checks)} arguments")
    for i, (arg, ok) in enumerate(zip(args, checks, strict=True)):
        if not ok(arg):
            raise MalformedMessage(f"{method}: argument {i} has the wrong type or size")
    cls = Request if kind == REQUEST else Notify
    return cls(msg_id, method, tuple(args))


def _node_list(v: Any) -> list[NodeTuple]:
    if not isinstance(v, list) or len(v) > MAX_NODES:
        raise MalformedMessage("node list is not a list of at most 20")
    out: list[NodeTuple] = []
    for item in v:
        if not isinstance(item, list | tuple) or len(item) != 3:
            raise MalformedMessage("node is not [id, host, port]")
        nid, host, port = item
        if not isinstance(nid, bytes) or len(nid) != 20:
            raise MalformedMessage("node id is not 20 bytes")
        if not isinstance(host, str) or len(host) > 45:
            raise MalformedMessage("node host is not an IP address")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise MalformedMessage("node host is not an IP address") from None
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise MalformedMessage("node port out of range")
        out.append((nid, host, port))
    return out


def parse_result(method: str, body: Any) -> Any:
    """Check a response body against the method that was asked; return it typed."""
    if method == "ping":
        if (
            not isinstance(body, list)
            or len(body) != 2
            or not _bytes(32)(body[0])
            or not _bytes(64)(body[1])
        ):
            raise MalformedMessage("ping: answer is not [key, signature]")
        return (body[0], body[1])
    if method == "find_node":
        return _node_list(body)
    if method == "find_value":
        if not isinstance(body, dict) or set(body) - {"v", "n"}:
            raise MalformedMessage("find_value: answer is not {v, n}")
        values = body.get("v", [])
        if not isinstance(values, list) or not all(_envelope(x) for x in values):
            raise MalformedMessage("find_value: values are not envelopes")
        return (values, _node_list(body.get("n", [])))
    if method == "store":
        if (
            not isinstance(body, list)
            or len(body) != 2
            or not isinstance(body[0], bool)
            or not isinstance(body[1], str)
        ):
            raise MalformedMessage("store: answer is not [ok, reason]")
        return (body[0], body[1][:200])
    raise MalformedMessage(f"unknown method {method!r}")


def _frame(kind: int, msg_id: bytes, body: Any) -> bytes:
    data: bytes = bytes([kind]) + msg_id + umsgpack.packb(body)
    if len(data) > MAX_DATAGRAM:
        raise MalformedMessage(f"message of {len(data)} bytes exceeds {MAX_DATAGRAM}")
    return data


def encode_request(msg_id: bytes, method: str, args: list[Any]) -> bytes:
    return _frame(REQUEST, msg_id, [method, args])


def encode_notify(msg_id: bytes, method: str, args: list[Any]) -> bytes:
    return _frame(NOTIFY, msg_id, [method, args])


def encode_response(msg_id: bytes, body: Any) -> bytes:
    return _frame(RESPONSE, msg_id, body)
