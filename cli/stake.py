"""fogctl stake: the local chain, contract deployment, provider stake, rewards and slashing."""

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from fogctl.cli import output
from fogctl.cli.common import examples
from fogctl.cli.common import state as current_state

from fogctl.errors import InvalidInput

HELP = """Stake FOG as a provider: bond, unbond, withdraw, rewards, slashing; the local chain.

Providers bond FOG in the FogStaking contract to become eligible for work; a provider
is bonded while its stake reaches the minimum stake (1000 FOG unless governance
changed it). Unstaked FOG unbonds for a period set at deployment (7-14 days) and can
still be slashed until it is withdrawn. Rewards stream to bonded stake pro rata.


The endpoint is --rpc-url, else config chain.rpc_url (FOGCTL_CHAIN_RPC_URL), else
the local chain; with chain.chain_id set, any other network is refused (exit 2).
Transactions are signed by $FOGCTL_CHAIN_PRIVATE_KEY, else a keystore (--keystore
or chain.keystore; password from a prompt or $FOGCTL_CHAIN_KEYSTORE_PASSWORD),
else keys/chain.key in the state directory (created 0600, never printed). The
local chain pays gas with test ETH. Each transaction prints a chain-tx record
(hash, gas used, status); a revert prints its decoded reason and exits 1, and
nothing is sent when a check fails first. Files: chain/deployments/CHAIN_ID.json
(addresses), chain/state.json (local chain state), chain/anvil.log. anvil is
found through chain.anvil, PATH, or contracts/node_modules. See fogctl-vote(1).
"""

app = typer.Typer(
    help=HELP,
    no_args_is_help=True,
    epilog=examples(
        "fogctl stake chain up",
        "fogctl stake deploy",
        "fogctl stake deposit 1500",
        "fogctl stake status",
        "fogctl stake unstake 500",
        "fogctl stake chain advance 8d",
        "fogctl stake withdraw",
    ),
)
chain_app = typer.Typer(
    help="The local chain (anvil) with its state kept in the state directory.",
    no_args_is_help=True,
)
rewards_app = typer.Typer(help="Staking rewards: claim them, or fund them.", no_args_is_help=True)
vesting_app = typer.Typer(
    help="Token vesting wallets (OpenZeppelin VestingWallet with a cliff).",
    no_args_is_help=True,
)
app.add_typer(chain_app, name="chain")
app.add_typer(rewards_app, name="rewards")
app.add_typer(vesting_app, name="vesting")

RpcUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--rpc-url",
        metavar="URL",
        help="JSON-RPC endpoint (default: config chain.rpc_url, else the local chain).",
    ),
]
KeystoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--keystore",
        metavar="FILE",
        help="Sign with this keystore file (password from a prompt or "
        "FOGCTL_CHAIN_KEYSTORE_PASSWORD) instead of keys/chain.key.",
    ),
]


def _session(rpc_url: str | None, keystore: Path | None = None) -> Any:
    from fogctl.chain.ops import open_session

    return open_session(
        current_state(), rpc_url=rpc_url, keystore=str(keystore) if keystore else None
    )


def run_transactions(fn: Callable[[], Any]) -> None:
    """Run ``fn`` (one TxRecord or a list); print each record, even a reverted one."""
    from fogctl.chain.ops import _Reverted

    try:
        result = fn()
    except _Reverted as exc:
        output.emit_one(exc.record)
        raise
    for rec in result if isinstance(result, list) else [result]:
        output.emit_one(rec)


def _local() -> Any:
    from fogctl.chain.local import LocalChain

    state = current_state()
    return LocalChain(state.subdir("chain"), anvil=state.config.get("chain.anvil"))


# -- chain ---------------------------------------------------------------------------------


@chain_app.command(
    "up",
    epilog=examples(
        "fogctl stake chain up",
        "fogctl stake chain up --port 18545 --chain-id 1337",
    ),
)
@output.with_output
def chain_up(
    port: Annotated[int, typer.Option("--port", help="TCP port on 127.0.0.1.")] = 8545,
    chain_id: Annotated[int, typer.Option("--chain-id", help="Chain id of a new chain.")] = 31337,
) -> None:
    """Start the local chain (anvil) in the background, its state in the state directory.

    The chain persists: 'chain down' and 'chain up' (or a crash) keep every transaction
    fogctl confirmed. Already running: prints it and changes nothing. anvil is found
    through the chain.anvil setting, PATH, or contracts/node_modules.
    """
    rec = _local().start(port=port, chain_id=chain_id)
    output.notice(f"local chain at {rec.rpc_url} (block {rec.block})")
    output.emit_one(rec)


@chain_app.command("down", epilog=examples("fogctl stake chain down"))
@output.with_output
def chain_down() -> None:
    """Save the local chain's state and stop it (nothing to do if it is not running)."""
    output.emit_one(_local().stop())


@chain_app.command(
    "status", epilog=examples("fogctl stake chain status", "fogctl stake chain status --json")
)
@output.with_output
def chain_status() -> None:
    """Show whether the local chain runs: pid, RPC URL, chain id, head block and time."""
    output.emit_one(_local().record())


@chain_app.command(
    "advance",
    epilog=examples("fogctl stake chain advance 8d", "fogctl stake chain advance 36h"),
)
@output.with_output
def chain_advance(
    duration: Annotated[str, typer.Argument(help="How far: 8d, 36h, 90m, 3600 (seconds).")],
    rpc_url: RpcUrlOpt = None,
) -> None:
    """Move the local chain's clock forward and mine a block (unbonding, voting periods).

    Refused (exit 4) on any chain but the local one this state directory runs.
    """
    from fogctl.chain.units import parse_duration
    from fogctl.components import rpc_url as configured_url

    seconds = parse_duration(duration, what="DURATION")
    local = _local()
    node = local.node()
    state = current_state()
    url = rpc_url or (
        str(state.config.get("chain.rpc_url"))
        if state.config.get("chain.rpc_url")
        else (node.rpc_url if node else configured_url(state.config))
    )
    output.emit_one(local.advance(url, seconds))


# -- deployment ------------------------------------------------------------------------------


@app.command(
    epilog=examples(
        "fogctl stake deploy",
        "fogctl stake deploy --rpc-url http://HOST:8545 --keystore deployer.json",
        "fogctl stake deploy --min-stake 5000 --unbonding 14d --burn-slashed",
        "fogctl stake deploy --counting quadratic",
    )
)
@output.with_output
def deploy(
    rpc_url: RpcUrlOpt = None,
    keystore: KeystoreOpt = None,
    min_stake: Annotated[str, typer.Option("--min-stake", help="Minimum stake in FOG.")] = "1000",
    unbonding: Annotated[str, typer.Option("--unbonding", help="Unbonding period, 7d-14d.")] = "7d",
    voting_delay: Annotated[
        str, typer.Option("--voting-delay", help="Delay before voting opens.")
    ] = "1d",
    voting_period: Annotated[
        str, typer.Option("--voting-period", help="How long voting lasts.")
    ] = "7d",
    timelock_delay: Annotated[
        str, typer.Option("--timelock-delay", help="Timelock delay, 2d-7d.")
    ] = "2d",
    supply: Annotated[
        str, typer.Option("--supply", help="Initial supply in FOG, minted to the deployer.")
    ] = "100000000",
    cap: Annotated[str, typer.Option("--cap", help="Supply cap in FOG.")] = "1000000000",
    counting: Annotated[
        str,
        typer.Option(
            "--counting",
            help="Vote counting: simple (one FOG, one vote) or quadratic (square root "
            "of the weight; quorum still in FOG).",
        ),
    ] = "simple",
    burn_slashed: Annotated[
        bool,
        typer.Option(
            "--burn-slashed",
            help="Burn slashed stake instead of sending it to the timelock (the DAO treasury).",
        ),
    ] = False,
) -> None:
    """Deploy FogToken, FogStaking, FogTimelock and FogGovernor once; record their addresses.

    The deployer receives the initial supply and the staking slasher and rewarder roles
    (revocable by governance); the timelock owns minting and every staking parameter.
    Run again: prints the recorded deployment and sends nothing.
    """
    from fogctl.chain.deploy import DeployParams
    from fogctl.chain.ops import deploy as do_deploy
    from fogctl.chain.units import parse_duration, parse_fog

    params = DeployParams(
        supply=parse_fog(supply, what="--supply"),
        cap=parse_fog(cap, what="--cap"),
        min_stake=parse_fog(min_stake, what="--min-stake", allow_zero=True),
        unbonding_period=parse_duration(unbonding, what="--unbonding"),
        voting_delay=parse_duration(voting_delay, what="--voting-delay"),
        voting_period=parse_duration(voting_period, what="--voting-period"),
        timelock_delay=parse_duration(timelock_delay, what="--timelock-delay"),
        burn_slashed=burn_slashed,
        counting=counting,
    )
    session = _session(rpc_url, keystore)
    rec = do_deploy(session, params, emit=output.emit_one)
    if not rec.created:
        output.notice(f"already deployed on chain {rec.chain_id}; nothing sent")
    output.emit_one(rec)


# -- provider stake --------------------------------------------------------------------------


@app.command(
    epilog=examples("fogctl stake deposit 1500", "fogctl stake deposit 250.5 --json | jq .hash")
)
@output.with_output
def deposit(
    amount: Annotated[str, typer.Argument(help="FOG to bond (e.g. 1500 or 0.5).")],
    rpc_url: RpcUrlOpt = None,
    keystore: KeystoreOpt = None,
) -> None:
    """Bond AMOUNT FOG as provider stake (one transaction, approved by an ERC-2612 permit).

    The resulting stake must reach the minimum stake. Checks the balance first: with too
    little FOG nothing is sent.
    """
    from fogctl.chain.ops import deposit as do_deposit
    from fogctl.chain.units import parse_fog

    wei = parse_fog(amount, what="AMOUNT")
    session = _session(rpc_url, keystore)
    run_transactions(lambda: do_deposit(session, wei))


@app.command(
    epilog=examples(
        "fogctl stake status",
        "fogctl stake status --provider 0xPROVIDER --json | jq .bonded",
        "fogctl dht providers --json | fogctl stake status - | jq -c '{node, bonded, stake}'",
    )
)
@output.with_output
def status(
    nodes: Annotated[
        str | None,
        typer.Argument(
            metavar="[NODES]",
            help="Node records (a path or - for stdin): one status per node's stake_address.",
        ),
    ] = None,
    provider: Annotated[
        str | None,
        typer.Option("--provider", metavar="ADDRESS", help="Provider address (default: mine)."),
    ] = None,
    rpc_url: RpcUrlOpt = None,
    keystore: KeystoreOpt = None,
) -> None:
    """Is the provider bonded, with how much, unbonding what until when, slashed how often.

    The record the scheduler's trust objective and the provider list read. With NODES,
    reads node records (JSON Lines) and writes one status per node, for its
    stake_address; a node without one is reported unbonded.
    """
    from fogctl.chain.ops import stake_status, stake_status_of_nodes

    if nodes is not None and provider is not None:
        raise typer.BadParameter("give NODES or --provider, not both")
    from fogctl.chain.units import parse_account

    provider = parse_account(provider, what="--provider")
    session = _session(rpc_url, keystore)
    if nodes is not None:
        output.emit(
            stake_status_of_nodes(session, nodes),
            columns=["node", "provider", "bonded", "stake", "unbonding", "slash_count"],
        )
        return
    output.emit_one(stake_status(session, provider))


@app.command(epilog=examples("fogctl stake unstake 500"))
@output.with_output
def unstake(
    amount: Annotated[str, typer.Argument(help="FOG to start unbonding.")],
    rpc_url: RpcUrlOpt = None,
    keystore: KeystoreOpt = None,
) -> None:
    """Start unbonding AMOUNT FOG: withdrawable after the unbonding period, slashable until.

    What stays bonded must be zero or at least the minimum stake. A new unstake restarts
    the unbonding period for the whole unbonding balance.
    """
    from fogctl.chain.ops import unstake as do_unstake
    from fogctl.chain.units import parse_fog

    wei = parse_fog(amount, what="AMOUNT")
    session = _session(rpc_url, keystore)
    run_transactions(lambda: do_unstake(session, wei))


@app.command(epilog=examples("fogctl stake withdraw"))
@output.with_output
def withdraw(rpc_url: RpcUrlOpt = None, keystore: KeystoreOpt = None) -> None:
    """Withdraw the whole unbonding balance once its unbonding period has ended."""
    from fogctl.chain.ops import withdraw as do_withdraw

    session = _session(rpc_url, keystore)
    run_transactions(lambda: do_withdraw(session))


@rewards_app.command("claim", epilog=examples("fogctl stake rewards claim"))
@output.with_output
def rewards_claim(rpc_url: RpcUrlOpt = None, keystore: KeystoreOpt = None) -> None:
    """Pay out the rewards this account's bonded stake has accrued."""
    from fogctl.chain.ops import claim_rewards

    session = _session(rpc_url, keystore)
    run_transactions(lambda: claim_rewards(session))


@rewards_app.command("fund", epilog=examples("fogctl stake rewards fund 7000 --duration 7d"))
@output.with_output
def rewards_fund(
    amount: Annotated[str, typer.Argument(help="FOG to distribute.")],
    duration: Annotated[str, typer.Option("--duration", help="Over how long (e.g. 7d).")] = "7d",
    rpc_url: RpcUrlOpt = None,
    keystore: KeystoreOpt = None,
) -> None:
    """Stream AMOUNT FOG to bonded stake, pro rata, over DURATION (rewarder role only)."""
    from fogctl.chain.ops import fund_rewards
    from fogctl.chain.units import parse_duration, parse_fog

    wei = parse_fog(amount, what="AMOUNT")
    seconds = parse_duration(duration, what="--duration")
    session = _session(rpc_url, keystore)
    run_transactions(lambda: fund_rewards(session, wei, seconds))


@app.command(
    epilog=examples(
        "fogctl stake slash 0xPROVIDER --fraction 0.1 --evidence failed-job.json",
        "fogctl stake slash 0xPROVIDER --fraction 5% --evidence proof.bin --json",
    )
)
@output.with_output
def slash(
    provider: Annotated[str, typer.Argument(help="Provider address.")],
    fraction: Annotated[
        str, typer.Option("--fraction", help="Share of its stake to take: 0.1 or 10%.")
    ],
    evidence: Annotated[
        Path,
        typer.Option("--evidence", metavar="FILE", help="Evidence; its SHA-256 goes on chain."),
    ],
    rpc_url: RpcUrlOpt = None,
    keystore: KeystoreOpt = None,
) -> None:
    """Slash a fraction of PROVIDER's bonded and unbonding stake (slasher role only).

    The evidence file is kept in the state directory's blob store under its SHA-256,
    which the Slashed event carries. Slashed stake goes to the treasury (or is burned).
    """
    from fogctl.chain.ops import load_evidence
    from fogctl.chain.ops import slash as do_slash
    from fogctl.chain.units import parse_address, parse_fraction

    who = parse_address(provider, what="PROVIDER")
    ppm = parse_fraction(fraction)
    data = load_evidence(evidence)
    session = _session(rpc_url, keystore)
    run_transactions(lambda: do_slash(session, who, ppm, data))


@app.command(epilog=examples("fogctl stake transfer 0xPROVIDER 5000"))
@output.with_output
def transfer(
    to: Annotated[str, typer.Argument(help="Recipient address.")],
    amount: Annotated[str, typer.Argument(help="FOG to send.")],
    rpc_url: RpcUrlOpt = None,
    keystore: KeystoreOpt = None,
) -> None:
    """Send AMOUNT FOG to an address (to fund a provider or a voter)."""
    from fogctl.chain.ops import transfer as do_transfer
    from fogctl.chain.units import parse_address, parse_fog

    to = parse_address(to, what="TO")
    wei = parse_fog(amount, what="AMOUNT")
    session = _session(rpc_url, keystore)
    run_transactions(lambda: do_transfer(session, to, wei))


@app.command(
    epilog=examples("fogctl stake account", "fogctl stake account --json | jq -r .address")
)
@output.with_output
def account(keystore: KeystoreOpt = None) -> None:
    """Print the signing account's address and where its key comes from (never the key)."""
    from fogctl.chain.accounts import load_account
    from fogctl.chain.records import AccountRecord

    acct = load_account(current_state().keys_dir, keystore=str(keystore) if keystore else None)
    output.emit_one(AccountRecord(acct.address, acct.source))


# -- vesting -------------------------------------------------------------------------------


@vesting_app.command(
    "create",
    epilog=examples(
        "fogctl stake vesting create 0xBENEFICIARY 250000 --duration 730d --cliff 180d",
        "fogctl stake vesting create 0xBENEFICIARY 1000 --duration 30d --json | jq -r .address",
    ),
)
@output.with_output
def vesting_create(
    beneficiary: Annotated[str, typer.Argument(help="Who receives the FOG as it vests.")],
    amount: Annotated[str, typer.Argument(help="FOG to lock in the wallet.")],
    duration: Annotated[
        str, typer.Option("--duration", help="Vesting period from the start, e.g. 730d.")
    ],
    cliff: Annotated[
        str, typer.Option("--cliff", help="Nothing vests before start + cliff.")
    ] = "0",
    start: Annotated[
        int | None,
        typer.Option("--start", metavar="UNIX_TIME", help="Start time (default: now)."),
    ] = None,
    rpc_url: RpcUrlOpt = None,
    keystore: KeystoreOpt = None,
) -> None:
    """Deploy a vesting wallet for BENEFICIARY and lock AMOUNT FOG in it.

    The FOG vests linearly over the duration, none before the cliff; the beneficiary
    can delegate the locked FOG's votes. Prints both transactions and the wallet.
    """
    from fogctl.chain.ops import vesting_create as create
    from fogctl.chain.units import parse_account, parse_duration, parse_fog

    who = parse_account(beneficiary, what="BENEFICIARY")
    wei = parse_fog(amount, what="AMOUNT")
    seconds = parse_duration(duration, what="--duration")
    cliff_s = parse_duration(cliff, what="--cliff")
    if seconds <= 0:
        raise InvalidInput("--duration: must be positive")
    if cliff_s > seconds:
        raise InvalidInput("--cliff: longer than --duration")
    session = _session(rpc_url, keystore)
    txs, wallet = create(session, who, wei, seconds, start=start, cliff=cliff_s)
    for rec in txs:
        output.emit_one(rec)
    output.emit_one(wallet)


@vesting_app.command(
    "status", epilog=examples("fogctl stake vesting status 0xWALLET --json | jq .releasable")
)
@output.with_output
def vesting_status(
    address: Annotated[str, typer.Argument(help="The vesting wallet's address.")],
    rpc_url: RpcUrlOpt = None,
) -> None:
    """Show a vesting wallet: schedule, total, vested, released and releasable FOG."""
    from fogctl.chain.ops import vesting_status as show
    from fogctl.chain.units import parse_address

    address = parse_address(address, what="ADDRESS")
    output.emit_one(show(_session(rpc_url), address))


@vesting_app.command("release", epilog=examples("fogctl stake vesting release 0xWALLET"))
@output.with_output
def vesting_release(
    address: Annotated[str, typer.Argument(help="The vesting wallet's address.")],
    rpc_url: RpcUrlOpt = None,
    keystore: KeystoreOpt = None,
) -> None:
    """Send the vested, unreleased FOG to the beneficiary (anyone may)."""
    from fogctl.chain.ops import vesting_release as release
    from fogctl.chain.units import parse_address

    address = parse_address(address, what="ADDRESS")
    session = _session(rpc_url, keystore)
    run_transactions(lambda: release(session, address))
