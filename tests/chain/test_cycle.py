"""The full cycle on a real anvil through the CLI: stake, rewards, unbond, slash, govern."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.chain.conftest import ADDRESSES, DAY, Chain


def tx(res: Any) -> dict[str, Any]:
    assert res.code == 0, res.stderr
    rec = res.records()[-1]
    assert rec["kind"] == "chain-tx" and rec["status"] == "success", rec
    assert rec["hash"].startswith("0x") and len(rec["hash"]) == 66
    assert rec["gas_used"] > 21000
    return dict(rec)


def status(cli: Any, *args: str) -> dict[str, Any]:
    res = cli("stake", "status", "--json", *args)
    assert res.code == 0, res.stderr
    return dict(res.record())


def test_stake_rewards_unbond_withdraw(cli: Any, chain: Chain) -> None:
    chain.use("provider")
    before = status(cli)
    assert before["bonded"] is False and before["stake"] == "0"
    dep = tx(cli("stake", "deposit", "1500", "--json"))
    assert dep["details"]["bonded"] == str(1500 * 10**18)
    st = status(cli)
    assert st["bonded"] is True and st["stake"] == "1500"
    assert st["balance"] == "1998500"

    chain.use("deployer")  # the rewarder role
    recs = cli("stake", "rewards", "fund", "7000", "--duration", "7d", "--json").records()
    assert [r["action"] for r in recs] == ["token.approve", "stake.rewards.fund"]
    chain.advance(DAY)
    chain.use("provider")
    accrued = float(status(cli)["rewards"])
    assert 990 < accrued <= 1000.01  # one day of 7000 over 7 days, the only staker

    claim = tx(cli("stake", "rewards", "claim", "--json"))
    assert int(claim["details"]["amount"]) >= 990 * 10**18

    tx(cli("stake", "unstake", "500", "--json"))
    st = status(cli)
    assert st["stake"] == "1000" and st["unbonding"] == "500" and st["withdrawable"] is False
    assert st["unlock_at"] >= chain.now() + 7 * DAY - 5

    early = cli("stake", "withdraw", "--json")
    assert early.code == 1
    assert "StillUnbonding" in early.stderr and "unbonding period has not ended" in early.stderr
    assert '"kind":"error"' in early.stderr and "Traceback" not in early.stderr

    chain.advance(7 * DAY + 1)
    assert status(cli)["withdrawable"] is True
    out = tx(cli("stake", "withdraw", "--json"))
    assert out["details"]["amount"] == str(500 * 10**18)
    st = status(cli)
    assert st["unbonding"] == "0" and st["bonded"] is True


def test_rewards_split_pro_rata(cli: Any, chain: Chain) -> None:
    chain.use("provider")
    tx(cli("stake", "deposit", "3000", "--json"))
    chain.use("voter")
    tx(cli("stake", "deposit", "1000", "--json"))
    chain.use("deployer")
    cli("stake", "rewards", "fund", "4000", "--duration", "8d", "--json")
    chain.advance(8 * DAY + 10)
    a = float(status(cli, "--provider", ADDRESSES["provider"])["rewards"])
    b = float(status(cli, "--provider", ADDRESSES["voter"])["rewards"])
    assert abs(a + b - 4000) < 0.01
    assert abs(a / b - 3.0) < 0.01


def test_slash_bonded_and_unbonding(cli: Any, chain: Chain, tmp_path: Path) -> None:
    chain.use("provider")
    tx(cli("stake", "deposit", "2000", "--json"))
    tx(cli("stake", "unstake", "1000", "--json"))
    evidence = tmp_path / "evidence.json"
    evidence.write_text('{"job":"j1","expected":"ok","got":"garbage"}')

    denied = cli(
        "stake", "slash", ADDRESSES["provider"], "--fraction", "0.1", "--evidence", str(evidence)
    )
    assert denied.code == 1 and "AccessControlUnauthorizedAccount" in denied.stderr

    chain.use("deployer")  # holds the slasher role after deployment
    rec = tx(
        cli(
            "stake",
            "slash",
            ADDRESSES["provider"],
            "--fraction",
            "10%",
            "--evidence",
            str(evidence),
            "--json",
        )
    )
    import hashlib

    digest = hashlib.sha256(evidence.read_bytes()).hexdigest()
    assert rec["details"]["evidence"] == "0x" + digest
    assert rec["details"]["amount"] == str(200 * 10**18)
    assert (chain.home / "blobs" / digest[:2] / digest).read_bytes() == evidence.read_bytes()
    st = status(cli, "--provider", ADDRESSES["provider"])
    assert st["stake"] == "900" and st["unbonding"] == "900"  # unbonding stake was slashed too
    assert st["slash_count"] == 1 and st["slashed"] == "200"
    assert st["bonded"] is False  # 900 < minimum stake of 1000

    again = tx(
        cli(
            "stake",
            "slash",
            ADDRESSES["provider"],
            "--fraction",
            "1",
            "--evidence",
            str(evidence),
            "--json",
        )
    )
    assert again["details"]["slashCount"] == "2"
    st = status(cli, "--provider", ADDRESSES["provider"])
    assert st["stake"] == "0" and st["unbonding"] == "0" and st["slash_count"] == 2
    empty = cli(
        "stake", "slash", ADDRESSES["provider"], "--fraction", "0.5", "--evidence", str(evidence)
    )
    assert empty.code == 1 and "NothingToSlash" in empty.stderr


def test_governance_changes_min_stake(cli: Any, chain: Chain) -> None:
    tx(cli("vote", "delegate", "--json"))
    chain.advance(1)
    prop = tx(
        cli(
            "vote",
            "propose",
            "--title",
            "Raise the minimum stake",
            "--action",
            "staking.setMinStake(2000)",
            "--json",
        )
    )
    pid = prop["details"]["proposal"]
    assert prop["details"]["actions"] == [f"staking.setMinStake({2000 * 10**18})"]
    shown = cli("vote", "show", pid, "--json").record()
    assert shown["state"] == "pending" and shown["title"] == "Raise the minimum stake"

    early = cli("vote", "cast", pid, "for")
    assert early.code == 1 and "GovernorUnexpectedProposalState" in early.stderr

    chain.advance(DAY + 1)
    vote = tx(cli("vote", "cast", pid, "for", "--reason", "providers need more skin", "--json"))
    assert vote["details"]["support"] == 1
    twice = cli("vote", "cast", pid, "against")
    assert twice.code == 1 and "GovernorAlreadyCastVote" in twice.stderr

    chain.use("voter")  # holds 2M FOG but never delegated
    nobody = cli("vote", "cast", pid, "against")
    assert nobody.code == 1 and "FogGovernorNoVotingPower" in nobody.stderr
    chain.use("deployer")

    too_soon = cli("vote", "queue", pid)
    assert too_soon.code == 1 and "state=active" not in too_soon.stderr
    assert "current=active" in too_soon.stderr

    chain.advance(7 * DAY)
    assert cli("vote", "show", pid, "--json").record()["state"] == "succeeded"
    queued = tx(cli("vote", "queue", pid, "--json"))
    assert int(queued["details"]["etaSeconds"]) >= chain.now() + 2 * DAY - 5

    locked = cli("vote", "execute", pid)
    assert locked.code == 1 and "TimelockUnexpectedOperationState" in locked.stderr

    chain.advance(2 * DAY + 1)
    tx(cli("vote", "execute", pid, "--json"))
    listed = cli("vote", "ls", "--json").records()
    assert [p["id"] for p in listed] == [pid] and listed[0]["state"] == "executed"
    assert listed[0]["number"] == 1
    assert cli("vote", "show", "#1", "--json").record()["id"] == pid
    missing = cli("vote", "show", "#2")
    assert missing.code == 2 and "there are 1 proposals" in missing.stderr
    assert listed[0]["votes_for"] == "96000000"  # deployer's 100M minus 4M sent in setup
    assert status(cli)["min_stake"] == "2000"

    chain.use("provider")
    low = cli("stake", "deposit", "1500")
    assert low.code == 1 and "BelowMinStake" in low.stderr


def test_minting_only_by_governance(cli: Any, chain: Chain) -> None:
    from fogctl.chain.accounts import load_account
    from fogctl.chain.client import ChainClient
    from fogctl.chain.reverts import RevertError
    from tests.chain.conftest import DEV_KEYS

    client = ChainClient(chain.rpc_url)
    me = load_account(chain.home, environ={"FOGCTL_CHAIN_PRIVATE_KEY": DEV_KEYS["deployer"]})
    token = client.contract("FogToken", chain.deployment["token"])
    try:
        client.transact(token.functions.mint(me.address, 1), me, action="token.mint")
    except RevertError as exc:
        assert "OwnableUnauthorizedAccount" in exc.reason
    else:
        raise AssertionError("mint by the deployer succeeded")
    assert token.functions.CLOCK_MODE().call() == "mode=timestamp"
    assert token.functions.clock().call() == chain.now() or token.functions.clock().call() > 0
    assert token.functions.owner().call() == chain.deployment["timelock"]

    # Governance can mint, up to the cap.
    tx(cli("vote", "delegate", "--json"))
    chain.advance(1)
    too_much = 1_000_000_000 - 100_000_000 + 1
    pid = tx(
        cli(
            "vote",
            "propose",
            "--title",
            "Mint past the cap",
            "--action",
            f"token.mint(@timelock, {too_much})",
            "--json",
        )
    )["details"]["proposal"]
    chain.advance(DAY + 1)
    tx(cli("vote", "cast", pid, "for", "--json"))
    chain.advance(7 * DAY)
    tx(cli("vote", "queue", pid, "--json"))
    chain.advance(2 * DAY + 1)
    over = cli("vote", "execute", pid)
    assert over.code == 1 and "ERC20ExceededCap" in over.stderr


def test_stake_revert_paths(cli: Any, chain: Chain) -> None:
    chain.use("provider")
    below = cli("stake", "deposit", "999.5")
    assert below.code == 1 and "BelowMinStake" in below.stderr
    tx(cli("stake", "deposit", "1500", "--json"))
    partial = cli("stake", "unstake", "600")  # would leave 900 < 1000
    assert partial.code == 1 and "BelowMinStake" in partial.stderr
    over = cli("stake", "unstake", "5000")
    assert over.code == 1 and "InsufficientStake" in over.stderr
    nothing = cli("stake", "rewards", "claim")
    assert nothing.code == 1 and "NothingToClaim" in nothing.stderr
    fund = cli("stake", "rewards", "fund", "10", "--duration", "1d")
    assert fund.code == 1 and "AccessControlUnauthorizedAccount" in fund.stderr
    tx(cli("stake", "unstake", "1500", "--json"))  # a full exit is allowed
    assert status(cli)["stake"] == "0"


def test_titles_come_from_chain_logs_on_another_machine(
    cli: Any, chain: Chain, tmp_path: Path, monkeypatch: Any
) -> None:
    tx(cli("vote", "delegate", "--json"))
    chain.advance(1)
    pid = tx(
        cli(
            "vote",
            "propose",
            "--title",
            "Lower the unbonding floor",
            "--description",
            "Because.",
            "--action",
            "staking.setMinStake(500)",
            "--json",
        )
    )["details"]["proposal"]
    # Another machine: a fresh state directory that only knows the deployment.
    other = tmp_path / "other-home"
    (other / "chain" / "deployments").mkdir(parents=True)
    (other / "chain" / "deployments" / "31337.json").write_text(
        (chain.home / "chain" / "deployments" / "31337.json").read_text()
    )
    monkeypatch.setenv("FOGCTL_HOME", str(other))
    shown = cli("vote", "show", pid, "--json").record()
    assert shown["title"] == "Lower the unbonding floor"
    assert shown["description"] == "# Lower the unbonding floor\n\nBecause.\n"
    assert shown["actions"] == [f"staking.setMinStake({500 * 10**18})"]
    listed = cli("vote", "ls", "--state", "pending", "--json").records()
    assert [p["title"] for p in listed] == ["Lower the unbonding floor"]
    assert cli("vote", "ls", "--state", "executed", "--json").records() == []


def test_deposit_is_one_transaction_with_permit_or_allowance(cli: Any, chain: Chain) -> None:
    from fogctl.chain.accounts import load_account
    from fogctl.chain.client import ChainClient
    from tests.chain.conftest import DEV_KEYS

    def nonce() -> int:
        return int(chain.rpc("eth_getTransactionCount", [ADDRESSES["provider"], "latest"]), 16)

    chain.use("provider")
    n = nonce()
    tx(cli("stake", "deposit", "1000", "--json"))  # no allowance: ERC-2612 permit
    assert nonce() == n + 1
    client = ChainClient(chain.rpc_url)
    me = load_account(chain.home, environ={"FOGCTL_CHAIN_PRIVATE_KEY": DEV_KEYS["provider"]})
    token = client.contract("FogToken", chain.deployment["token"])
    client.transact(token.functions.approve(chain.deployment["staking"], 10**21), me, action="a")
    n = nonce()
    rec = tx(cli("stake", "deposit", "1000", "--json"))  # allowance already there: stake()
    assert nonce() == n + 1 and rec["gas_used"] < 120_000
    assert token.functions.allowance(me.address, chain.deployment["staking"]).call() == 0
    assert status(cli)["stake"] == "2000"


def test_vesting_wallet_with_cliff(cli: Any, chain: Chain) -> None:
    res = cli(
        "stake",
        "vesting",
        "create",
        ADDRESSES["voter"],
        "3650",
        "--duration",
        "365d",
        "--cliff",
        "90d",
        "--json",
    )
    assert res.code == 0, res.stderr
    deploy_tx, fund_tx, wallet = res.records()
    assert deploy_tx["action"] == "deploy.FogVesting" and fund_tx["status"] == "success"
    assert wallet["kind"] == "vesting" and wallet["beneficiary"] == ADDRESSES["voter"]
    assert wallet["total"] == "3650" and wallet["vested"] == "0"
    address = wallet["address"]

    chain.advance(30 * DAY)
    st = cli("stake", "vesting", "status", address, "--json").record()
    assert st["vested"] == "0"  # before the cliff
    early = cli("stake", "vesting", "release", address, "--json")
    assert early.code == 0  # releasing nothing is allowed by OpenZeppelin: 0 FOG moves
    assert cli("stake", "vesting", "status", address, "--json").record()["released"] == "0"

    chain.advance(70 * DAY)  # day 100: 100/365 of 3650 has vested
    st = cli("stake", "vesting", "status", address, "--json").record()
    assert 999 < float(st["vested"]) < 1002 and st["releasable"] == st["vested"]
    chain.use("stranger")  # anyone may release; the FOG goes to the beneficiary
    rel = tx(cli("stake", "vesting", "release", address, "--json"))
    assert rel["details"]["token"] == chain.deployment["token"]
    chain.use("deployer")
    bal = status(cli, "--provider", ADDRESSES["voter"])["balance"]
    assert 2_000_999 < float(bal) < 2_001_002
    chain.advance(400 * DAY)
    tx(cli("stake", "vesting", "release", address, "--json"))
    st = cli("stake", "vesting", "status", address, "--json").record()
    assert st["released"] == "3650" and st["releasable"] == "0"

    bad = cli(
        "stake", "vesting", "create", ADDRESSES["voter"], "1", "--duration", "1d", "--cliff", "2d"
    )
    assert bad.code == 2 and "--cliff" in bad.stderr
    none = cli("stake", "vesting", "status", ADDRESSES["voter"])
    assert none.code == 2 and "no contract there" in none.stderr


def test_governance_controls_the_slasher_role(cli: Any, chain: Chain, tmp_path: Path) -> None:
    tx(cli("vote", "delegate", "--json"))
    chain.advance(1)
    prop = tx(
        cli(
            "vote",
            "propose",
            "--title",
            "Hand slashing to the provider council",
            "--action",
            f"staking.grantRole(SLASHER_ROLE, {ADDRESSES['voter']})",
            "--action",
            f"staking.revokeRole(SLASHER_ROLE, {ADDRESSES['deployer']})",
            "--json",
        )
    )
    assert len(prop["details"]["actions"]) == 2
    chain.advance(DAY + 1)
    tx(cli("vote", "cast", "#1", "for", "--json"))
    chain.advance(7 * DAY)
    tx(cli("vote", "queue", "#1", "--json"))
    chain.advance(2 * DAY + 1)
    tx(cli("vote", "execute", "#1", "--json"))

    chain.use("provider")
    tx(cli("stake", "deposit", "1000", "--json"))
    evidence = tmp_path / "e"
    evidence.write_text("proof")
    chain.use("deployer")
    revoked = cli(
        "stake", "slash", ADDRESSES["provider"], "--fraction", "0.5", "--evidence", str(evidence)
    )
    assert revoked.code == 1 and "AccessControlUnauthorizedAccount" in revoked.stderr
    chain.use("voter")
    rec = tx(
        cli(
            "stake",
            "slash",
            ADDRESSES["provider"],
            "--fraction",
            "0.5",
            "--evidence",
            str(evidence),
            "--json",
        )
    )
    assert rec["details"]["slasher"] == ADDRESSES["voter"]


def test_status_for_node_records_from_a_pipe(cli: Any, chain: Chain) -> None:
    chain.use("provider")
    tx(cli("stake", "deposit", "1200", "--json"))
    nodes = "\n".join(
        [
            '{"kind":"node","id":"'
            + "a" * 40
            + '","stake_address":"'
            + ADDRESSES["provider"]
            + '"}',
            '{"kind":"node","id":"' + "b" * 40 + '"}',
            '{"kind":"node","id":"' + "c" * 40 + '","stake_address":"' + ADDRESSES["voter"] + '"}',
        ]
    )
    res = cli("stake", "status", "-", "--json", input=nodes + "\n")
    assert res.code == 0, res.stderr
    got = [(r["node"][0], r["bonded"], r["stake"]) for r in res.records()]
    assert got == [("a", True, "1200"), ("b", False, "0"), ("c", False, "0")]
    bad = cli("stake", "status", "-", input='{"kind":"node","id":"x","stake_address":"zz"}\n')
    assert bad.code == 2 and "<stdin>:1:" in bad.stderr
    both = cli("stake", "status", "-", "--provider", ADDRESSES["voter"], input="")
    assert both.code == 2
