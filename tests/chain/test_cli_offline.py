"""Bad input is refused before any chain is contacted (no anvil needed)."""

from __future__ import annotations


def test_bad_vote_choice_is_exit_2_without_a_chain(cli) -> None:
    # Nothing listens on this port: were the chain contacted first, the exit would be 3.
    res = cli("vote", "cast", "1", "maybe", "--rpc-url", "http://127.0.0.1:9")
    assert res.code == 2, res.stderr
    assert "maybe" in res.stderr and "for, against, abstain" in res.stderr
