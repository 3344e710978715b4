"""web3.py client for the fogctl contracts: chain checks, calls and recorded transactions.

Every chain access goes through :func:`fogctl.chain.reverts.chain_errors`, so failures
arrive as fogctl errors with decoded revert reasons. A transaction is simulated (gas
estimation) before it is signed: a call that would revert is refused with its reason
and nothing is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

from fogctl.chain.accounts import Account
from fogctl.chain.artifacts import load_artifact
from fogctl.chain.records import TxRecord
from fogctl.chain.reverts import RevertError, chain_errors, decode_revert, revert_data
from fogctl.chain.units import format_fog
from fogctl.errors import InvalidInput, OperationFailed

__all__ = ["ChainClient"]

RECEIPT_TIMEOUT = 120.0


class ChainClient:
    """One JSON-RPC endpoint, optionally pinned to an expected chain id."""

    def __init__(
        self,
        rpc_url: str,
        *,
        expected_chain_id: int | None = None,
        timeout: float = 10.0,
        on_transaction: Callable[[], None] | None = None,
    ) -> None:
        self.rpc_url = rpc_url
        self.expected_chain_id = expected_chain_id
        self.timeout = timeout
        self.on_transaction = on_transaction

    @cached_property
    def w3(self) -> Any:
        from web3 import Web3

        if not self.rpc_url.startswith(("http://", "https://")):
            raise InvalidInput(f"--rpc-url {self.rpc_url!r}: expected an http:// or https:// URL")
        return Web3(Web3.HTTPProvider(self.rpc_url, request_kwargs={"timeout": self.timeout}))

    @cached_property
    def chain_id(self) -> int:
        with chain_errors(self.rpc_url):
            actual = int(self.w3.eth.chain_id)
        if self.expected_chain_id is not None and actual != self.expected_chain_id:
            raise InvalidInput(
                f"wrong network: {self.rpc_url} is chain id {actual}, "
                f"but chain.chain_id is {self.expected_chain_id}"
            )
        return actual

    def contract(self, name: str, address: str) -> Any:
        art = load_artifact(name)
        return self.w3.eth.contract(address=address, abi=art["abi"])

    def head(self) -> Any:
        with chain_errors(self.rpc_url):
            return self.w3.eth.get_block("latest")

    def call(self, fn: Any, *, action: str = "") -> Any:
        with chain_errors(self.rpc_url, action):
            return fn.call()

    def code_at(self, address: str) -> bytes:
        with chain_errors(self.rpc_url):
            return bytes(self.w3.eth.get_code(address))

    def eth_balance(self, address: str) -> int:
        with chain_errors(self.rpc_url):
            return int(self.w3.eth.get_balance(address))

    # -- transactions --------------------------------------------------------------------

    def _base_tx(self, account: Account) -> dict[str, Any]:
        return {
            "from": account.address,
            "chainId": self.chain_id,
            "nonce": self.w3.eth.get_transaction_count(account.address, "pending"),
        }

    def _send(self, tx: dict[str, Any], account: Account, action: str) -> tuple[TxRecord, Any]:
        with chain_errors(self.rpc_url, action):
            if "gas" not in tx:
                tx["gas"] = int(self.w3.eth.estimate_gas(tx) * 12 // 10) + 10_000
            if "maxFeePerGas" not in tx and "gasPrice" not in tx:
                block = self.w3.eth.get_block("latest")
                if block.get("baseFeePerGas") is None:  # a pre-London chain
                    tx["gasPrice"] = int(self.w3.eth.gas_price)
                else:
                    base = int(block["baseFeePerGas"])
                    tip = int(self.w3.eth.max_priority_fee)
                    tx["maxPriorityFeePerGas"] = tip
                    tx["maxFeePerGas"] = 2 * base + tip
            fee = tx.get("maxFeePerGas", tx.get("gasPrice", 0))
            need = int(tx["gas"]) * int(fee) + int(tx.get("value", 0))
            have = int(self.w3.eth.get_balance(account.address))
            if have < need:
                raise OperationFailed(
                    f"{action}: insufficient ETH for gas on {account.address}: have "
                    f"{format_fog(have)} ETH, need up to {format_fog(need)} ETH; nothing sent"
                )
            tx.pop("from", None)
            raw = account.sign_transaction(tx)
            tx_hash = self.w3.eth.send_raw_transaction(raw)
            receipt = self.w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=RECEIPT_TIMEOUT, poll_latency=0.05
            )
        if self.on_transaction is not None:
            self.on_transaction()
        ok = int(receipt["status"]) == 1
        reason = None
        if not ok:
            reason = self._replay_reason(tx, account, int(receipt["blockNumber"]))
        rec = TxRecord(
            action=action,
            hash="0x" + bytes(receipt["transactionHash"]).hex(),
            status="success" if ok else "reverted",
            gas_used=int(receipt["gasUsed"]),
            block=int(receipt["blockNumber"]),
            sender=account.address,
            to=receipt.get("to") or receipt.get("contractAddress"),
            reason=reason,
        )
        return rec, receipt

    def _replay_reason(self, tx: dict[str, Any], account: Account, block: int) -> str:
        call = {k: v for k, v in tx.items() if k in ("to", "data", "value", "gas")}
        call["from"] = account.address
        try:
            self.w3.eth.call(call, block - 1)
        except Exception as exc:
            data = revert_data(exc)
            return decode_revert(data) if data is not None else str(exc)
        return "reverted (the replay did not revert: out of gas?)"

    def transact(
        self, fn: Any, account: Account, *, action: str, value: int = 0
    ) -> tuple[TxRecord, Any]:
        """Simulate, sign, send and wait for a contract call; returns (record, receipt)."""
        with chain_errors(self.rpc_url, action):
            tx = fn.build_transaction({**self._base_tx(account), "value": value, "gas": 0})
            tx.pop("gas")
        return self._send(tx, account, action)

    def deploy(self, name: str, args: list[Any], account: Account) -> tuple[TxRecord, str]:
        art = load_artifact(name)
        action = f"deploy.{name}"
        with chain_errors(self.rpc_url, action):
            factory = self.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
            tx = factory.constructor(*args).build_transaction({**self._base_tx(account), "gas": 0})
            tx.pop("gas")
        rec, receipt = self._send(tx, account, action)
        if rec.status != "success":
            raise RevertError(rec.reason or "reverted", action=action)
        return rec, str(receipt["contractAddress"])

    def send_eth(self, account: Account, to: str, value: int, *, action: str) -> TxRecord:
        with chain_errors(self.rpc_url, action):
            tx = {**self._base_tx(account), "to": to, "value": value, "gas": 21_000}
        rec, _ = self._send(tx, account, action)
        return rec
