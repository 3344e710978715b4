"""Proposal actions: ``staking.setMinStake(2000)`` -> target, function and arguments.

Sans-IO: :func:`parse_action` only tokenises the text; :func:`bind_action` checks it
against a contract ABI, the deployment's addresses and a resolver for named constants
(such as ``SLASHER_ROLE``), and returns Python values ready to ABI-encode. Every failure
is an :class:`~fogctl.errors.InvalidInput` naming the part that is wrong.

Grammar::

    action   := CONTRACT "." FUNCTION "(" [arg ("," arg)*] ")"
    arg      := NUMBER [UNIT] | ADDRESS | "@" CONTRACT | CONTRACT | true | false
              | '"' chars '"' | 0xHEX | CONSTANT
    UNIT     := fog | wei | s | m | h | d | w

Amount parameters (the minimum stake, mint and transfer amounts, reward funding, the
proposal threshold) take whole FOG (``2000`` is 2000 FOG, ``5wei`` is 5 wei); other
integers are taken as written, or as seconds with a time unit (``3d``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fogctl.chain.units import parse_duration, parse_fog
from fogctl.errors import InvalidInput

__all__ = [
    "AMOUNT_PARAMS",
    "CONTRACTS",
    "BoundAction",
    "ParsedAction",
    "bind_action",
    "parse_action",
]

CONTRACTS = ("token", "staking", "governor", "timelock")

# (contract, function) -> indexes of parameters denominated in FOG.
AMOUNT_PARAMS: dict[tuple[str, str], tuple[int, ...]] = {
    ("staking", "setMinStake"): (0,),
    ("staking", "fundRewards"): (0,),
    ("token", "mint"): (1,),
    ("token", "transfer"): (1,),
    ("token", "approve"): (1,),
    ("token", "burn"): (0,),
    ("governor", "setProposalThreshold"): (0,),
}

_HEAD = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NUMBER = re.compile(r"^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$")
_HEX = re.compile(r"^0x[0-9a-fA-F]*$")


@dataclass(frozen=True, slots=True)
class ParsedAction:
    """The text split up: contract alias, function name and raw argument tokens."""

    contract: str
    function: str
    args: tuple[str, ...]
    text: str


@dataclass(frozen=True, slots=True)
class BoundAction:
    """An action checked against the ABI: what a proposal will call."""

    contract: str
    target: str
    function: str
    signature: str
    types: tuple[str, ...]
    values: tuple[Any, ...]
    text: str

    def describe(self) -> str:
        shown = ", ".join(_show(v) for v in self.values)
        return f"{self.contract}.{self.function}({shown})"


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, str) and not value.startswith("0x"):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _split_args(text: str, body: str) -> tuple[str, ...]:
    args: list[str] = []
    cur: list[str] = []
    i = 0
    in_str = False
    while i < len(body):
        ch = body[i]
        if in_str:
            cur.append(ch)
            if ch == "\\":
                if i + 1 >= len(body):
                    raise InvalidInput(f"action {text!r}: unfinished escape in a string")
                cur.append(body[i + 1])
                i += 2
                continue
            if ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
            cur.append(ch)
        elif ch == ",":
            args.append("".join(cur).strip())
            cur = []
        elif ch in "()":
            raise InvalidInput(f"action {text!r}: unexpected {ch!r} in the arguments")
        else:
            cur.append(ch)
        i += 1
    if in_str:
        raise InvalidInput(f"action {text!r}: unterminated string")
    last = "".join(cur).strip()
    if args or last:
        args.append(last)
    for n, arg in enumerate(args, 1):
        if not arg:
            raise InvalidInput(f"action {text!r}: argument {n} is empty")
    return tuple(args)


def parse_action(text: str) -> ParsedAction:
    """Tokenise ``contract.function(arg, ...)``; raises InvalidInput naming the bad part."""
    if len(text) > 4096:
        raise InvalidInput("action: longer than 4096 characters")
    m = _HEAD.match(text)
    if not m:
        raise InvalidInput(
            f"action {text!r}: expected CONTRACT.FUNCTION(ARGS) such as 'staking.setMinStake(2000)'"
        )
    contract, function = m.group(1), m.group(2)
    if contract not in CONTRACTS:
        raise InvalidInput(
            f"action {text!r}: unknown contract {contract!r} (one of {', '.join(CONTRACTS)})"
        )
    rest = text[m.end() :]
    close = _closing_paren(text, rest)
    if rest[close + 1 :].strip():
        raise InvalidInput(f"action {text!r}: unexpected text after ')': {rest[close + 1 :]!r}")
    return ParsedAction(contract, function, _split_args(text, rest[:close]), text)


def _closing_paren(text: str, rest: str) -> int:
    in_str = False
    i = 0
    while i < len(rest):
        ch = rest[i]
        if in_str:
            if ch == "\\":
                i += 2
                continue
            if ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch == ")":
            return i
        i += 1
    if in_str:
        raise InvalidInput(f"action {text!r}: unterminated string")
    raise InvalidInput(f"action {text!r}: missing ')'")


def _unquote(text: str, arg: str, where: str) -> str:
    if len(arg) < 2 or not (arg.startswith('"') and arg.endswith('"')):
        raise InvalidInput(f"action {text!r}: {where} {arg!r} is not a quoted string")
    out: list[str] = []
    body = arg[1:-1]
    i = 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            out.append(body[i + 1])
            i += 2
        elif body[i] == '"':
            raise InvalidInput(f"action {text!r}: {where} has an unescaped quote")
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


def _int_arg(text: str, arg: str, where: str, typ: str, amount: bool) -> int:
    m = _NUMBER.match(arg)
    if not m:
        raise InvalidInput(f"action {text!r}: {where} {arg!r} is not a number for {typ}")
    unit = m.group(2).lower()
    if amount:
        value = parse_fog(arg, what=f"action {text!r}: {where}", allow_zero=True)
    elif unit in ("s", "m", "h", "d", "w"):
        value = parse_duration(arg, what=f"action {text!r}: {where}")
    elif unit in ("fog",):
        value = parse_fog(arg, what=f"action {text!r}: {where}", allow_zero=True)
    elif unit in ("", "wei"):
        if "." in m.group(1):
            raise InvalidInput(f"action {text!r}: {where} {arg!r} must be a whole number")
        value = int(m.group(1))
    else:
        raise InvalidInput(f"action {text!r}: {where} {arg!r} has an unknown unit {unit!r}")
    unsigned = typ.startswith("uint")
    width = typ[4:] if unsigned else typ[3:]
    bits = int(width) if width else 256
    limit = 2**bits if unsigned else 2 ** (bits - 1)
    if value >= limit:
        raise InvalidInput(f"action {text!r}: {where} {arg!r} does not fit in {typ}")
    return value


def _bind_value(
    text: str,
    arg: str,
    where: str,
    typ: str,
    amount: bool,
    addresses: Mapping[str, str],
    resolve: Callable[[str], Any] | None,
) -> Any:
    if typ.startswith(("uint", "int")):
        if arg.startswith("-"):
            raise InvalidInput(f"action {text!r}: {where} {arg!r}: negative numbers not supported")
        return _int_arg(text, arg, where, typ, amount)
    if typ == "address":
        name = arg[1:] if arg.startswith("@") else arg
        if name in addresses:
            return addresses[name]
        if re.fullmatch(r"0x[0-9a-fA-F]{40}", arg):
            from eth_utils.address import is_checksum_address, to_checksum_address

            if arg != arg.lower() and arg[2:] != arg[2:].upper() and not is_checksum_address(arg):
                raise InvalidInput(f"action {text!r}: {where} {arg!r} has a bad checksum")
            return to_checksum_address(arg)
        raise InvalidInput(
            f"action {text!r}: {where} {arg!r} is not an address (0x + 40 hex, or "
            f"{', '.join('@' + c for c in CONTRACTS)})"
        )
    if typ == "bool":
        if arg in ("true", "false"):
            return arg == "true"
        raise InvalidInput(f"action {text!r}: {where} {arg!r} is not true or false")
    if typ == "string":
        return _unquote(text, arg, where)
    if typ.startswith("bytes"):
        size = int(typ[5:]) if typ[5:] else None
        if _HEX.match(arg):
            raw = arg[2:]
            if len(raw) % 2:
                raise InvalidInput(f"action {text!r}: {where} {arg!r} has an odd number of digits")
            value = bytes.fromhex(raw)
        elif _IDENT.match(arg) and resolve is not None:
            value = resolve(arg)
            if not isinstance(value, bytes):
                raise InvalidInput(f"action {text!r}: {where} {arg!r} is not a {typ} constant")
        else:
            raise InvalidInput(f"action {text!r}: {where} {arg!r} is not 0x-hex or a constant")
        if size is not None and len(value) != size:
            raise InvalidInput(f"action {text!r}: {where} {arg!r} is not {size} bytes")
        return value
    raise InvalidInput(f"action {text!r}: {where} has type {typ}, which actions do not support")


def bind_action(
    parsed: ParsedAction,
    abi: Sequence[Mapping[str, Any]],
    addresses: Mapping[str, str],
    resolve: Callable[[str], Any] | None = None,
) -> BoundAction:
    """Check ``parsed`` against ``abi`` (of ``parsed.contract``) and convert its arguments.

    ``addresses`` maps contract aliases to addresses; ``resolve(name)`` returns the value
    of a named constant of the target contract (e.g. a role id), or raises InvalidInput.
    """
    text = parsed.text
    candidates = [
        f
        for f in abi
        if f.get("type") == "function"
        and f.get("name") == parsed.function
        and f.get("stateMutability") not in ("view", "pure")
    ]
    if not candidates:
        raise InvalidInput(
            f"action {text!r}: {parsed.contract} has no function {parsed.function!r} "
            "that changes state"
        )
    fitting = [f for f in candidates if len(f.get("inputs", ())) == len(parsed.args)]
    if not fitting:
        counts = sorted({len(f.get("inputs", ())) for f in candidates})
        want = " or ".join(str(c) for c in counts)
        raise InvalidInput(
            f"action {text!r}: {parsed.contract}.{parsed.function} takes {want} "
            f"argument(s), got {len(parsed.args)}"
        )
    if len(fitting) > 1:
        raise InvalidInput(
            f"action {text!r}: {parsed.contract}.{parsed.function} is overloaded; "
            "this form is ambiguous"
        )
    fn = fitting[0]
    inputs = fn.get("inputs", ())
    types = tuple(str(i["type"]) for i in inputs)
    amounts = AMOUNT_PARAMS.get((parsed.contract, parsed.function), ())
    values = []
    for n, (arg, inp) in enumerate(zip(parsed.args, inputs, strict=True)):
        where = f"argument {n + 1} ({inp.get('name') or inp['type']})"
        values.append(
            _bind_value(text, arg, where, str(inp["type"]), n in amounts, addresses, resolve)
        )
    return BoundAction(
        contract=parsed.contract,
        target=addresses[parsed.contract],
        function=parsed.function,
        signature=f"{parsed.function}({','.join(types)})",
        types=types,
        values=tuple(values),
        text=text,
    )
