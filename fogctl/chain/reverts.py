"""The one place where chain failures become fogctl errors with a decoded reason.

A revert reaches Python differently on every backend and web3 version: web3's
``ContractLogicError``/``ContractCustomError``/``ContractPanicError`` (``.data`` a hex
string, a ``"Reverted 0x.."`` string or a dict), a ``Web3RPCError`` whose JSON-RPC error
carries ``data``, eth-tester's ``TransactionFailed`` (raw bytes or a message), or a
mined receipt with status 0 (replayed with ``eth_call`` to get the data). All of them
go through :func:`revert_data` and :func:`decode_revert`, and :func:`translate` maps
every exception to a :class:`~fogctl.errors.FogError`:

* a revert -> :class:`OperationFailed` with the decoded reason (exit 1)
* an unreachable endpoint -> :class:`ServiceUnavailable` (exit 3)
* anything else the node refused (nonce, funds for gas...) -> :class:`OperationFailed`
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fogctl.errors import FogError, OperationFailed, ServiceUnavailable

__all__ = [
    "RevertError",
    "chain_errors",
    "decode_revert",
    "revert_data",
    "translate",
]

ERROR_STRING = bytes.fromhex("08c379a0")
PANIC = bytes.fromhex("4e487b71")
PANIC_CODES = {
    0x00: "generic compiler panic",
    0x01: "assertion failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division by zero",
    0x21: "invalid enum value",
    0x22: "corrupt storage byte array",
    0x31: "pop from an empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to an uninitialised function",
}
# What a user should read for the custom errors they will meet most.
EXPLAIN = {
    "BelowMinStake": "the stake would be below the minimum stake",
    "InsufficientStake": "more than the bonded stake",
    "StillUnbonding": "the unbonding period has not ended",
    "NothingToWithdraw": "nothing is unbonding",
    "NothingToClaim": "no rewards have accrued",
    "NothingToSlash": "the provider has no stake",
    "AccessControlUnauthorizedAccount": "this account lacks the role",
    "OwnableUnauthorizedAccount": "only the owner (governance) may do this",
    "ERC20InsufficientBalance": "insufficient FOG balance",
    "ERC20InsufficientAllowance": "insufficient FOG allowance",
    "GovernorInsufficientProposerVotes": "not enough delegated votes to propose (delegate first)",
    "GovernorUnexpectedProposalState": "the proposal is not in a state that allows this",
    "GovernorAlreadyCastVote": "this account has already voted",
    "GovernorNonexistentProposal": "no such proposal",
    "TimelockUnexpectedOperationState": "the timelock operation is not ready",
    "ERC20ExceededCap": "the token's supply cap would be exceeded",
}

GOVERNOR_STATES = (
    "pending",
    "active",
    "canceled",
    "defeated",
    "succeeded",
    "queued",
    "expired",
    "executed",
)
TIMELOCK_STATES = ("unset", "waiting", "ready", "done")

_HEX_RUN = re.compile(r"0x[0-9a-fA-F]{8,}")


class RevertError(OperationFailed):
    """A contract reverted; ``reason`` is decoded, ``data`` the raw revert bytes."""

    code = "reverted"

    def __init__(self, reason: str, data: bytes | None = None, *, action: str = "") -> None:
        prefix = f"{action}: " if action else ""
        super().__init__(f"{prefix}reverted: {reason}")
        self.reason = reason
        self.data = data


def _hex_to_bytes(text: str) -> bytes | None:
    text = text.strip()
    if text.startswith("Reverted "):
        text = text.split(" ", 1)[1]
    m = _HEX_RUN.search(text) if not text.startswith("0x") else None
    if m:
        text = m.group(0)
    if not text.startswith("0x"):
        return None
    try:
        return bytes.fromhex(text[2:])
    except ValueError:
        return None


def revert_data(exc: BaseException) -> bytes | None:
    """The raw revert bytes carried by ``exc`` from any backend, or None if it has none."""
    candidates: list[Any] = []
    data = getattr(exc, "data", None)
    if data is not None:
        candidates.append(data)
    rpc = getattr(exc, "rpc_response", None)
    if isinstance(rpc, dict) and isinstance(rpc.get("error"), dict):
        candidates.append(rpc["error"].get("data"))
    candidates.extend(exc.args)
    for cand in candidates:
        if isinstance(cand, bytes | bytearray):
            return bytes(cand)
        if isinstance(cand, dict):
            inner = cand.get("data", cand.get("result"))
            if isinstance(inner, str):
                got = _hex_to_bytes(inner)
                if got is not None:
                    return got
            if isinstance(inner, dict):
                for v in inner.values():
                    if isinstance(v, dict) and isinstance(v.get("return"), str):
                        return _hex_to_bytes(v["return"])
        if isinstance(cand, str):
            got = _hex_to_bytes(cand)
            if got is not None:
                return got
    return None


def _revert_message(exc: BaseException) -> str:
    for attr in ("message",):
        value = getattr(exc, attr, None)
        if isinstance(value, str) and value:
            return value
    return str(exc.args[0]) if exc.args else exc.__class__.__name__


def _format_value(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    return str(value)


def _state_name(names: tuple[str, ...], value: int) -> str:
    return names[value] if 0 <= value < len(names) else str(value)


def _bitmap(names: tuple[str, ...], value: bytes) -> str:
    bits = int.from_bytes(value, "big")
    return "|".join(n for i, n in enumerate(names) if bits >> i & 1) or "none"


def decode_revert(data: bytes | None) -> str:
    """``Error(string)``, ``Panic(uint256)`` or any of our contracts' custom errors, decoded."""
    if not data:
        return "reverted without a reason"
    selector, body = data[:4], data[4:]
    from eth_abi.abi import decode as abi_decode
    from eth_abi.exceptions import DecodingError

    try:
        if selector == ERROR_STRING:
            (text,) = abi_decode(["string"], body)
            return str(text)
        if selector == PANIC:
            (code,) = abi_decode(["uint256"], body)
            return f"panic 0x{code:02x} ({PANIC_CODES.get(code, 'unknown panic code')})"
    except (DecodingError, ValueError, OverflowError):
        return f"undecodable revert data 0x{data.hex()}"
    from eth_utils.crypto import keccak

    from fogctl.chain.artifacts import all_error_abis

    for entry in all_error_abis():
        types = [i["type"] for i in entry["inputs"]]
        sig = entry["name"] + "(" + ",".join(types) + ")"
        if keccak(text=sig)[:4] != selector:
            continue
        try:
            values = abi_decode(types, body)
        except (DecodingError, ValueError, OverflowError):
            break
        shown = [_format_value(v) for v in values]
        if entry["name"] == "GovernorUnexpectedProposalState":
            shown[1] = _state_name(GOVERNOR_STATES, values[1])
            shown[2] = _bitmap(GOVERNOR_STATES, values[2])
        elif entry["name"] == "TimelockUnexpectedOperationState":
            shown[1] = _bitmap(TIMELOCK_STATES, values[1])
        args = ", ".join(
            f"{i['name'] or i['type']}={v}" for i, v in zip(entry["inputs"], shown, strict=True)
        )
        text = f"{entry['name']}({args})"
        hint = EXPLAIN.get(entry["name"])
        return f"{hint}: {text}" if hint else text
    return f"unknown custom error 0x{selector.hex()} (data 0x{data.hex()})"


def _is_connection_error(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & {
        "ConnectionError",
        "ProviderConnectionError",
        "ConnectTimeout",
        "ReadTimeout",
        "Timeout",
        "RequestTimedOut",
        "URLError",
        "ClientConnectorError",
        "ConnectionRefusedError",
        "ServerDisconnectedError",
        "TimeExhausted",
    }:
        return True
    return isinstance(exc, OSError)


def translate(exc: BaseException, *, rpc_url: str = "", action: str = "") -> FogError:
    """Map any exception from web3/eth-tester/requests to a FogError (see module doc)."""
    if isinstance(exc, FogError):
        return exc
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "TimeExhausted" in names:
        return OperationFailed(f"{action or 'transaction'}: not mined in time: {exc}")
    if names & {"ContractLogicError", "TransactionFailed"} or (
        "Web3RPCError" in names and "revert" in _revert_message(exc).lower()
    ):
        data = revert_data(exc)
        if data is None:
            msg = _revert_message(exc)
            reason = msg.split("execution reverted:", 1)[-1].strip() or "reverted"
            if reason.lower() in ("execution reverted", "reverted", "none"):
                reason = "reverted without a reason"
            return RevertError(reason, None, action=action)
        return RevertError(decode_revert(data), data, action=action)
    if _is_connection_error(exc):
        where = f"chain RPC {rpc_url}" if rpc_url else "chain RPC"
        return ServiceUnavailable(
            f"{where} is unreachable: {_short(exc)}", hint="start one with 'fogctl stake chain up'"
        )
    if "Web3RPCError" in names or "Web3Exception" in names:
        message = _revert_message(exc)
        low = message.lower()
        if "insufficient funds" in low:
            return OperationFailed(
                f"{action or 'transaction'}: insufficient ETH to pay for gas ({message})"
            )
        prefix = f"{action}: " if action else ""
        return OperationFailed(f"{prefix}the node refused: {message}")
    if isinstance(exc, ValueError) and exc.args and isinstance(exc.args[0], dict):
        # web3 < 6 style: ValueError({'code': ..., 'message': ..., 'data': ...})
        data = revert_data(exc)
        if data is not None:
            return RevertError(decode_revert(data), data, action=action)
        return OperationFailed(f"the node refused: {exc.args[0].get('message', exc.args[0])}")
    raise exc


def _short(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    m = re.search(r"\[Errno \d+\] ([^'\")\]]+)", text)
    if m:
        return m.group(1)
    if "Max retries" in text or "Connection refused" in text:
        return "connection refused"
    return text.splitlines()[0][:200]


@contextmanager
def chain_errors(rpc_url: str = "", action: str = "") -> Iterator[None]:
    """Run a block of chain calls; every failure leaves as a FogError (see :func:`translate`)."""
    try:
        yield
    except FogError:
        raise
    except Exception as exc:
        raise translate(exc, rpc_url=rpc_url, action=action) from None
