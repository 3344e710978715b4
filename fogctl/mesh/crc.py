"""The two CRCs of BPv7 (RFC 9171 section 4.2.1): CRC-16/X-25 and CRC-32C (Castagnoli).

Pure table-driven implementations; check values "123456789" -> 0x906E and 0xE3069283
(the catalogue values for CRC-16/IBM-SDLC and CRC-32/ISCSI) are asserted in the tests.
"""

from __future__ import annotations

__all__ = ["crc16_x25", "crc32c"]


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


def crc16_x25(data: bytes) -> int:
    """CRC-16/X-25: reflected poly 0x1021, init 0xFFFF, xorout 0xFFFF."""
    crc = 0xFFFF
    t = _T16
    for b in data:
        crc = (crc >> 8) ^ t[(crc ^ b) & 0xFF]
    return crc ^ 0xFFFF


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli): reflected poly 0x1EDC6F41, init and xorout 0xFFFFFFFF."""
    crc = 0xFFFFFFFF
    t = _T32C
    for b in data:
        crc = (crc >> 8) ^ t[(crc ^ b) & 0xFF]
    return crc ^ 0xFFFFFFFF
