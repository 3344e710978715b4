"""Records emitted by ``fogctl stake`` and ``fogctl vote`` (documented in fogctl-records(5)).

Token amounts are strings of whole FOG with up to 18 decimals (``"1500"``, ``"0.25"``) so
that JSON readers never round them; ``*_wei`` fields carry the exact integer as a string.
Times are Unix seconds of the chain's clock (block timestamps), not of this machine.
"""

from __future__ import annotations

from typing import Any

from fogctl.records import Record, record

__all__ = [
    "AccountRecord",
    "ChainRecord",
    "DeploymentRecord",
    "ProposalRecord",
    "StakeStatusRecord",
    "TxRecord",
    "VestingRecord",
]


@record("chain-tx")
class TxRecord(Record):
    """One transaction fogctl sent: ``status`` is ``success`` or ``reverted``.

    ``action`` names what it did (``stake.deposit``, ``vote.cast``...); ``reason`` is the
    decoded revert reason of a reverted transaction; ``details`` holds what the
    transaction's events said (amounts in wei, proposal id, unlock time...), with
    256-bit integers as decimal strings.
    """

    action: str
    hash: str
    status: str
    gas_used: int
    block: int
    sender: str
    to: str | None = None
    reason: str | None = None
    details: dict[str, Any] | None = None


@record("chain-account")
class AccountRecord(Record):
    """The account that signs: its address and where the key comes from (never the key)."""

    address: str
    source: str


@record("chain")
class ChainRecord(Record):
    """The chain fogctl talks to: the local anvil (``local`` true) or any JSON-RPC URL."""

    rpc_url: str
    chain_id: int | None = None
    local: bool = False
    running: bool = False
    pid: int | None = None
    block: int | None = None
    timestamp: int | None = None
    state_file: str | None = None
    client: str | None = None
    advanced: int | None = None


@record("deployment")
class DeploymentRecord(Record):
    """Addresses of the deployed stack on one chain, as recorded in the state directory.

    ``counting`` is ``simple`` (one token, one vote) or ``quadratic`` (a vote counts with
    the square root of its weight).
    """

    chain_id: int
    token: str
    staking: str
    governor: str
    timelock: str
    deployer: str
    block: int
    unbonding_period: int
    min_stake: str
    voting_delay: int
    voting_period: int
    timelock_delay: int
    proposal_threshold: str
    counting: str = "simple"
    created: bool = True


@record("stake-status")
class StakeStatusRecord(Record):
    """A provider's bond: what the scheduler's trust objective and the provider list read.

    ``bonded`` means the stake reaches the minimum (eligible for work); ``unbonding`` is
    stake waiting to be withdrawn at ``unlock_at`` (still slashable); ``rewards`` are
    accrued and unclaimed. ``balance`` is the provider's FOG outside staking and
    ``votes`` its delegated voting weight. ``node`` is the fog node id when the status
    was asked for a node record (its ``stake_address``).
    """

    provider: str | None
    bonded: bool
    stake: str
    unbonding: str
    unlock_at: int | None
    withdrawable: bool
    slash_count: int
    slashed: str
    rewards: str
    min_stake: str
    balance: str | None = None
    votes: str | None = None
    delegate: str | None = None
    stake_wei: str | None = None
    node: str | None = None


@record("proposal")
class ProposalRecord(Record):
    """A governance proposal: id, state, tally and what it will execute.

    ``number`` is its place in creation order (1 = first), usable as ``#N`` for an id;
    ``state`` is OpenZeppelin's ProposalState in lower case (pending, active, canceled,
    defeated, succeeded, queued, expired, executed); ``vote_start``/``vote_end`` and
    ``eta`` are chain timestamps; votes are FOG strings, or square roots of FOG when
    ``counting`` is ``quadratic`` (the quorum stays in FOG).
    """

    id: str
    state: str
    number: int | None = None
    title: str | None = None
    proposer: str | None = None
    vote_start: int | None = None
    vote_end: int | None = None
    eta: int | None = None
    votes_for: str | None = None
    votes_against: str | None = None
    votes_abstain: str | None = None
    quorum: str | None = None
    counting: str | None = None
    actions: tuple[str, ...] = ()
    description: str | None = None


@record("vesting")
class VestingRecord(Record):
    """A FogVesting wallet: FOG vesting linearly from ``start`` to ``end``, none before
    ``cliff``; ``releasable`` is vested and not yet released to the beneficiary."""

    address: str
    beneficiary: str
    start: int
    cliff: int
    end: int
    total: str
    vested: str
    released: str
    releasable: str
