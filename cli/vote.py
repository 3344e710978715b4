"""fogctl vote: DAO governance over FOG votes: propose, vote, queue, execute, delegate."""

from typing import Annotated

import typer
from fogctl.cli import output
from fogctl.cli.common import examples
from fogctl.cli.stake import KeystoreOpt, RpcUrlOpt
from fogctl.cli.stake import _session as _session
from fogctl.cli.stake import run_transactions as _run

HELP = """Govern the network with FOG votes: proposals through the governor and timelock.

FOG counts as votes once delegated (to yourself or someone else), for proposals that
start after the delegation. A proposal needs delegated votes of at least the proposal
threshold (1% of the supply at deployment); voting opens after the voting delay
(1 day) and lasts the voting period (7 days); it passes with more for than against
votes and a quorum of 20% of the supply (for plus abstain). A passed proposal is
queued in the timelock and can be executed by anyone after the timelock delay
(2 days). The timelock owns the token's minting and every staking parameter.


Actions are CONTRACT.FUNCTION(ARGS) with CONTRACT one of token, staking, governor,
timelock; amount arguments are whole FOG (2000; 5wei for wei), durations take
s/m/h/d/w, addresses are 0x... or @token/@staking/@governor/@timelock, and role
constants are named (SLASHER_ROLE). Endpoint, accounts and exit codes are as in
fogctl-stake(1); on the local chain 'fogctl stake chain advance' skips the delays.
"""

app = typer.Typer(
    help=HELP,
    no_args_is_help=True,
    epilog=examples(
        "fogctl vote delegate",
        "fogctl vote propose --title 'Raise the minimum stake' "
        "--action 'staking.setMinStake(2000)'",
        "fogctl vote cast ID for",
        "fogctl vote queue ID",
        "fogctl vote execute ID",
    ),
)

IdArg = Annotated[
    str,
    typer.Argument(
        metavar="ID", help="Proposal id (decimal or 0x-hex), or #N for the N-th proposal."
    ),
]


@app.command(
    epilog=examples(
        "fogctl vote propose --title 'Raise the minimum stake' "
        "--action 'staking.setMinStake(2000)'",
        "fogctl vote propose --title 'Fund rewards' --action 'token.mint(@timelock, 50000)' "
        "--action 'staking.grantRole(REWARDER_ROLE, 0xADDRESS)'",
    )
)
@output.with_output
def propose(
    title: Annotated[str, typer.Option("--title", help="One-line title.")],
    action: Annotated[
        list[str],
        typer.Option(
            "--action",
            metavar="CALL",
            help="CONTRACT.FUNCTION(ARGS), CONTRACT one of token, staking, governor, "
            "timelock; repeat for several. Amount arguments are in FOG (2000, 5wei).",
        ),
    ],
    description: Annotated[
        str | None, typer.Option("--description", help="Longer text after the title.")
    ] = None,
    rpc_url: RpcUrlOpt = None,
    keystore: KeystoreOpt = None,
) -> None:
    """Propose actions for the timelock to execute if the vote passes.

    Needs delegated votes of at least the proposal threshold (1% of the supply at
    deployment). A malformed action is refused (exit 2) naming the part that is wrong.
    Voting opens after the voting delay.
    """
    from fogctl.chain.actions import parse_action
    from fogctl.chain.ops import propose as do_propose

    for text in action:  # syntax errors are refused before the chain is contacted
        parse_action(text)
    session = _session(rpc_url, keystore)
    _run(lambda: do_propose(session, title, action, description))


@app.command(
    epilog=examples(
        "fogctl vote cast 0xPROPOSAL for",
        "fogctl vote cast '#3' abstain",
        "fogctl vote cast 0xPROPOSAL against --reason 'too high'",
    )
)
@output.with_output
def cast(
    proposal: IdArg,
    support: Annotated[str, typer.Argument(metavar="CHOICE", help="for, against or abstain.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Say why, on chain.")] = None,
    rpc_url: RpcUrlOpt = None,
    keystore: KeystoreOpt = None,
) -> None:
    """Vote on an active proposal with the votes delegated to this account at its start.

    An account without voting power at the proposal's snapshot is refused on chain
    (delegate before a proposal starts: 'fogctl vote delegate').
    """
    from fogctl.chain.ops import cast_vote, check_proposal_ref, parse_support

    choice = parse_support(support)  # bad input is refused before the chain is contacted
    check_proposal_ref(proposal)
    session = _session(rpc_url, keystore)
    _run(lambda: cast_vote(session, proposal, choice, reason))


@app.command(
    "ls",
    epilog=examples("fogctl vote ls", "fogctl vote ls --state active --json | jq -r .id"),
)
@output.with_output
def ls(
    state: Annotated[
        str | None,
        typer.Option("--state", help="Only proposals in this state (active, queued...)."),
    ] = None,
    rpc_url: RpcUrlOpt = None,
) -> None:
    """List the governor's proposals, newest first, with state and tally."""
    from fogctl.chain.ops import list_proposals

    session = _session(rpc_url)
    found = list_proposals(session, state)
    if not found:
        output.notice("no proposals")
    output.emit(
        found,
        columns=["number", "state", "title", "votes_for", "votes_against", "vote_end", "eta", "id"],
    )


@app.command(epilog=examples("fogctl vote show 0xPROPOSAL", "fogctl vote show ID --json"))
@output.with_output
def show(proposal: IdArg, rpc_url: RpcUrlOpt = None) -> None:
    """Show one proposal: state, timeline, tally against quorum, and its actions."""
    from fogctl.chain.ops import check_proposal_ref, show_proposal

    check_proposal_ref(proposal)
    session = _session(rpc_url)
    output.emit_one(show_proposal(session, proposal))


@app.command(epilog=examples("fogctl vote queue 0xPROPOSAL"))
@output.with_output
def queue(proposal: IdArg, rpc_url: RpcUrlOpt = None, keystore: KeystoreOpt = None) -> None:
    """Queue a succeeded proposal in the timelock; it can run after the timelock delay."""
    from fogctl.chain.ops import check_proposal_ref, queue_proposal

    check_proposal_ref(proposal)
    session = _session(rpc_url, keystore)
    _run(lambda: queue_proposal(session, proposal))


@app.command(epilog=examples("fogctl vote execute 0xPROPOSAL"))
@output.with_output
def execute(proposal: IdArg, rpc_url: RpcUrlOpt = None, keystore: KeystoreOpt = None) -> None:
    """Execute a queued proposal once its timelock delay has passed (anyone may)."""
    from fogctl.chain.ops import check_proposal_ref, execute_proposal

    check_proposal_ref(proposal)
    session = _session(rpc_url, keystore)
    _run(lambda: execute_proposal(session, proposal))


@app.command(epilog=examples("fogctl vote delegate", "fogctl vote delegate 0xDELEGATE"))
@output.with_output
def delegate(
    address: Annotated[
        str | None,
        typer.Argument(
            metavar="ADDRESS", help="Who votes with this account's FOG (default: self)."
        ),
    ] = None,
    rpc_url: RpcUrlOpt = None,
    keystore: KeystoreOpt = None,
) -> None:
    """Delegate this account's voting power (to itself by default).

    FOG counts as votes only once delegated, and only for proposals that start after.
    """
    from fogctl.chain.ops import delegate as do_delegate
    from fogctl.chain.units import parse_account

    address = parse_account(address, what="ADDRESS")
    session = _session(rpc_url, keystore)
    _run(lambda: do_delegate(session, address))
