"""Gas per operation of the fogctl contracts beside a plain OpenZeppelin ERC20 transfer,
and the governance cycle's wall time, all measured in the same run on a local anvil.

    python tests/bench/bench_chain.py

Needs anvil (``npm ci`` in contracts/). Starts its own anvil on a free loopback port in a
temporary state directory and stops it at the end.
"""

from __future__ import annotations

import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

DAY = 86400
DEPLOYER = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
PROVIDER = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    from fogctl.chain import ops
    from fogctl.chain.accounts import load_account
    from fogctl.chain.deploy import DeployParams
    from fogctl.chain.local import LocalChain
    from fogctl.chain.rpc import rpc_call
    from fogctl.chain.units import WEI
    from fogctl.state import State

    home = Path(tempfile.mkdtemp(prefix="fogctl-bench-chain-"))
    os.environ["FOGCTL_HOME"] = str(home)
    state = State(home)
    local = LocalChain(state.subdir("chain"))
    rec = local.start(port=free_port())
    gas: dict[str, int] = {}
    try:
        os.environ["FOGCTL_CHAIN_PRIVATE_KEY"] = DEPLOYER
        s = ops.open_session(state, rpc_url=rec.rpc_url)
        ops.deploy(s, DeployParams())
        s = ops.open_session(state, rpc_url=rec.rpc_url)
        me = s.account()

        def tick() -> None:
            # One block per 12 s as on a real chain: two transactions in the same second
            # would share a vote checkpoint and measure cheaper than they are.
            head = s.client.head()
            rpc_call(rec.rpc_url, "evm_setNextBlockTimestamp", [int(head["timestamp"]) + 12])

        provider = load_account(home, environ={"FOGCTL_CHAIN_PRIVATE_KEY": PROVIDER})

        # Reference: a plain OpenZeppelin ERC20 (no votes, no permit, no cap).
        _, plain_addr = s.client.deploy("PlainToken", [10**9 * WEI], me)
        plain = s.client.contract("PlainToken", plain_addr)
        s.client.transact(plain.functions.transfer(provider.address, 1), me, action="warm")
        ref_times = []
        for _ in range(5):
            t0 = time.perf_counter()
            r, _ = s.client.transact(
                plain.functions.transfer(provider.address, WEI), me, action="plain.transfer"
            )
            ref_times.append(time.perf_counter() - t0)
        gas["ERC20 transfer (reference)"] = r.gas_used
        ref_wall = statistics.median(ref_times)

        ops.transfer(s, provider.address, 10 * WEI)  # warm the recipient's balance slot
        tick()
        gas["FOG transfer (ERC20Votes)"] = ops.transfer(s, provider.address, 100_000 * WEI).gas_used
        tick()
        gas["delegate"] = ops.delegate(s, None).gas_used
        tick()
        gas["stake (with permit)"] = ops.deposit(s, 2000 * WEI).gas_used
        token = s.token
        s.transact(token.functions.approve(s.staking.address, 1000 * WEI), "approve")
        tick()
        gas["stake (after approve)"] = ops.deposit(s, 1000 * WEI).gas_used
        tick()
        funded = ops.fund_rewards(s, 7000 * WEI, 7 * DAY)
        gas["fund rewards"] = funded[-1].gas_used
        local.advance(rec.rpc_url, DAY)
        tick()
        gas["claim rewards"] = ops.claim_rewards(s).gas_used
        tick()
        gas["unstake"] = ops.unstake(s, 1000 * WEI).gas_used
        evidence = home / "evidence"
        evidence.write_bytes(b"bench evidence")
        tick()
        gas["slash (bonded + unbonding)"] = ops.slash(s, me.address, 100_000, evidence).gas_used
        local.advance(rec.rpc_url, 8 * DAY)
        tick()
        gas["withdraw"] = ops.withdraw(s).gas_used

        t0 = time.perf_counter()
        tick()
        prop = ops.propose(s, "Raise the minimum stake", ["staking.setMinStake(2000)"])
        pid = prop.details["proposal"] if prop.details else ""
        local.advance(rec.rpc_url, DAY + 1)
        tick()
        cast = ops.cast_vote(s, pid, "for")
        local.advance(rec.rpc_url, 7 * DAY)
        tick()
        queued = ops.queue_proposal(s, pid)
        local.advance(rec.rpc_url, 2 * DAY + 1)
        tick()
        executed = ops.execute_proposal(s, pid)
        cycle = time.perf_counter() - t0
        assert ops.stake_status(s).min_stake == "2000"
        gas["propose"] = prop.gas_used
        gas["cast vote"] = cast.gas_used
        gas["queue"] = queued.gas_used
        gas["execute"] = executed.gas_used
    finally:
        local.stop()

    ref = gas["ERC20 transfer (reference)"]
    print(f"{'operation':32} {'gas':>9} {'x ERC20 transfer':>17}")
    for name, used in gas.items():
        print(f"{name:32} {used:>9} {used / ref:>16.2f}x")
    print()
    print(
        f"governance cycle (propose, vote, queue, execute, 10 days of time travel, "
        f"a state checkpoint after each step): {cycle:.2f} s"
    )
    print(
        f"reference: one plain ERC20 transfer sent and mined: {ref_wall * 1000:.1f} ms "
        f"(cycle = {cycle / ref_wall:.0f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
