"""Sans-IO framing of bundles into GATT writes/notifications.

Each chunk: ``flags`` (1 byte: 0x01 first, 0x02 last), ``index`` (u16, big-endian,
0 for the first chunk and +1 after), then for the first chunk the bundle's total
length (u32), then data. A chunk fits the negotiated ATT MTU minus 3 bytes.
"""

from __future__ import annotations

import struct

from fogctl.mesh.errors import ProtocolError

__all__ = ["FIRST", "LAST", "Chunker", "Reassembler"]

FIRST, LAST = 0x01, 0x02
MAX_BUNDLE = 1 << 20  # BLE is slow: refuse bundles above 1 MiB


class Chunker:
    def __init__(self, mtu: int = 23) -> None:
        if mtu < 23:
            raise ValueError("ATT MTU is at least 23")
        self.room = mtu - 3

    def chunks(self, bundle: bytes) -> list[bytes]:
        if len(bundle) > MAX_BUNDLE:
            raise ProtocolError("bundle too large for BLE", reason="length")
        out: list[bytes] = []
        pos, index = 0, 0
        while True:
            head = 3 + (4 if index == 0 else 0)
            take = self.room - head
            piece = bundle[pos : pos + take]
            pos += len(piece)
            flags = (FIRST if index == 0 else 0) | (LAST if pos >= len(bundle) else 0)
            h = struct.pack(">BH", flags, index & 0xFFFF)
            if index == 0:
                h += struct.pack(">I", len(bundle))
            out.append(h + piece)
            index += 1
            if pos >= len(bundle):
                return out


class Reassembler:
    """Rebuilds bundles from chunks of one link; any inconsistency raises
    :class:`ProtocolError` and resets the link's state."""

    def __init__(self, max_bundle: int = MAX_BUNDLE) -> None:
        self.max_bundle = max_bundle
        self._buf: bytearray | None = None
        self._total = 0
        self._next = 0

    def feed(self, chunk: bytes) -> bytes | None:
        if len(chunk) < 3:
            self._buf = None
            raise ProtocolError("BLE chunk shorter than its header", reason="ble")
        flags, index = struct.unpack(">BH", chunk[:3])
        body = chunk[3:]
        if flags & FIRST:
            if len(body) < 4:
                self._buf = None
                raise ProtocolError("first BLE chunk without a length", reason="ble")
            (self._total,) = struct.unpack(">I", body[:4])
            if self._total > self.max_bundle or index != 0:
                self._buf = None
                raise ProtocolError("BLE bundle too large or bad first index", reason="ble")
            self._buf = bytearray()
            self._next = 0
            body = body[4:]
        elif self._buf is None or index != self._next:
            self._buf = None
            raise ProtocolError("BLE chunk out of sequence", reason="ble")
        assert self._buf is not None
        self._buf += body
        self._next = (index + 1) & 0xFFFF
        if len(self._buf) > self._total:
            self._buf = None
            raise ProtocolError("BLE bundle longer than announced", reason="ble")
        if flags & LAST:
            data, self._buf = bytes(self._buf), None
            if len(data) != self._total:
                raise ProtocolError("BLE bundle shorter than announced", reason="ble")
            return data
        return None
