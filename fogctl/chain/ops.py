"""What ``fogctl stake`` and ``fogctl vote`` do, as library functions.

Open a :class:`Session` (endpoint, account, deployment) with :func:`open_session`, then
call one function per command. Transactions return :class:`TxRecord` objects; queries
return status and proposal records. Nothing is sent when a pre-check fails (balance,
input, a simulated revert).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from fogctl.chain.accounts import Account, load_account
from fogctl.chain.actions import CONTRACTS, BoundAction, bind_action, parse_action
from fogctl.chain.client import ChainClient
from fogctl.chain.deploy import GOVERNORS, DeployParams, deploy_stack, load_deployment
from fogctl.chain.local import LocalChain
from fogctl.chain.records import (
    DeploymentRecord,
    ProposalRecord,
    StakeStatusRecord,
    TxRecord,
    VestingRecord,
)
from fogctl.chain.reverts import RevertError, chain_errors
from fogctl.chain.rpc import rpc_call
from fogctl.chain.units import WEI, format_fog, parse_account
from fogctl.errors import InvalidInput, OperationFailed, StateError
from fogctl.state import State

__all__ = [
    "PROPOSAL_STATES",
    "Session",
    "cast_vote",
    "claim_rewards",
    "delegate",
    "deploy",
    "deposit",
    "execute_proposal",
    "fund_rewards",
    "list_proposals",
    "open_session",
    "propose",
    "queue_proposal",
    "show_proposal",
    "slash",
    "stake_status",
    "stake_status_of_nodes",
    "unstake",
    "withdraw",
]

DEFAULT_RPC_URL = "http://127.0.0.1:8545"
PROPOSAL_STATES = (
    "pending",
    "active",
    "canceled",
    "defeated",
    "succeeded",
    "queued",
    "expired",
    "executed",
)
SUPPORT = {"against": 0, "for": 1, "abstain": 2}
ARTIFACT_OF = {
    "token": "FogToken",
    "staking": "FogStaking",
    "governor": "FogGovernor",
    "timelock": "FogTimelock",
}


@dataclass
class Session:
    """An endpoint, the deployment recorded for its chain, and (lazily) the account."""

    state: State
    client: ChainClient
    local: LocalChain
    keystore: str | None = None
    _account: Account | None = field(default=None, repr=False)

    @property
    def chain_dir(self) -> Path:
        return self.local.dir

    @cached_property
    def is_local(self) -> bool:
        return self.local.is_local(self.client.rpc_url)

    def account(self) -> Account:
        if self._account is None:
            self._account = load_account(self.state.keys_dir, keystore=self.keystore)
            # The local dev chain pays for gas: top the account up with test ETH.
            if self.is_local and self.client.eth_balance(self._account.address) < WEI:
                rpc_call(
                    self.client.rpc_url,
                    "anvil_setBalance",
                    [self._account.address, hex(1000 * WEI)],
                )
        return self._account

    @cached_property
    def deployment(self) -> DeploymentRecord:
        dep = load_deployment(self.chain_dir, self.client.chain_id)
        if dep is None or not self.client.code_at(dep.governor):
            raise StateError(
                f"no fogctl contracts on chain {self.client.chain_id} at {self.client.rpc_url}",
                hint="run 'fogctl stake deploy'",
            )
        return dep

    def addresses(self) -> dict[str, str]:
        d = self.deployment
        return {
            "token": d.token,
            "staking": d.staking,
            "governor": d.governor,
            "timelock": d.timelock,
        }

    def contract(self, alias: str) -> Any:
        name = ARTIFACT_OF[alias]
        if alias == "governor":
            name = GOVERNORS.get(self.deployment.counting, name)
        return self.client.contract(name, self.addresses()[alias])

    @cached_property
    def token(self) -> Any:
        return self.contract("token")

    @cached_property
    def staking(self) -> Any:
        return self.contract("staking")

    @cached_property
    def governor(self) -> Any:
        return self.contract("governor")

    def call(self, fn: Any) -> Any:
        return self.client.call(fn)

    def transact(self, fn: Any, action: str, events: tuple[tuple[Any, str], ...] = ()) -> TxRecord:
        rec, receipt = self.client.transact(fn, self.account(), action=action)
        details: dict[str, Any] = {}
        from web3.logs import DISCARD

        for contract, name in events:
            event = getattr(contract.events, name)()
            types = {i["name"]: i["type"] for i in event.abi["inputs"]}
            for ev in event.process_receipt(receipt, errors=DISCARD):
                details.update({k: _jsonable(v, types.get(k, "")) for k, v in ev["args"].items()})
        rec = replace(rec, details=details or None)
        if rec.status != "success":
            raise _Reverted(rec)
        return rec


class _Reverted(RevertError):
    """A mined transaction reverted: the record is still worth printing."""

    def __init__(self, rec: TxRecord) -> None:
        super().__init__(rec.reason or "reverted", action=rec.action)
        self.record = rec


def _jsonable(value: Any, abi_type: str = "") -> Any:
    """Event values for JSON: 256-bit integers as decimal strings (exact, and the same
    type whatever the value), smaller integers as numbers, bytes as 0x-hex."""
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, int) and not isinstance(value, bool):
        wide = abi_type in ("uint256", "int256", "uint", "int") or abs(value) >= 2**53
        return str(value) if wide else value
    if isinstance(value, list | tuple):
        return [_jsonable(v, abi_type.removesuffix("[]")) for v in value]
    return value


def open_session(
    state: State, *, rpc_url: str | None = None, keystore: str | None = None
) -> Session:
    """Resolve the endpoint: --rpc-url > FOGCTL_CHAIN_RPC_URL > config > the local chain."""
    cfg = state.config
    local = LocalChain(state.subdir("chain"), anvil=cfg.get("chain.anvil"))
    url = cfg.get("chain.rpc_url", None, flag=rpc_url)
    if not url:
        node = local.node()
        url = node.rpc_url if node else DEFAULT_RPC_URL
    expected = cfg.get("chain.chain_id", None)
    try:
        expected_id = int(expected) if expected not in (None, "") else None
    except (TypeError, ValueError):
        raise InvalidInput(f"chain.chain_id {expected!r}: not an integer") from None
    ks = keystore or cfg.get("chain.keystore", None)
    session = Session(
        state, ChainClient(str(url), expected_chain_id=expected_id), local, str(ks) if ks else None
    )

    def checkpoint() -> None:
        if session.is_local:
            session.local.checkpoint(session.client.rpc_url)

    session.client.on_transaction = checkpoint
    session.client.chain_id  # noqa: B018 - fail early on a wrong network or dead endpoint
    return session


def _address(session: Session, text: str | None, what: str) -> str:
    who = parse_account(text, what=what)
    return who if who is not None else session.account().address


def load_evidence(evidence: Path) -> bytes:
    """The bytes of a slashing evidence file; a missing, unreadable or empty one is refused."""
    try:
        data = evidence.read_bytes()
    except FileNotFoundError:
        raise InvalidInput(f"--evidence {evidence}: no such file") from None
    except IsADirectoryError:
        raise InvalidInput(f"--evidence {evidence}: is a directory") from None
    except OSError as exc:
        raise InvalidInput(f"--evidence {evidence}: {exc.strerror}") from None
    if not data:
        raise InvalidInput(f"--evidence {evidence}: empty file")
    return data


# -- deployment ----------------------------------------------------------------------------


def deploy(session: Session, params: DeployParams, emit: Any = None) -> DeploymentRecord:
    """Deploy the token, staking, timelock and governor once; record their addresses."""
    account = session.account()
    with chain_errors(session.client.rpc_url, "deploy"):
        return deploy_stack(session.client, account, session.chain_dir, params, emit=emit)


# -- staking ---------------------------------------------------------------------------------


def _require_fog(session: Session, amount: int, action: str) -> None:
    me = session.account().address
    have = int(session.call(session.token.functions.balanceOf(me)))
    if have < amount:
        raise OperationFailed(
            f"{action}: insufficient balance: {me} has {format_fog(have)} FOG, "
            f"needs {format_fog(amount)} FOG; nothing sent"
        )


def deposit(session: Session, amount: int) -> TxRecord:
    """Bond ``amount`` wei of FOG. Uses an ERC-2612 permit when the allowance is short."""
    action = "stake.deposit"
    _require_fog(session, amount, action)
    acct = session.account()
    st = session.staking
    allowance = int(session.call(session.token.functions.allowance(acct.address, st.address)))
    events = ((st, "Staked"),)
    if allowance >= amount:
        return session.transact(st.functions.stake(amount), action, events)
    deadline = int(session.client.head()["timestamp"]) + 3600
    nonce = int(session.call(session.token.functions.nonces(acct.address)))
    signed = acct.sign_typed_data(
        {
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                "Permit": [
                    {"name": "owner", "type": "address"},
                    {"name": "spender", "type": "address"},
                    {"name": "value", "type": "uint256"},
                    {"name": "nonce", "type": "uint256"},
                    {"name": "deadline", "type": "uint256"},
                ],
            },
            "primaryType": "Permit",
            "domain": {
                "name": "Fog Token",
                "version": "1",
                "chainId": session.client.chain_id,
                "verifyingContract": session.token.address,
            },
            "message": {
                "owner": acct.address,
                "spender": st.address,
                "value": amount,
                "nonce": nonce,
                "deadline": deadline,
            },
        }
    )
    fn = st.functions.stakeWithPermit(
        amount, deadline, signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")
    )
    return session.transact(fn, action, events)


def unstake(session: Session, amount: int) -> TxRecord:
    """Move ``amount`` wei from bonded stake into unbonding."""
    st = session.staking
    return session.transact(st.functions.unstake(amount), "stake.unstake", ((st, "Unstaked"),))


def withdraw(session: Session) -> TxRecord:
    """Withdraw the whole unbonding balance once the unbonding period has ended."""
    st = session.staking
    return session.transact(st.functions.withdraw(), "stake.withdraw", ((st, "Withdrawn"),))


def claim_rewards(session: Session) -> TxRecord:
    st = session.staking
    return session.transact(
        st.functions.claimRewards(), "stake.rewards.claim", ((st, "RewardPaid"),)
    )


def fund_rewards(session: Session, amount: int, duration: int) -> list[TxRecord]:
    """Stream ``amount`` wei of rewards to bonded stake over ``duration`` seconds."""
    action = "stake.rewards.fund"
    _require_fog(session, amount, action)
    st = session.staking
    out: list[TxRecord] = []
    acct = session.account()
    allowance = int(session.call(session.token.functions.allowance(acct.address, st.address)))
    if allowance < amount:
        out.append(
            session.transact(
                session.token.functions.approve(st.address, amount),
                "token.approve",
                ((session.token, "Approval"),),
            )
        )
    out.append(
        session.transact(
            st.functions.fundRewards(amount, duration), action, ((st, "RewardsFunded"),)
        )
    )
    return out


def slash(session: Session, provider: str, fraction_ppm: int, evidence: Path | bytes) -> TxRecord:
    """Slash ``fraction_ppm`` parts per million of ``provider``'s stake, citing ``evidence``.

    The evidence file is kept in the state directory's blob store; its SHA-256 (the blob
    name) goes on chain in the Slashed event.
    """
    who = _address(session, provider, "PROVIDER")
    data = evidence if isinstance(evidence, bytes) else load_evidence(evidence)
    digest = hashlib.sha256(data).digest()
    st = session.staking
    fn = st.functions.slash(who, fraction_ppm, digest)
    rec = session.transact(fn, "stake.slash", ((st, "Slashed"),))
    session.state.blobs.put(data)
    return rec


def stake_status(session: Session, provider: str | None = None) -> StakeStatusRecord:
    """Is ``provider`` (default: this account) bonded, with how much, slashed how often."""
    who = _address(session, provider, "--provider")
    st, tok = session.staking, session.token
    with chain_errors(session.client.rpc_url, "stake.status"):
        bonded, unbonding, unlock_at, slash_count, slashed, rewards, eligible = (
            st.functions.providerInfo(who).call()
        )
        min_stake = int(st.functions.minStake().call())
        balance = int(tok.functions.balanceOf(who).call())
        votes = int(tok.functions.getVotes(who).call())
        delegate_to = str(tok.functions.delegates(who).call())
        now = int(session.client.head()["timestamp"])
    return StakeStatusRecord(
        provider=who,
        bonded=bool(eligible),
        stake=format_fog(int(bonded)),
        unbonding=format_fog(int(unbonding)),
        unlock_at=int(unlock_at) or None,
        withdrawable=int(unbonding) > 0 and now >= int(unlock_at),
        slash_count=int(slash_count),
        slashed=format_fog(int(slashed)),
        rewards=format_fog(int(rewards)),
        min_stake=format_fog(min_stake),
        balance=format_fog(balance),
        votes=format_fog(votes),
        delegate=None if int(delegate_to, 16) == 0 else delegate_to,
        stake_wei=str(int(bonded)),
    )


def stake_status_of_nodes(session: Session, source: str) -> Iterator[StakeStatusRecord]:
    """Stake status for each node record read from ``source`` (a path or ``-``).

    Uses each node's ``stake_address``; a node without one is reported unbonded with no
    provider address, so a pipeline sees every node it fed in.
    """
    from fogctl.records import iter_json_lines

    for name, lineno, obj in iter_json_lines(source):
        node = obj.get("id") if isinstance(obj.get("id"), str) else None
        address = obj.get("stake_address")
        if address is None:
            yield StakeStatusRecord(
                provider=None,
                bonded=False,
                stake="0",
                unbonding="0",
                unlock_at=None,
                withdrawable=False,
                slash_count=0,
                slashed="0",
                rewards="0",
                min_stake="",
                node=node,
            )
            continue
        if not isinstance(address, str):
            raise InvalidInput(f"{name}:{lineno}: stake_address must be a string")
        try:
            rec = stake_status(session, address)
        except InvalidInput as exc:
            raise InvalidInput(f"{name}:{lineno}: {exc.message}") from None
        yield replace(rec, node=node)


def transfer(session: Session, to: str, amount: int) -> TxRecord:
    """Send ``amount`` wei of FOG to ``to`` (used to fund providers and voters)."""
    who = _address(session, to, "TO")
    _require_fog(session, amount, "token.transfer")
    tok = session.token
    return session.transact(
        tok.functions.transfer(who, amount), "token.transfer", ((tok, "Transfer"),)
    )


# -- governance ------------------------------------------------------------------------------


def delegate(session: Session, to: str | None) -> TxRecord:
    """Delegate this account's votes (to itself by default): needed before voting."""
    who = _address(session, to, "ADDRESS")
    tok = session.token
    return session.transact(
        tok.functions.delegate(who), "vote.delegate", ((tok, "DelegateChanged"),)
    )


def _resolver(session: Session, alias: str) -> Any:
    contract = session.contract(alias)

    def resolve(name: str) -> Any:
        abi_names = {
            f.get("name")
            for f in contract.abi
            if f.get("type") == "function"
            and not f.get("inputs")
            and f.get("stateMutability") in ("view", "pure")
        }
        if name not in abi_names:
            raise InvalidInput(f"{alias} has no constant {name!r}")
        return session.call(getattr(contract.functions, name)())

    return resolve


def bind_actions(session: Session, texts: list[str]) -> list[BoundAction]:
    """Parse and check each ``--action`` against the deployed contracts' ABIs."""
    if not texts:
        raise InvalidInput("--action: at least one action is needed")
    out = []
    for text in texts:
        parsed = parse_action(text)
        contract = session.contract(parsed.contract)
        out.append(
            bind_action(
                parsed, contract.abi, session.addresses(), _resolver(session, parsed.contract)
            )
        )
    return out


def _encode(session: Session, bound: BoundAction) -> bytes:
    from eth_abi.abi import encode as abi_encode
    from eth_utils.crypto import keccak

    return keccak(text=bound.signature)[:4] + abi_encode(list(bound.types), list(bound.values))


def _description(title: str, body: str | None) -> str:
    title = title.strip()
    if not title:
        raise InvalidInput("--title: must not be empty")
    if "\n" in title:
        raise InvalidInput("--title: one line only")
    return f"# {title}\n\n{body.strip()}\n" if body else f"# {title}\n"


def propose(session: Session, title: str, actions: list[str], body: str | None = None) -> TxRecord:
    """Propose ``actions`` (``staking.setMinStake(2000)``...) under ``title``."""
    description = _description(title, body)
    bound = bind_actions(session, actions)
    targets = [b.target for b in bound]
    calldatas = [_encode(session, b) for b in bound]
    gov = session.governor
    me = session.account().address
    with chain_errors(session.client.rpc_url, "vote.propose"):
        threshold = int(gov.functions.proposalThreshold().call())
        clock = int(gov.functions.clock().call())
        votes = int(gov.functions.getVotes(me, clock - 1).call()) if clock else 0
    if votes < threshold:
        raise OperationFailed(
            f"vote.propose: {me} has {format_fog(votes)} delegated votes, the proposal "
            f"threshold is {format_fog(threshold)}; delegate first ('fogctl vote delegate') "
            "and wait one second; nothing sent"
        )
    fn = gov.functions.propose(targets, [0] * len(targets), calldatas, description)
    rec = session.transact(fn, "vote.propose", ())
    pid = int(
        session.call(
            gov.functions.getProposalId(
                targets, [0] * len(targets), calldatas, _keccak(description)
            )
        )
    )
    _remember(session, pid, title, description, [b.describe() for b in bound])
    return replace(
        rec,
        details={"proposal": str(pid), "title": title, "actions": [b.describe() for b in bound]},
    )


def _keccak(text: str) -> bytes:
    from eth_utils.crypto import keccak

    return bytes(keccak(text=text))


_MIGRATIONS = [
    """
    CREATE TABLE chain_proposals (
        chain_id    INTEGER NOT NULL,
        governor    TEXT NOT NULL,
        id          TEXT NOT NULL,
        title       TEXT NOT NULL,
        description TEXT NOT NULL,
        actions     TEXT NOT NULL,
        created     REAL NOT NULL,
        PRIMARY KEY (chain_id, governor, id)
    );
    """
]


def _db(session: Session) -> Any:
    db = session.state.db
    db.migrate("chain", _MIGRATIONS)
    return db


def _remember(session: Session, pid: int, title: str, description: str, actions: list[str]) -> None:
    db = _db(session)
    with db.transaction() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO chain_proposals VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                session.client.chain_id,
                session.deployment.governor,
                str(pid),
                title,
                description,
                json.dumps(actions),
                time.time(),
            ),
        )


def _known(session: Session) -> dict[str, tuple[str, str, list[str]]]:
    """Titles and descriptions: proposals made here, else the governor's ProposalCreated logs."""
    rows = _db(session).query(
        "SELECT id, title, description, actions FROM chain_proposals "
        "WHERE chain_id = ? AND governor = ?",
        (session.client.chain_id, session.deployment.governor),
    )
    return {r["id"]: (r["title"], r["description"], json.loads(r["actions"])) for r in rows}


def _from_logs(session: Session, known: dict[str, tuple[str, str, list[str]]]) -> None:
    """Fill ``known`` from ProposalCreated events (proposals made on other machines)."""
    try:
        with chain_errors(session.client.rpc_url, "vote.ls"):
            logs = session.governor.events.ProposalCreated().get_logs(
                from_block=session.deployment.block
            )
    except OperationFailed:
        return  # a node without the history: titles stay unknown
    for log in logs:
        pid = str(log["args"]["proposalId"])
        if pid in known:
            continue
        description = str(log["args"]["description"])
        first = description.split("\n", 1)[0]
        title = first[2:].strip() if first.startswith("# ") else first.strip()
        known[pid] = (title, description, [])


def _resolve_id(session: Session, text: str) -> int:
    """A proposal id, or ``#N``: the N-th proposal created on this governor."""
    if text.startswith("#"):
        try:
            number = int(text[1:])
        except ValueError:
            raise InvalidInput(f"proposal {text!r}: expected #N with N a number") from None
        count = int(session.call(session.governor.functions.proposalCount()))
        if not 1 <= number <= count:
            raise InvalidInput(f"proposal {text!r}: there are {count} proposals")
        details = session.call(session.governor.functions.proposalDetailsAt(number - 1))
        return int(details[0])
    return _parse_id(text)


def check_proposal_ref(text: str) -> None:
    """Refuse a malformed proposal reference (an id or ``#N``) without contacting the chain."""
    if text.startswith("#"):
        if not text[1:].isdigit() or int(text[1:]) < 1:
            raise InvalidInput(f"proposal {text!r}: expected #N with N a number from 1")
        return
    _parse_id(text)


def _parse_id(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise InvalidInput(f"proposal id {text!r}: not a number") from None
    if not 0 < value < 2**256:
        raise InvalidInput(f"proposal id {text!r}: out of range")
    return value


def _proposal(
    session: Session,
    pid: int,
    known: dict[str, tuple[str, str, list[str]]],
    details: tuple[Any, ...] | None = None,
) -> ProposalRecord:
    gov = session.governor
    with chain_errors(session.client.rpc_url, "vote.show"):
        state = int(gov.functions.state(pid).call())
        snapshot = int(gov.functions.proposalSnapshot(pid).call())
        deadline = int(gov.functions.proposalDeadline(pid).call())
        eta = int(gov.functions.proposalEta(pid).call())
        proposer = str(gov.functions.proposalProposer(pid).call())
        against, for_, abstain = gov.functions.proposalVotes(pid).call()
        clock = int(gov.functions.clock().call())
        # The quorum is known once the snapshot is in the past (not for pending ones).
        quorum = int(gov.functions.quorum(snapshot).call()) if snapshot < clock else None
        if details is None:
            details = tuple(gov.functions.proposalDetails(pid).call())
    title, description, actions = known.get(str(pid), (None, None, []))
    # Quadratic tallies are square roots of wei: sqrt(FOG) = sqrt(wei) / 10**9.
    quadratic = session.deployment.counting == "quadratic"

    def tally(value: int) -> str:
        return format_fog(value * 10**9) if quadratic else format_fog(value)

    if not actions and details:
        targets, _values, calldatas, _dh = details
        actions = [_describe_call(session, t, c) for t, c in zip(targets, calldatas, strict=False)]
    return ProposalRecord(
        id=str(pid),
        state=PROPOSAL_STATES[state],
        title=title,
        proposer=proposer,
        vote_start=snapshot,
        vote_end=deadline,
        eta=eta or None,
        votes_for=tally(int(for_)),
        votes_against=tally(int(against)),
        votes_abstain=tally(int(abstain)),
        quorum=format_fog(quorum) if quorum is not None else None,
        counting=session.deployment.counting,
        actions=tuple(actions),
        description=description,
    )


def _describe_call(session: Session, target: str, calldata: bytes) -> str:
    by_address = {v.lower(): k for k, v in session.addresses().items()}
    alias = by_address.get(target.lower())
    if alias is None:
        return f"{target}:0x{bytes(calldata).hex()}"
    try:
        fn, args = session.contract(alias).decode_function_input(bytes(calldata))
    except Exception:
        return f"{alias}:0x{bytes(calldata).hex()}"
    shown = ", ".join("0x" + v.hex() if isinstance(v, bytes) else str(v) for v in args.values())
    return f"{alias}.{fn.fn_name}({shown})"


def show_proposal(session: Session, proposal_id: str) -> ProposalRecord:
    pid = _resolve_id(session, proposal_id)
    known = _known(session)
    if str(pid) not in known:
        _from_logs(session, known)
    return _proposal(session, pid, known)


def list_proposals(session: Session, state: str | None = None) -> list[ProposalRecord]:
    """Every proposal on this governor (from its on-chain list), newest first."""
    if state is not None and state not in PROPOSAL_STATES:
        raise InvalidInput(f"--state {state!r}: one of {', '.join(PROPOSAL_STATES)}")
    gov = session.governor
    known = _known(session)
    count = int(session.call(gov.functions.proposalCount()))
    if count > len(known):
        _from_logs(session, known)
    out = []
    for index in range(count - 1, -1, -1):
        pid, targets, values, calldatas, dh = session.call(gov.functions.proposalDetailsAt(index))
        rec = replace(
            _proposal(session, int(pid), known, (targets, values, calldatas, dh)),
            number=index + 1,
        )
        if state is None or rec.state == state:
            out.append(rec)
    return out


def parse_support(support: str) -> str:
    """``for``, ``against`` or ``abstain`` (any case); :class:`InvalidInput` otherwise."""
    choice = support.lower()
    if choice not in SUPPORT:
        raise InvalidInput(f"vote {support!r}: one of for, against, abstain")
    return choice


def cast_vote(
    session: Session, proposal_id: str, support: str, reason: str | None = None
) -> TxRecord:
    support = parse_support(support)
    pid = _resolve_id(session, proposal_id)
    gov = session.governor
    fn = (
        gov.functions.castVoteWithReason(pid, SUPPORT[support], reason)
        if reason
        else gov.functions.castVote(pid, SUPPORT[support])
    )
    return session.transact(fn, "vote.cast", ((gov, "VoteCast"),))


def queue_proposal(session: Session, proposal_id: str) -> TxRecord:
    pid = _resolve_id(session, proposal_id)
    gov = session.governor
    return session.transact(gov.functions.queue(pid), "vote.queue", ((gov, "ProposalQueued"),))


def execute_proposal(session: Session, proposal_id: str) -> TxRecord:
    pid = _resolve_id(session, proposal_id)
    gov = session.governor
    return session.transact(
        gov.functions.execute(pid), "vote.execute", ((gov, "ProposalExecuted"),)
    )


# -- vesting ---------------------------------------------------------------------------------


def vesting_create(
    session: Session,
    beneficiary: str | None,
    amount: int,
    duration: int,
    *,
    start: int | None = None,
    cliff: int = 0,
) -> tuple[list[TxRecord], VestingRecord]:
    """Deploy a FogVesting wallet for ``beneficiary`` and fund it with ``amount`` wei."""
    who = _address(session, beneficiary, "BENEFICIARY")
    if duration <= 0:
        raise InvalidInput("--duration: must be positive")
    if cliff > duration:
        raise InvalidInput("--cliff: longer than --duration")
    _require_fog(session, amount, "stake.vesting.create")
    begin = start if start is not None else int(session.client.head()["timestamp"])
    rec, address = session.client.deploy(
        "FogVesting", [who, begin, duration, cliff], session.account()
    )
    funded = session.transact(
        session.token.functions.transfer(address, amount),
        "stake.vesting.fund",
        ((session.token, "Transfer"),),
    )
    return [rec, funded], vesting_status(session, address)


def vesting_status(session: Session, address: str) -> VestingRecord:
    where = _address(session, address, "ADDRESS")
    if not session.client.code_at(where):
        raise InvalidInput(f"ADDRESS {where}: no contract there")
    wallet = session.client.contract("FogVesting", where)
    tok = session.token.address
    with chain_errors(session.client.rpc_url, "stake.vesting.status"):
        now = int(session.client.head()["timestamp"])
        released = int(wallet.functions.released(tok).call())
        balance = int(session.token.functions.balanceOf(where).call())
        vested = int(wallet.functions.vestedAmount(tok, now).call())
        releasable = int(wallet.functions.releasable(tok).call())
        start = int(wallet.functions.start().call())
        return VestingRecord(
            address=where,
            beneficiary=str(wallet.functions.owner().call()),
            start=start,
            cliff=int(wallet.functions.cliff().call()),
            end=int(wallet.functions.end().call()),
            total=format_fog(balance + released),
            vested=format_fog(vested),
            released=format_fog(released),
            releasable=format_fog(releasable),
        )


def vesting_release(session: Session, address: str) -> TxRecord:
    """Release the vested FOG of a FogVesting wallet to its beneficiary (anyone may call)."""
    where = _address(session, address, "ADDRESS")
    wallet = session.client.contract("FogVesting", where)
    fn = wallet.functions.release(session.token.address)
    return session.transact(fn, "stake.vesting.release", ((wallet, "ERC20Released"),))


__all__ += [
    "CONTRACTS",
    "bind_actions",
    "transfer",
    "vesting_create",
    "vesting_release",
    "vesting_status",
]
