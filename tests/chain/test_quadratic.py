"""Quadratic vote counting: the many beat the one where plain counting would not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fogctl.chain.accounts import load_account
from fogctl.chain.client import ChainClient
from fogctl.chain.deploy import DeployParams, deploy_stack
from tests.chain.conftest import ADDRESSES, DAY, DEV_KEYS, Chain

WEI = 10**18


def test_quadratic_counting_defeats_a_whale(cli: Any, chain: Chain, tmp_path: Path) -> None:
    client = ChainClient(chain.rpc_url)
    acct = {
        w: load_account(tmp_path, environ={"FOGCTL_CHAIN_PRIVATE_KEY": k})
        for w, k in DEV_KEYS.items()
    }
    dep = deploy_stack(
        client, acct["deployer"], tmp_path / "chain", DeployParams(counting="quadratic")
    )
    assert dep.counting == "quadratic"
    token = client.contract("FogToken", dep.token)
    gov = client.contract("FogQuadraticGovernor", dep.governor)
    assert gov.functions.COUNTING_MODE().call().endswith("params=quadratic")

    def send(fn: Any, who: str) -> Any:
        rec, receipt = client.transact(fn, acct[who], action="t")
        assert rec.status == "success"
        return receipt

    # One holder with 24M FOG for; three with 5M each against. Linear: 24M > 15M passes;
    # quadratic: sqrt(24M) = 4899 < 3 * sqrt(5M) = 6708 fails. Quorum (20M) is met by 24M.
    for who in ("voter", "provider", "stranger"):
        send(token.functions.transfer(ADDRESSES[who], 5_000_000 * WEI), "deployer")
    send(token.functions.transfer(dep.timelock, 61_000_000 * WEI), "deployer")
    assert token.functions.balanceOf(ADDRESSES["deployer"]).call() == 24_000_000 * WEI
    for who in ("deployer", "voter", "provider", "stranger"):
        send(token.functions.delegate(ADDRESSES[who]), who)
    chain.advance(1)
    staking = client.contract("FogStaking", dep.staking)
    data = [staking.encode_abi("setMinStake", [5 * WEI])]
    receipt = send(gov.functions.propose([dep.staking], [0], data, "# q\n"), "deployer")
    pid = gov.events.ProposalCreated().process_receipt(receipt)[0]["args"]["proposalId"]
    chain.advance(DAY + 1)
    send(gov.functions.castVote(pid, 1), "deployer")
    for who in ("voter", "provider", "stranger"):
        send(gov.functions.castVote(pid, 0), who)
    chain.advance(7 * DAY)
    assert gov.functions.state(pid).call() == 3  # defeated
    assert gov.functions.proposalParticipation(pid).call() == 24_000_000 * WEI

    # The CLI reads the recorded deployment and shows square-root tallies.
    home_dep = chain.home / "chain" / "deployments" / "31337.json"
    home_dep.write_text(json.dumps(dep.to_dict()))
    shown = cli("vote", "show", str(pid), "--json").record()
    assert shown["state"] == "defeated" and shown["counting"] == "quadratic"
    assert abs(float(shown["votes_for"]) - 24_000_000**0.5) < 0.01
    assert abs(float(shown["votes_against"]) - 3 * 5_000_000**0.5) < 0.01
    assert shown["quorum"] == "20000000"
