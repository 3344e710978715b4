"""FOG amounts and durations: exact decimal parsing and formatting (no floats)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation, localcontext

from fogctl.errors import InvalidInput

__all__ = [
    "DECIMALS",
    "WEI",
    "format_fog",
    "parse_account",
    "parse_address",
    "parse_duration",
    "parse_fog",
    "parse_fraction",
]

DECIMALS = 18
WEI = 10**DECIMALS
_AMOUNT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(fog|wei)?\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_fog(text: str, *, what: str = "amount", allow_zero: bool = False) -> int:
    """``"1500"``, ``"0.5"``, ``"1500 FOG"`` or ``"12wei"`` -> wei. Exact; no rounding."""
    m = _AMOUNT.match(text)
    if not m:
        raise InvalidInput(f"{what} {text!r}: expected a FOG amount such as 1500 or 0.25")
    number, unit = m.group(1), (m.group(2) or "fog").lower()
    if unit == "wei":
        if "." in number:
            raise InvalidInput(f"{what} {text!r}: wei amounts are whole numbers")
        wei = int(number)
    else:
        if len(number) > 100:
            raise InvalidInput(f"{what} {text!r}: too long")
        with localcontext() as ctx:
            ctx.prec = 150  # exact for every uint256 amount (the default 28 digits is not)
            try:
                scaled = Decimal(number) * WEI
            except InvalidOperation:
                raise InvalidInput(f"{what} {text!r}: not a number") from None
            whole = scaled == scaled.to_integral_value()
        if not whole:
            raise InvalidInput(f"{what} {text!r}: more than {DECIMALS} decimals")
        wei = int(scaled)
    if wei == 0 and not allow_zero:
        raise InvalidInput(f"{what} {text!r}: must be more than zero")
    if wei >= 2**256:
        raise InvalidInput(f"{what} {text!r}: too large")
    return wei


def format_fog(wei: int) -> str:
    """Wei -> whole FOG as a plain decimal string without trailing zeros (``"1500"``)."""
    sign = "-" if wei < 0 else ""
    whole, frac = divmod(abs(wei), WEI)
    if not frac:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:018d}".rstrip("0")


def parse_duration(text: str, *, what: str = "duration") -> int:
    """``"8d"``, ``"36h"``, ``"90m"``, ``"600"`` (seconds) -> seconds."""
    m = _DURATION.match(text)
    if not m:
        raise InvalidInput(f"{what} {text!r}: expected a number with s, m, h, d or w (e.g. 8d)")
    return int(m.group(1)) * _UNIT_SECONDS[(m.group(2) or "s").lower()]


def parse_fraction(text: str, *, scale: int = 1_000_000) -> int:
    """A fraction in (0, 1] such as ``0.1`` or ``10%`` -> parts per ``scale``, exactly."""
    raw = text.strip()
    percent = raw.endswith("%")
    try:
        value = Decimal(raw[:-1] if percent else raw)
    except InvalidOperation:
        raise InvalidInput(f"--fraction {text!r}: expected a number such as 0.1 or 10%") from None
    if not value.is_finite() or len(raw) > 50:
        raise InvalidInput(f"--fraction {text!r}: expected a number such as 0.1 or 10%")
    with localcontext() as ctx:
        ctx.prec = 100
        if percent:
            value /= 100
        if value <= 0 or value > 1:
            raise InvalidInput(f"--fraction {text!r}: must be more than 0 and at most 1")
        parts = value * scale
    if parts != parts.to_integral_value():
        raise InvalidInput(f"--fraction {text!r}: finer than 1/{scale}")
    return int(parts)


def parse_address(text: str, *, what: str = "address") -> str:
    """``0x`` + 40 hex digits -> the checksummed address; a wrong mixed-case checksum is refused.

    Pure: no chain is contacted, so commands validate their arguments before connecting.
    """
    from eth_utils.address import is_address, is_checksum_address, to_checksum_address

    if not text.startswith("0x"):
        # A bare 40-hex-digit string is more likely a fog node id than an address.
        raise InvalidInput(
            f"{what} {text!r}: not an address (0x followed by 40 hex digits); for a node, "
            "use the stake_address of its node record"
        )
    if not is_address(text):
        raise InvalidInput(f"{what} {text!r}: not an address (0x followed by 40 hex digits)")
    if text != text.lower() and not is_checksum_address(text):
        raise InvalidInput(f"{what} {text!r}: bad address checksum")
    return str(to_checksum_address(text))


def parse_account(text: str | None, *, what: str = "address") -> str | None:
    """An address, or None for this account (no argument, ``self`` or ``me``)."""
    if text is None or text in ("self", "me"):
        return None
    return parse_address(text, what=what)
