"""Every revert path of the contracts, called directly (the CLI checks some of them first)."""

from __future__ import annotations

from typing import Any

import pytest

from fogctl.chain.accounts import Account, load_account
from fogctl.chain.client import ChainClient
from fogctl.chain.reverts import RevertError
from tests.chain.conftest import ADDRESSES, DAY, DEV_KEYS, Chain

WEI = 10**18
ZERO = "0x" + "00" * 20


def account(who: str) -> Account:
    from pathlib import Path

    return load_account(Path("/nonexistent"), environ={"FOGCTL_CHAIN_PRIVATE_KEY": DEV_KEYS[who]})


@pytest.fixture
def c(chain: Chain) -> Any:
    client = ChainClient(chain.rpc_url)

    class Ctx:
        pass

    ctx = Ctx()
    ctx.client = client  # type: ignore[attr-defined]
    ctx.token = client.contract("FogToken", chain.deployment["token"])  # type: ignore[attr-defined]
    ctx.staking = client.contract("FogStaking", chain.deployment["staking"])  # type: ignore[attr-defined]
    ctx.governor = client.contract("FogGovernor", chain.deployment["governor"])  # type: ignore[attr-defined]
    return ctx


def reverts(client: ChainClient, fn: Any, who: str, error: str) -> None:
    with pytest.raises(RevertError) as err:
        client.transact(fn, account(who), action="test")
    assert error in err.value.reason, err.value.reason


def ok(client: ChainClient, fn: Any, who: str) -> Any:
    rec, receipt = client.transact(fn, account(who), action="test")
    assert rec.status == "success"
    return receipt


def test_staking_revert_paths(c: Any, chain: Chain) -> None:
    st, tok, cl = c.staking, c.token, c.client
    reverts(cl, st.functions.stake(0), "provider", "ZeroAmount")
    reverts(cl, st.functions.stake(1000 * WEI), "provider", "ERC20InsufficientAllowance")
    ok(cl, tok.functions.approve(st.address, 10**6 * WEI), "provider")
    reverts(cl, st.functions.stake(999 * WEI), "provider", "BelowMinStake")
    ok(cl, st.functions.stake(1000 * WEI), "provider")
    reverts(cl, st.functions.unstake(0), "provider", "ZeroAmount")
    reverts(cl, st.functions.withdraw(), "provider", "NothingToWithdraw")
    ok(cl, st.functions.unstake(1000 * WEI), "provider")
    reverts(cl, st.functions.withdraw(), "provider", "StillUnbonding")
    ev = b"\x01" * 32
    for frac in (0, 1_000_001):
        reverts(
            cl, st.functions.slash(ADDRESSES["provider"], frac, ev), "deployer", "InvalidFraction"
        )
    reverts(
        cl,
        st.functions.slash(ADDRESSES["provider"], 10, b"\x00" * 32),
        "deployer",
        "MissingEvidence",
    )
    reverts(cl, st.functions.slash(ADDRESSES["voter"], 10, ev), "deployer", "NothingToSlash")
    reverts(
        cl,
        st.functions.slash(ADDRESSES["provider"], 10, ev),
        "provider",
        "AccessControlUnauthorizedAccount",
    )
    reverts(cl, st.functions.setMinStake(1), "deployer", "AccessControlUnauthorizedAccount")
    reverts(
        cl, st.functions.setSlashRecipient(ZERO), "deployer", "AccessControlUnauthorizedAccount"
    )
    reverts(cl, st.functions.fundRewards(0, DAY), "deployer", "ZeroAmount")
    reverts(cl, st.functions.fundRewards(WEI, 0), "deployer", "InvalidRewardDuration")
    ok(cl, tok.functions.approve(st.address, 10**6 * WEI), "deployer")
    reverts(cl, st.functions.fundRewards(1, DAY), "deployer", "RewardRateZero")
    reverts(cl, st.functions.fundRewards(WEI, DAY), "provider", "AccessControlUnauthorizedAccount")
    reverts(
        cl,
        st.functions.stakeWithPermit(1000 * WEI, 0, 27, b"\x00" * 32, b"\x00" * 32),
        "voter",
        "ERC20InsufficientAllowance",
    )  # a bad permit is ignored, then no allowance


def test_rewards_pause_while_nobody_is_bonded(c: Any, chain: Chain) -> None:
    st, tok, cl = c.staking, c.token, c.client
    ok(cl, tok.functions.approve(st.address, 10**6 * WEI), "deployer")
    ok(cl, st.functions.fundRewards(700 * WEI, 7 * DAY), "deployer")
    chain.advance(3 * DAY)  # nobody staked: the stream pauses instead of stranding tokens
    ok(cl, tok.functions.approve(st.address, 10**6 * WEI), "provider")
    ok(cl, st.functions.stake(1000 * WEI), "provider")
    chain.advance(7 * DAY + 10)
    earned = st.functions.earned(ADDRESSES["provider"]).call()
    assert 700 * WEI - 10**6 <= earned <= 700 * WEI


def test_deployment_bounds(c: Any, chain: Chain) -> None:
    cl = c.client
    me = account("deployer")
    for days in (6, 15):
        with pytest.raises(RevertError) as err:
            cl.deploy(
                "FogStaking", [c.token.address, me.address, days * DAY, 1, ZERO, ZERO, ZERO], me
            )
        assert "InvalidUnbondingPeriod" in err.value.reason
    for days in (1, 8):
        with pytest.raises(RevertError) as err:
            cl.deploy("FogTimelock", [days * DAY, [], [ZERO], me.address], me)
        assert "FogTimelockDelayOutOfRange" in err.value.reason
    with pytest.raises(RevertError) as err:
        cl.deploy("FogToken", [me.address, me.address, 2 * WEI, WEI], me)
    assert "ERC20ExceededCap" in err.value.reason


def test_governance_revert_paths(c: Any, chain: Chain) -> None:
    gov, tok, cl = c.governor, c.token, c.client
    target = [c.staking.address]
    data = [c.staking.encode_abi("setMinStake", [5 * WEI])]
    # voter holds 2M FOG (2% of supply) but without delegation it has no votes
    reverts(
        cl,
        gov.functions.propose(target, [0], data, "x"),
        "voter",
        "GovernorInsufficientProposerVotes",
    )
    reverts(cl, gov.functions.castVote(123, 1), "voter", "GovernorNonexistentProposal")
    ok(cl, tok.functions.delegate(ADDRESSES["deployer"]), "deployer")
    chain.advance(1)
    receipt = ok(cl, gov.functions.propose(target, [0], data, "# t\n"), "deployer")
    pid = gov.events.ProposalCreated().process_receipt(receipt)[0]["args"]["proposalId"]
    reverts(
        cl,
        gov.functions.propose(target, [0], data, "# t\n"),
        "deployer",
        "GovernorUnexpectedProposalState",
    )  # the same proposal twice
    chain.advance(DAY + 1)
    reverts(cl, gov.functions.castVote(pid, 3), "deployer", "GovernorInvalidVoteType")
    reverts(cl, gov.functions.castVote(pid, 1), "voter", "FogGovernorNoVotingPower")
    ok(cl, gov.functions.castVote(pid, 0), "deployer")  # against: defeated
    chain.advance(7 * DAY)
    assert gov.functions.state(pid).call() == 3  # defeated
    reverts(cl, gov.functions.queue(pid), "deployer", "GovernorUnexpectedProposalState")
    reverts(cl, gov.functions.setVotingPeriod(1), "deployer", "GovernorOnlyExecutor")
    reverts(
        cl, tok.functions.mint(ADDRESSES["deployer"], 1), "deployer", "OwnableUnauthorizedAccount"
    )


def test_mined_revert_is_recorded_with_its_reason(c: Any, chain: Chain) -> None:
    """A transaction that reverts on chain (gas given, no simulation) still gets a record."""
    cl = c.client
    me = account("provider")
    tx = c.staking.functions.withdraw().build_transaction(
        {
            "from": me.address,
            "chainId": cl.chain_id,
            "gas": 100_000,
            "nonce": cl.w3.eth.get_transaction_count(me.address),
        }
    )
    rec, _ = cl._send(tx, me, "stake.withdraw")
    assert rec.status == "reverted" and rec.gas_used > 21000
    assert rec.reason is not None and "NothingToWithdraw" in rec.reason


def test_vesting_votes_can_be_delegated_by_the_beneficiary_only(c: Any, chain: Chain) -> None:
    cl, tok = c.client, c.token
    me = account("deployer")
    now = chain.now()
    _, address = cl.deploy("FogVesting", [ADDRESSES["voter"], now, 365 * DAY, 0], me)
    wallet = cl.contract("FogVesting", address)
    ok(cl, tok.functions.transfer(address, 5000 * WEI), "deployer")
    reverts(
        cl,
        wallet.functions.delegate(tok.address, ADDRESSES["stranger"]),
        "deployer",
        "OwnableUnauthorizedAccount",
    )
    ok(cl, wallet.functions.delegate(tok.address, ADDRESSES["stranger"]), "voter")
    assert tok.functions.getVotes(ADDRESSES["stranger"]).call() == 5000 * WEI
    with pytest.raises(RevertError) as err:
        cl.deploy("FogVesting", [ADDRESSES["voter"], now, DAY, 2 * DAY], me)
    assert "InvalidCliffDuration" in err.value.reason


def test_slashed_stake_is_burned_when_deployed_so(c: Any, chain: Chain, tmp_path: Any) -> None:
    from fogctl.chain.deploy import DeployParams, deploy_stack

    cl = c.client
    dep = deploy_stack(cl, account("deployer"), tmp_path, DeployParams(burn_slashed=True))
    tok = cl.contract("FogToken", dep.token)
    st = cl.contract("FogStaking", dep.staking)
    assert st.functions.slashRecipient().call() == ZERO
    ok(cl, tok.functions.transfer(ADDRESSES["provider"], 2000 * WEI), "deployer")
    ok(cl, tok.functions.approve(st.address, 2000 * WEI), "provider")
    ok(cl, st.functions.stake(2000 * WEI), "provider")
    supply = tok.functions.totalSupply().call()
    ok(cl, st.functions.slash(ADDRESSES["provider"], 250_000, b"\x02" * 32), "deployer")
    assert tok.functions.totalSupply().call() == supply - 500 * WEI
    assert tok.functions.balanceOf(dep.timelock).call() == 0


def test_slashed_stake_goes_to_the_treasury_by_default(c: Any, chain: Chain) -> None:
    cl, tok, st = c.client, c.token, c.staking
    assert st.functions.slashRecipient().call() == chain.deployment["timelock"]
    ok(cl, tok.functions.approve(st.address, 2000 * WEI), "provider")
    ok(cl, st.functions.stake(2000 * WEI), "provider")
    supply = tok.functions.totalSupply().call()
    ok(cl, st.functions.slash(ADDRESSES["provider"], 250_000, b"\x02" * 32), "deployer")
    assert tok.functions.totalSupply().call() == supply
    assert tok.functions.balanceOf(chain.deployment["timelock"]).call() == 500 * WEI
