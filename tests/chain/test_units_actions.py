"""Sans-IO parts: FOG amounts, durations, fractions and the action parser (with fuzzing)."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fogctl.chain.actions import bind_action, parse_action
from fogctl.chain.artifacts import load_artifact
from fogctl.chain.units import format_fog, parse_duration, parse_fog, parse_fraction
from fogctl.errors import InvalidInput

ADDRS = {
    "token": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
    "staking": "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
    "governor": "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
    "timelock": "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9",
}


def abi(alias: str) -> Any:
    name = {
        "token": "FogToken",
        "staking": "FogStaking",
        "governor": "FogGovernor",
        "timelock": "FogTimelock",
    }[alias]
    return load_artifact(name)["abi"]


def test_amounts_are_exact() -> None:
    assert parse_fog("1500") == 1500 * 10**18
    assert parse_fog("0.25") == 25 * 10**16
    assert parse_fog("1500 FOG") == 1500 * 10**18
    assert parse_fog("12wei") == 12
    assert parse_fog("0.000000000000000001") == 1
    for bad in ("", "-1", "1e3", "abc", "1.5wei", "0", "1.0000000000000000001", "nan"):
        with pytest.raises(InvalidInput):
            parse_fog(bad)
    assert format_fog(1500 * 10**18) == "1500"
    assert format_fog(1) == "0.000000000000000001"
    assert format_fog(25 * 10**16) == "0.25"


@settings(deadline=None, max_examples=200)
@given(st.integers(min_value=1, max_value=2**200))
def test_format_then_parse_round_trips(wei: int) -> None:
    assert parse_fog(format_fog(wei)) == wei


def test_durations_and_fractions() -> None:
    assert parse_duration("8d") == 8 * 86400
    assert parse_duration("36h") == 36 * 3600
    assert parse_duration("90m") == 5400
    assert parse_duration("600") == 600
    assert parse_duration("2w") == 14 * 86400
    with pytest.raises(InvalidInput):
        parse_duration("soon")
    assert parse_fraction("0.1") == 100_000
    assert parse_fraction("10%") == 100_000
    assert parse_fraction("1") == 1_000_000
    for bad in ("0", "1.5", "-0.1", "x", "0.0000001", "inf", "nan"):
        with pytest.raises(InvalidInput):
            parse_fraction(bad)


def test_action_binds_amounts_in_fog_and_constants() -> None:
    b = bind_action(parse_action("staking.setMinStake(2000)"), abi("staking"), ADDRS)
    assert b.target == ADDRS["staking"] and b.signature == "setMinStake(uint256)"
    assert b.values == (2000 * 10**18,)
    b = bind_action(parse_action("staking.setMinStake(5wei)"), abi("staking"), ADDRS)
    assert b.values == (5,)
    b = bind_action(parse_action("token.mint(@timelock, 1.5)"), abi("token"), ADDRS)
    assert b.values == (ADDRS["timelock"], 15 * 10**17)
    role = bytes(range(32))
    b = bind_action(
        parse_action("staking.grantRole(SLASHER_ROLE, 0x70997970C51812dc3A010C7d01b50e0d17dc79C8)"),
        abi("staking"),
        ADDRS,
        lambda name: role,
    )
    assert b.values == (role, "0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
    b = bind_action(parse_action("governor.setVotingPeriod(3d)"), abi("governor"), ADDRS)
    assert b.values == (3 * 86400,)
    b = bind_action(parse_action("governor.relay(@staking, 0, 0x)"), abi("governor"), ADDRS)
    assert b.values == (ADDRS["staking"], 0, b"")


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ("staking.setMinStake(abc)", "argument 1 (newMinStake) 'abc'"),
        ("staking.setMinStake(1.5)", "whole"),  # not an amount parameter? it is: accepted
        ("token.mint(0x70997970c51812dc3a010c7d01b50e0d17dc79c8, 1)", None),
        ("token.mint(0x70997970C51812dc3A010C7d01b50e0d17dc79c9, 1)", "bad checksum"),
        ("staking.setSlashRecipient(treasury)", "is not an address"),
        ("governor.setVotingPeriod(2**32)", "is not a number"),
        ("governor.setVotingPeriod(4294967296)", "does not fit in uint32"),
        ("governor.setVotingPeriod(1 parsec)", "unknown unit"),
        ('token.mint(@token, "x)', "unterminated string"),
        ("token.mint(@token,, 1)", "argument 2 is empty"),
        ("token.mint(@token, 1) extra", "unexpected text after ')'"),
    ],
)
def test_action_errors_name_the_part(text: str, part: str | None) -> None:
    alias = text.split(".", 1)[0]
    if part is None:
        bind_action(parse_action(text), abi(alias), ADDRS)
        return
    if part == "whole":
        assert bind_action(parse_action(text), abi(alias), ADDRS).values == (15 * 10**17,)
        return
    with pytest.raises(InvalidInput) as err:
        bind_action(parse_action(text), abi(alias), ADDRS)
    assert part in str(err.value)


@settings(deadline=None, max_examples=200)
@given(st.text(max_size=120))
def test_fuzz_any_text_parses_or_raises_invalid_input(text: str) -> None:
    try:
        parsed = parse_action(text)
    except InvalidInput:
        return
    with contextlib.suppress(InvalidInput):
        bind_action(parsed, abi(parsed.contract), ADDRS, lambda name: b"\x00" * 32)


@settings(deadline=None, max_examples=200)
@given(
    st.sampled_from(
        [
            "token.mint",
            "staking.setMinStake",
            "governor.setVotingDelay",
            "staking.grantRole",
            "timelock.updateDelay",
        ]
    ),
    st.lists(st.text(alphabet="0123456789abcdefxABC@.,\"' ()-%wei", max_size=12), max_size=3),
)
def test_fuzz_argument_lists(head: str, args: list[str]) -> None:
    text = f"{head}({', '.join(args)})"
    try:
        parsed = parse_action(text)
        bind_action(parsed, abi(parsed.contract), ADDRS, lambda name: b"\x01" * 32)
    except InvalidInput:
        pass
