"""The one place that maps every backend's revert exception to a decoded reason."""

from __future__ import annotations

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from fogctl.chain.reverts import RevertError, decode_revert, revert_data, translate
from fogctl.errors import OperationFailed, ServiceUnavailable

STILL = keccak(text="StillUnbonding(uint256)")[:4] + encode(["uint256"], [1_800_000_000])
ERROR_STRING = bytes.fromhex("08c379a0") + encode(["string"], ["not allowed"])
PANIC = bytes.fromhex("4e487b71") + encode(["uint256"], [0x11])


def test_decode_each_kind() -> None:
    assert decode_revert(STILL) == (
        "the unbonding period has not ended: StillUnbonding(unlockAt=1800000000)"
    )
    assert decode_revert(ERROR_STRING) == "not allowed"
    assert decode_revert(PANIC) == "panic 0x11 (arithmetic overflow or underflow)"
    assert decode_revert(b"") == "reverted without a reason"
    assert decode_revert(b"\xde\xad\xbe\xef").startswith("unknown custom error 0xdeadbeef")
    assert decode_revert(ERROR_STRING[:10]).startswith("undecodable revert data")
    state = keccak(text="GovernorUnexpectedProposalState(uint256,uint8,bytes32)")[:4] + encode(
        ["uint256", "uint8", "bytes32"], [7, 1, (1 << 5).to_bytes(32, "big")]
    )
    assert "current=active, expectedStates=queued" in decode_revert(state)


def _web3_errors() -> list[BaseException]:
    from web3.exceptions import ContractCustomError, ContractLogicError, Web3RPCError

    hexdata = "0x" + STILL.hex()
    return [
        ContractCustomError(hexdata, data=hexdata),  # web3 7/8 eth_call / estimate_gas
        ContractLogicError("execution reverted", data={"data": hexdata}),  # dict data
        ContractLogicError("execution reverted", data="Reverted " + hexdata),  # "Reverted"
        Web3RPCError(  # a node answering eth_sendRawTransaction with the revert
            "execution reverted",
            rpc_response={
                "jsonrpc": "2.0",
                "id": 1,
                "error": {"code": 3, "message": "execution reverted", "data": hexdata},
            },
        ),
        ValueError({"code": -32000, "message": "execution reverted", "data": hexdata}),  # web3 5
    ]


class TransactionFailed(Exception):
    """Shaped like eth_tester.exceptions.TransactionFailed (raw revert bytes)."""


@pytest.mark.parametrize("exc", [*_web3_errors(), TransactionFailed(STILL)])
def test_every_backend_shape_decodes_the_same(exc: BaseException) -> None:
    assert revert_data(exc) == STILL
    err = translate(exc, action="stake.withdraw")
    assert isinstance(err, RevertError)
    assert err.exit_code == 1
    assert str(err) == (
        "stake.withdraw: reverted: the unbonding period has not ended: "
        "StillUnbonding(unlockAt=1800000000)"
    )


def test_reason_only_messages() -> None:
    from web3.exceptions import ContractLogicError

    err = translate(ContractLogicError("execution reverted: not allowed", data=None))
    assert isinstance(err, RevertError) and err.reason == "not allowed"
    err = translate(ContractLogicError("execution reverted", data=None))
    assert isinstance(err, RevertError) and err.reason == "reverted without a reason"


def test_connection_failures_are_unavailable() -> None:
    import requests
    from web3.exceptions import ProviderConnectionError

    for exc in (
        requests.exceptions.ConnectionError(
            "Max retries exceeded ([Errno 111] Connection refused)"
        ),
        ProviderConnectionError("down"),
        ConnectionRefusedError(111, "Connection refused"),
    ):
        err = translate(exc, rpc_url="http://127.0.0.1:1")
        assert isinstance(err, ServiceUnavailable) and err.exit_code == 3
        assert "http://127.0.0.1:1" in str(err)


def test_node_refusals_are_failures() -> None:
    from web3.exceptions import Web3RPCError

    err = translate(Web3RPCError("insufficient funds for gas * price + value"), action="x")
    assert isinstance(err, OperationFailed) and "insufficient ETH" in str(err)
    err = translate(Web3RPCError("nonce too low"), action="x")
    assert isinstance(err, OperationFailed) and "nonce too low" in str(err)


def test_unknown_exceptions_are_not_swallowed() -> None:
    with pytest.raises(KeyError):
        translate(KeyError("bug"))


@settings(deadline=None, max_examples=200)
@given(st.binary(max_size=300))
def test_fuzz_any_revert_bytes_decode_to_text(data: bytes) -> None:
    assert isinstance(decode_revert(data), str)


@settings(deadline=None, max_examples=200)
@given(st.binary(max_size=200))
def test_fuzz_known_selectors_with_garbage_bodies(body: bytes) -> None:
    for selector in (STILL[:4], ERROR_STRING[:4], PANIC[:4]):
        assert isinstance(decode_revert(selector + body), str)
