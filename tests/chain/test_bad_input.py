"""Bad input: clear one-line errors with the documented exit codes, and nothing sent."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.chain.conftest import ADDRESSES, DEV_KEYS, Chain, free_port


def nonce(chain: Chain, who: str) -> int:
    return int(chain.rpc("eth_getTransactionCount", [ADDRESSES[who], "latest"]), 16)


def one_line(res: Any) -> str:
    lines = [ln for ln in res.stderr.splitlines() if not ln.startswith("{")]
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    return lines[0]


def test_wrong_network_id_exit_2(cli: Any, chain: Chain, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOGCTL_CHAIN_CHAIN_ID", "1")
    before = nonce(chain, "deployer")
    res = cli("stake", "deposit", "1500")
    assert res.code == 2
    assert "wrong network" in one_line(res) and "31337" in res.stderr
    assert nonce(chain, "deployer") == before


def test_matching_network_id_is_accepted(
    cli: Any, chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FOGCTL_CHAIN_CHAIN_ID", "31337")
    assert cli("stake", "status", "--json").code == 0


def test_unreachable_rpc_exit_3(cli: Any) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (("stake", "status"), ("stake", "deposit", "5"), ("vote", "ls")):
        res = cli(*args, "--rpc-url", url, "--json")
        assert res.code == 3, res.stderr
        assert "unreachable" in one_line(res)
        err = json.loads(res.stderr.splitlines()[-1])
        assert err == {"kind": "error", "code": "unavailable", "exit": 3, "message": err["message"]}


def test_not_an_http_url_exit_2(cli: Any) -> None:
    res = cli("stake", "status", "--rpc-url", "ftp://example")
    assert res.code == 2 and "--rpc-url" in one_line(res)


def test_insufficient_balance_sends_nothing(cli: Any, chain: Chain) -> None:
    chain.use("stranger")
    before = nonce(chain, "stranger")
    res = cli("stake", "deposit", "1500")
    assert res.code == 1
    assert "insufficient balance" in one_line(res) and "nothing sent" in res.stderr
    assert nonce(chain, "stranger") == before


@pytest.mark.parametrize(
    ("action", "part"),
    [
        ("staking.setMinStake(abc)", "argument 1 (newMinStake) 'abc'"),
        ("stakin.setMinStake(1)", "unknown contract 'stakin'"),
        ("staking.setMinStak(1)", "no function 'setMinStak'"),
        ("staking.setMinStake(1, 2)", "takes 1 argument(s), got 2"),
        ("staking.setMinStake(1", "missing ')'"),
        ("staking.minStake()", "no function 'minStake' that changes state"),
        ("token.mint(0x1234, 5)", "argument 1 (to) '0x1234' is not an address"),
        ("staking.grantRole(NOPE_ROLE, @timelock)", "no constant 'NOPE_ROLE'"),
        ("setMinStake(2000)", "expected CONTRACT.FUNCTION(ARGS)"),
    ],
)
def test_malformed_action_exit_2_naming_the_part(
    cli: Any, chain: Chain, action: str, part: str
) -> None:
    cli("vote", "delegate", "--json")
    chain.advance(1)
    before = nonce(chain, "deployer")
    res = cli("vote", "propose", "--title", "t", "--action", action)
    assert res.code == 2, res.stderr
    assert part in one_line(res)
    assert nonce(chain, "deployer") == before


def test_propose_without_votes_refused_before_sending(cli: Any, chain: Chain) -> None:
    chain.use("voter")  # holds FOG but never delegated
    before = nonce(chain, "voter")
    res = cli("vote", "propose", "--title", "t", "--action", "staking.setMinStake(2000)")
    assert res.code == 1 and "delegate first" in one_line(res)
    assert nonce(chain, "voter") == before


def test_bad_amounts_and_ids_exit_2(cli: Any, chain: Chain) -> None:
    for args, part in (
        (("stake", "deposit", "--", "-5"), "AMOUNT '-5'"),
        (("stake", "deposit", "0"), "more than zero"),
        (("stake", "deposit", "1.0000000000000000001"), "more than 18 decimals"),
        (
            ("stake", "slash", ADDRESSES["provider"], "--fraction", "1.5", "--evidence", "x"),
            "--fraction",
        ),
        (("stake", "status", "--provider", "0xnothex"), "--provider '0xnothex'"),
        (("stake", "status", "--provider", "ab" * 20), "stake_address of its node record"),
        (("vote", "show", "abc"), "proposal id 'abc'"),
        (("vote", "cast", "1", "maybe"), "one of for, against, abstain"),
        (("stake", "chain", "advance", "soon"), "DURATION 'soon'"),
    ):
        res = cli(*args)
        assert res.code == 2, (args, res.stderr)
        assert part in one_line(res), res.stderr


def test_missing_evidence_file_exit_2(cli: Any, chain: Chain, tmp_path: Path) -> None:
    res = cli(
        "stake",
        "slash",
        ADDRESSES["provider"],
        "--fraction",
        "0.1",
        "--evidence",
        str(tmp_path / "none"),
    )
    assert res.code == 2 and "no such file" in one_line(res)


def test_unknown_proposal(cli: Any, chain: Chain) -> None:
    res = cli("vote", "show", "12345")
    assert res.code == 1 and "GovernorNonexistentProposal" in one_line(res)


def _keystore(tmp_path: Path, password: str) -> Path:
    from eth_account import Account

    path = tmp_path / "keystore.json"
    path.write_text(
        json.dumps(Account.encrypt(DEV_KEYS["provider"], password, kdf="scrypt", iterations=2))
    )
    return path


def test_locked_keystore_exit_4(
    cli: Any, chain: Chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FOGCTL_CHAIN_PRIVATE_KEY")
    path = _keystore(tmp_path, "s3cret")
    before = nonce(chain, "provider")
    res = cli("stake", "deposit", "1500", "--keystore", str(path))  # stdin is not a TTY
    assert res.code == 4 and "is locked" in one_line(res)
    monkeypatch.setenv("FOGCTL_CHAIN_KEYSTORE_PASSWORD", "wrong")
    res = cli("stake", "deposit", "1500", "--keystore", str(path))
    assert res.code == 4 and "wrong password" in one_line(res)
    assert nonce(chain, "provider") == before
    monkeypatch.setenv("FOGCTL_CHAIN_KEYSTORE_PASSWORD", "s3cret")
    res = cli("stake", "deposit", "1500", "--keystore", str(path), "--json")
    assert res.code == 0, res.stderr
    assert res.record()["sender"] == ADDRESSES["provider"]
    assert "s3cret" not in res.stdout + res.stderr


def test_local_key_is_0600_and_never_printed(
    cli: Any, chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FOGCTL_CHAIN_PRIVATE_KEY")
    res = cli("stake", "account", "--json")
    assert res.code == 0
    key_file = chain.home / "keys" / "chain.key"
    assert os.stat(key_file).st_mode & 0o777 == 0o600
    key = key_file.read_text().strip()
    rec = res.record()
    assert rec["source"] == str(key_file)
    assert key not in res.stdout + res.stderr
    again = cli("stake", "account", "--json").record()
    assert again["address"] == rec["address"]  # created once, reused
    status = cli("stake", "status", "--json")
    assert key not in status.stdout + status.stderr
    os.chmod(key_file, 0o644)
    res = cli("stake", "account")
    assert res.code == 4 and "chmod 600" in one_line(res)


def test_env_key_must_be_hex(cli: Any, chain: Chain, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOGCTL_CHAIN_PRIVATE_KEY", "not-a-key")
    res = cli("stake", "account")
    assert res.code == 2 and "not a 32-byte hex private key" in one_line(res)
    assert "not-a-key" not in res.stderr.replace("FOGCTL_CHAIN_PRIVATE_KEY", "")


def test_no_deployment_on_chain(cli: Any, chain: Chain) -> None:
    (chain.home / "chain" / "deployments" / "31337.json").unlink()
    res = cli("stake", "status")
    assert res.code == 1 and "fogctl stake deploy" in res.stderr
