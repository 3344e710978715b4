"""The two CRCs of BPv7 (RFC 9171 section 4.2.1): CRC-16/X-25 and CRC-32C (Castagnoli).

Check values "123456789" -> 0x906E and 0xE3069283 (the catalogue values for
CRC-16/IBM-SDLC and CRC-32/ISCSI) are asserted in the tests.

Speed matters: a peer may send a 64 MiB payload block with a CRC. CRC-16/X-25 runs in
C through ``binascii.crc_hqx`` (the same polynomial, unreflected) on bit-reversed
bytes; CRC-32C uses ``google_crc32c`` when installed and a table-driven pure-Python
loop otherwise (both are tested against each other).
"""

from __future__ import annotations

import binascii
from collections.abc import Callable

__all__ = ["crc16_x25", "crc16_x25_python", "crc32c", "crc32c_python"]


def _table(poly: int) -> tuple[int, ...]:
    out = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        out.append(c)
    return tuple(out)


_T16 = _table(0x8408)  # reflected 0x1021
_T32C = _table(0x82F63B78)  # reflected 0x1EDC6F41
_REV8 = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def crc16_x25_python(data: bytes) -> int:
    """CRC-16/X-25, table-driven (the reference for :func:`crc16_x25`)."""
    crc = 0xFFFF
    t = _T16
    for b in data:
        crc = (crc >> 8) ^ t[(crc ^ b) & 0xFF]
    return crc ^ 0xFFFF


def crc16_x25(data: bytes) -> int:
    """CRC-16/X-25: reflected poly 0x1021, init 0xFFFF, xorout 0xFFFF.

    A reflected CRC equals the bit-reversed unreflected CRC of the bit-reversed bytes;
    ``binascii.crc_hqx`` is the unreflected 0x1021 CRC, in C."""
    r = binascii.crc_hqx(bytes(data).translate(_REV8), 0xFFFF)
    return (_REV8[r & 0xFF] << 8 | _REV8[r >> 8]) ^ 0xFFFF


def crc32c_python(data: bytes) -> int:
    """CRC-32C, table-driven: reflected poly 0x1EDC6F41, init and xorout 0xFFFFFFFF."""
    crc = 0xFFFFFFFF
    t = _T32C
    for b in data:
        crc = (crc >> 8) ^ t[(crc ^ b) & 0xFF]
    return crc ^ 0xFFFFFFFF


def _fast_crc32c() -> Callable[[bytes], int] | None:
    try:
        import google_crc32c  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    if getattr(google_crc32c, "implementation", "") != "c":
        return None
    value = google_crc32c.value

    def fast(data: bytes) -> int:
        return int(value(bytes(data)))

    return fast


crc32c: Callable[[bytes], int] = _fast_crc32c() or crc32c_python
