"""Deploy the stack once per chain and record its addresses in the state directory.

Order: timelock (deployer as temporary admin) -> token (owned by the timelock) ->
staking (administered by the timelock) -> governor -> the governor becomes the timelock's
proposer and canceller, anyone may execute, and the deployer renounces the admin role.
The deployer keeps only what governance can revoke: the staking slasher and rewarder
roles. The record goes to ``<state>/chain/deployments/<chain id>.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fogctl.chain.accounts import Account
from fogctl.chain.client import ChainClient
from fogctl.chain.records import DeploymentRecord, TxRecord
from fogctl.chain.units import WEI, format_fog
from fogctl.errors import InvalidInput, StateError
from fogctl.state.atomic import write_atomic

__all__ = ["GOVERNORS", "DeployParams", "deploy_stack", "deployment_path", "load_deployment"]

DAY = 86400
GOVERNORS = {"simple": "FogGovernor", "quadratic": "FogQuadraticGovernor"}
ZERO = "0x0000000000000000000000000000000000000000"


@dataclass(frozen=True)
class DeployParams:
    supply: int = 100_000_000 * WEI
    cap: int = 1_000_000_000 * WEI
    min_stake: int = 1_000 * WEI
    unbonding_period: int = 7 * DAY
    voting_delay: int = 1 * DAY
    voting_period: int = 7 * DAY
    timelock_delay: int = 2 * DAY
    burn_slashed: bool = False
    counting: str = "simple"

    def check(self) -> None:
        if self.counting not in GOVERNORS:
            raise InvalidInput(f"--counting {self.counting!r}: one of {', '.join(GOVERNORS)}")
        if not 7 * DAY <= self.unbonding_period <= 14 * DAY:
            raise InvalidInput("--unbonding: must be between 7 and 14 days")
        if not 2 * DAY <= self.timelock_delay <= 7 * DAY:
            raise InvalidInput("--timelock-delay: must be between 2 and 7 days")
        if self.voting_period <= 0:
            raise InvalidInput("--voting-period: must be positive")
        if self.supply > self.cap:
            raise InvalidInput("--supply: larger than --cap")
        if self.supply < 100:
            raise InvalidInput("--supply: too small")


def deployment_path(chain_dir: Path, chain_id: int) -> Path:
    return chain_dir / "deployments" / f"{chain_id}.json"


def load_deployment(chain_dir: Path, chain_id: int) -> DeploymentRecord | None:
    path = deployment_path(chain_dir, chain_id)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StateError(f"{path}: damaged deployment record: {exc}") from None
    data.pop("kind", None)
    fields = DeploymentRecord.__dataclass_fields__
    return DeploymentRecord(**{k: v for k, v in data.items() if k in fields})


def deploy_stack(
    client: ChainClient,
    account: Account,
    chain_dir: Path,
    params: DeployParams,
    *,
    emit: Any = None,
) -> DeploymentRecord:
    """Deploy (or return the recorded deployment if its contracts are on this chain)."""
    params.check()
    chain_id = client.chain_id
    existing = load_deployment(chain_dir, chain_id)
    if existing is not None and client.code_at(existing.governor):
        return DeploymentRecord(**{**_as_kwargs(existing), "created": False})

    def step(rec: TxRecord) -> None:
        if emit is not None:
            emit(rec)

    me = account.address
    rec, timelock = client.deploy("FogTimelock", [params.timelock_delay, [], [ZERO], me], account)
    step(rec)
    first_block = rec.block
    rec, token = client.deploy("FogToken", [timelock, me, params.supply, params.cap], account)
    step(rec)
    recipient = ZERO if params.burn_slashed else timelock
    rec, staking = client.deploy(
        "FogStaking",
        [token, timelock, params.unbonding_period, params.min_stake, recipient, me, me],
        account,
    )
    step(rec)
    threshold = params.supply // 100
    rec, governor = client.deploy(
        GOVERNORS[params.counting],
        [token, timelock, params.voting_delay, params.voting_period, threshold],
        account,
    )
    step(rec)
    tl = client.contract("FogTimelock", timelock)
    for role_fn, who, verb in (
        ("PROPOSER_ROLE", governor, "grantRole"),
        ("CANCELLER_ROLE", governor, "grantRole"),
        ("DEFAULT_ADMIN_ROLE", me, "renounceRole"),
    ):
        role = client.call(getattr(tl.functions, role_fn)())
        fn = getattr(tl.functions, verb)(role, who)
        rec, _ = client.transact(fn, account, action=f"deploy.timelock.{verb}.{role_fn}")
        step(rec)
    deployment = DeploymentRecord(
        chain_id=chain_id,
        token=token,
        staking=staking,
        governor=governor,
        timelock=timelock,
        deployer=me,
        block=first_block,
        unbonding_period=params.unbonding_period,
        min_stake=format_fog(params.min_stake),
        voting_delay=params.voting_delay,
        voting_period=params.voting_period,
        timelock_delay=params.timelock_delay,
        proposal_threshold=format_fog(threshold),
        counting=params.counting,
    )
    path = deployment_path(chain_dir, chain_id)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(path, json.dumps(deployment.to_dict(), indent=1).encode() + b"\n")
    return deployment


def _as_kwargs(rec: DeploymentRecord) -> dict[str, Any]:
    return {k: getattr(rec, k) for k in rec.__dataclass_fields__}
