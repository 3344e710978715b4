"""What travels inside a Sphinx body: forward messages, replies and acks.

A forward body is sealed to the recipient (libsodium sealed box, X25519), so the
exit provider, which removes the last Sphinx layer, learns nothing of the content::

    body  = len (2, big-endian) || sealed box of frame
    frame = version (1) | kind (1) | flags (1) | msg_id (16) | part (2) | parts (2)
            | data_len (2) | data | [ack SURB (436)] | [reply SURB (436)]

A message longer than one packet travels as ``parts`` packets with the same
``msg_id`` (at most :data:`MAX_PARTS`); each part has its own ack block, the first
carries the reply block. The ack of a part names ``part_id(msg_id, part)``.

A reply or an ack travels through a SURB, whose layers already hide it from every
mix; its body is the frame without SURBs, unsealed: only the SURB's creator can
remove the layers. Anything that does not parse raises :class:`MalformedPacket`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from fogctl.mix.errors import MalformedPacket
from fogctl.mix.sphinx import BODY_SIZE, SURB_SIZE, Surb

__all__ = [
    "KIND_ACK",
    "KIND_DATA",
    "KIND_REPLY",
    "MAX_DATA",
    "MAX_PARTS",
    "MAX_REPLY_DATA",
    "Frame",
    "decode_forward",
    "decode_reply",
    "encode_forward",
    "encode_reply",
]

VERSION = 1
KIND_DATA = 1
KIND_REPLY = 2
KIND_ACK = 3
FLAG_ACK_SURB = 1
FLAG_REPLY_SURB = 2
_HEAD = struct.Struct(">BBB16sHHH")
#: Most packets one message may span (64 x 1,085 bytes = 69,440 bytes).
MAX_PARTS = 64
_SEAL_OVERHEAD = 48
#: Largest part that fits one forward packet with both SURBs (1,085 bytes).
MAX_DATA = BODY_SIZE - 2 - _SEAL_OVERHEAD - _HEAD.size - 2 * SURB_SIZE
#: Largest reply (2,011 bytes).
MAX_REPLY_DATA = BODY_SIZE - _HEAD.size


@dataclass(frozen=True, slots=True)
class Frame:
    kind: int
    msg_id: bytes
    data: bytes
    ack_surb: Surb | None = None
    reply_surb: Surb | None = None
    part: int = 0
    parts: int = 1


def part_id(msg_id: bytes, part: int) -> bytes:
    """The id an ack of one part carries (the whole message's id for part 0 of 1)."""
    if part == 0:
        return msg_id
    import hashlib

    return hashlib.sha256(b"fogctl-mix-part" + msg_id + part.to_bytes(2, "big")).digest()[:16]


def _frame(f: Frame) -> bytes:
    flags = (FLAG_ACK_SURB if f.ack_surb else 0) | (FLAG_REPLY_SURB if f.reply_surb else 0)
    out = _HEAD.pack(VERSION, f.kind, flags, f.msg_id, f.part, f.parts, len(f.data)) + f.data
    if f.ack_surb:
        out += f.ack_surb.to_bytes()
    if f.reply_surb:
        out += f.reply_surb.to_bytes()
    return out


def _unframe(data: bytes) -> Frame:
    if len(data) < _HEAD.size:
        raise MalformedPacket("message frame too short")
    version, kind, flags, msg_id, part, parts, n = _HEAD.unpack_from(data)
    if version != VERSION or kind not in (KIND_DATA, KIND_REPLY, KIND_ACK) or flags & ~3:
        raise MalformedPacket("unknown message frame")
    if not 0 <= part < parts <= MAX_PARTS:
        raise MalformedPacket("bad message part numbers")
    pos = _HEAD.size + n
    if pos > len(data):
        raise MalformedPacket("message frame truncated")
    surbs: list[Surb | None] = []
    for flag in (FLAG_ACK_SURB, FLAG_REPLY_SURB):
        if flags & flag:
            surbs.append(Surb.from_bytes(data[pos : pos + SURB_SIZE]))
            pos += SURB_SIZE
        else:
            surbs.append(None)
    return Frame(kind, msg_id, data[_HEAD.size : _HEAD.size + n], surbs[0], surbs[1], part, parts)


def encode_forward(frame: Frame, recipient_public: bytes) -> bytes:
    from nacl.public import PublicKey, SealedBox

    if len(frame.data) > MAX_DATA:
        raise ValueError(f"a message holds at most {MAX_DATA} bytes")
    sealed = SealedBox(PublicKey(recipient_public)).encrypt(_frame(frame))
    return len(sealed).to_bytes(2, "big") + sealed


def decode_forward(body: bytes, secret: bytes) -> Frame:
    from nacl.exceptions import CryptoError
    from nacl.public import PrivateKey, SealedBox

    n = int.from_bytes(body[:2], "big")
    if not _SEAL_OVERHEAD < n <= len(body) - 2:
        raise MalformedPacket("sealed message has a bad length")
    try:
        plain = SealedBox(PrivateKey(secret)).decrypt(body[2 : 2 + n])
    except CryptoError:
        raise MalformedPacket("sealed message does not open") from None
    frame = _unframe(plain)
    if frame.kind != KIND_DATA:
        raise MalformedPacket("forward message of the wrong kind")
    return frame


def encode_reply(kind: int, msg_id: bytes, data: bytes) -> bytes:
    if len(data) > MAX_REPLY_DATA:
        raise ValueError(f"a reply holds at most {MAX_REPLY_DATA} bytes")
    return _frame(Frame(kind, msg_id, data))


def decode_reply(body: bytes) -> Frame:
    frame = _unframe(body)
    if frame.kind not in (KIND_REPLY, KIND_ACK) or frame.ack_surb or frame.reply_surb:
        raise MalformedPacket("reply of the wrong kind")
    return frame
