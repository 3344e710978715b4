"""Bad input is refused before any chain is contacted (no anvil needed)."""

from __future__ import annotations

import pytest


def test_bad_vote_choice_is_exit_2_without_a_chain(cli) -> None:
    # Nothing listens on this port: were the chain contacted first, the exit would be 3.
    res = cli("vote", "cast", "1", "maybe", "--rpc-url", "http://127.0.0.1:9")
    assert res.code == 2, res.stderr
    assert "maybe" in res.stderr and "for, against, abstain" in res.stderr


ONE = "0x" + "00" * 19 + "01"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["stake", "transfer", "nope", "5"], "TO 'nope': not an address"),
        (["stake", "transfer", ONE, "lots"], "AMOUNT 'lots'"),
        (["stake", "status", "--provider", "0x1234"], "--provider '0x1234'"),
        (
            ["stake", "slash", ONE, "--fraction", "10%", "--evidence", "/nonexistent"],
            "--evidence /nonexistent: no such file",
        ),
        (["stake", "slash", "0xAb" + "00" * 19, "--fraction", "1%", "--evidence", "/"], "PROVIDER"),
        (["stake", "vesting", "status", "nope"], "ADDRESS 'nope'"),
        (["stake", "vesting", "release", "nope"], "ADDRESS 'nope'"),
        (
            ["stake", "vesting", "create", ONE, "5", "--duration", "1d", "--cliff", "2d"],
            "--cliff: longer than --duration",
        ),
        (["vote", "propose", "--title", "t", "--action", "bogus"], "action 'bogus'"),
        (["vote", "show", "#x"], "proposal '#x'"),
        (["vote", "queue", "0xzz"], "proposal id '0xzz'"),
        (["vote", "execute", "#0"], "proposal '#0'"),
        (["vote", "cast", "0", "for"], "proposal id '0': out of range"),
        (["vote", "delegate", "12"], "ADDRESS '12'"),
    ],
)
def test_bad_arguments_are_exit_2_without_a_chain(cli, args: list[str], says: str) -> None:
    res = cli(*args, "--rpc-url", "http://127.0.0.1:9")
    assert res.code == 2, res.stderr
    assert says in res.stderr
    assert "unreachable" not in res.stderr
