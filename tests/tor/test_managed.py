"""The managed tor, joined to the session's private network, driven through the CLI.

Order matters only in the last test (it kills tor and checks recovery); every test
leaves tor running.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.tor.conftest import HttpServer, fetch_onion, log_rend_info, poll

SEEN: list[str] = []  # every stdout/stderr of this module, checked for key material


def run(cli: Any, *args: str) -> Any:
    res = cli(*args)
    SEEN.extend([res.stdout, res.stderr])
    return res


def test_status_reports_version_bootstrap_socks_circuits(in_tor_home: Path, cli: Any) -> None:
    res = run(cli, "tor", "status", "--json")
    assert res.code == 0, res.stderr
    rec = res.record()
    assert rec["kind"] == "tor" and rec["state"] == "running" and rec["managed"]
    assert re.match(r"^\d+\.\d+\.\d+", rec["version"])
    assert rec["bootstrap"] == 100 and rec["circuit_established"]
    assert re.match(r"^127\.0\.0\.1:\d+$", rec["socks"])
    assert rec["circuits"] >= 1
    assert rec["control"].startswith("unix://") and rec["control"].endswith("control.sock")
    assert rec["data_dir"] == str(in_tor_home / "tor" / "data")
    assert stat.S_IMODE((in_tor_home / "tor" / "data").stat().st_mode) == 0o700


def test_up_is_idempotent(in_tor_home: Path, cli: Any) -> None:
    before = run(cli, "tor", "status", "--json").record()
    res = run(cli, "tor", "up", "--json")
    assert res.code == 0, res.stderr
    assert res.record()["pid"] == before["pid"]
    assert "already running" in res.stderr
    assert "bootstrap" not in res.stderr  # progress only on a terminal
    res = run(cli, "tor", "up", "--testnet", "/elsewhere")
    assert res.code == 1 and "already runs on" in res.stderr
    res = run(cli, "tor", "up", "--attach", "9051")
    assert res.code == 1 and "already runs tor" in res.stderr


def test_circuits_records(in_tor_home: Path, cli: Any, testnet: Any) -> None:
    res = run(cli, "tor", "circuits", "--json")
    assert res.code == 0, res.stderr
    recs = res.records()
    assert recs and all(r["kind"] == "circuit" for r in recs)
    names = {n.name: n.fingerprint for n in testnet.nodes}
    built = [r for r in recs if r["status"] == "BUILT"]
    assert any(len(r["path"]) == 3 for r in built)
    for r in recs:
        assert r["id"] and r["purpose"]
        for hop in r["path"]:
            assert re.fullmatch(r"[0-9A-F]{40}", hop["fingerprint"])
            assert names[hop["nickname"]] == hop["fingerprint"]


def test_newnym(in_tor_home: Path, cli: Any) -> None:
    res = run(cli, "tor", "newnym")
    assert res.code == 0, res.stderr
    assert "circuits" in res.stderr


def test_ephemeral_onion_reached_by_address(
    in_tor_home: Path, cli: Any, testnet: Any, http_server: HttpServer
) -> None:
    res = run(cli, "tor", "onion", "add", f"80:127.0.0.1:{http_server.port}", "--json")
    assert res.code == 0, res.stderr
    rec = res.record()
    assert rec["kind"] == "onion" and not rec["persistent"] and rec["key_file"] is None
    assert re.fullmatch(r"[a-z2-7]{55}d\.onion", rec["address"])
    log = in_tor_home / "tor" / "tor.log"
    assert fetch_onion(testnet, rec["address"], 80, service_log=log) == http_server.body
    listed = {r["address"]: r for r in run(cli, "tor", "onion", "ls", "--json").records()}
    assert listed[rec["address"]]["active"]
    res = run(cli, "tor", "onion", "rm", rec["address"], "--json")
    assert res.code == 0, res.stderr
    listed = {r["address"] for r in run(cli, "tor", "onion", "ls", "--json").records()}
    assert rec["address"] not in listed


def test_fogctl_address_derivation_equals_tors(in_tor_home: Path) -> None:
    """Let tor make a key, then derive the address from it with fogctl's code."""
    from nacl.bindings import crypto_scalarmult_ed25519_base_noclamp

    from fogctl.state import State
    from fogctl.tor import daemon
    from fogctl.tor.onion import onion_address

    with daemon.controller(State()) as ctl:
        resp = ctl.create_ephemeral_hidden_service({80: "127.0.0.1:9"}, key_content="ED25519-V3")
        try:
            assert resp.private_key_type == "ED25519-V3"
            expanded = base64.b64decode(resp.private_key)
            pub = crypto_scalarmult_ed25519_base_noclamp(expanded[:32])
            assert onion_address(pub) == resp.service_id + ".onion"
        finally:
            ctl.remove_ephemeral_hidden_service(resp.service_id)


def test_persistent_onion_survives_restart(
    in_tor_home: Path, cli: Any, testnet: Any, http_server: HttpServer
) -> None:
    res = run(cli, "tor", "onion", "add", f"8080:{http_server.port}", "--persistent", "--json")
    assert res.code == 0, res.stderr
    rec = res.record()
    key_file = Path(rec["key_file"])
    assert rec["persistent"] and key_file.parent == in_tor_home / "keys"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    log = in_tor_home / "tor" / "tor.log"
    assert fetch_onion(testnet, rec["address"], 8080, service_log=log) == http_server.body
    # The address is fogctl's own derivation from the stored key (tor agreed on add).
    from fogctl.tor.onion import onion_address
    from fogctl.tor.onions import load_seed

    assert onion_address(load_seed(key_file)[1]) == rec["address"]

    assert run(cli, "tor", "down", "--json").record()["state"] == "stopped"
    assert run(cli, "tor", "status").code == 3
    res = run(cli, "tor", "up", "--json")
    assert res.code == 0, res.stderr
    assert "restored 1 persistent" in res.stderr
    listed = {r["address"]: r for r in run(cli, "tor", "onion", "ls", "--json").records()}
    assert listed[rec["address"]]["active"] and listed[rec["address"]]["persistent"]
    from fogctl.state import State
    from fogctl.tor import daemon

    with daemon.controller(State()) as ctl:  # the new tor logs its onion chatter too
        log_rend_info(ctl, in_tor_home / "tor")
    # A client that still holds the old instance's descriptor reaches the new instance
    # on its own (its introductions fail, it fetches the new descriptor): no NEWNYM.
    assert fetch_onion(testnet, rec["address"], 8080, service_log=log) == http_server.body
    _check_no_key_material(key_file, in_tor_home)


def _check_no_key_material(key_file: Path, home: Path) -> None:
    from fogctl.tor.onion import expand_seed
    from fogctl.tor.onions import load_seed

    seed, _ = load_seed(key_file)
    pem_body = "".join(key_file.read_text().splitlines()[1:-1])
    secrets = [
        seed.hex(),
        base64.b64encode(expand_seed(seed)).decode(),
        pem_body,
        base64.b64encode(seed).decode(),
    ]
    logs = [(home / "tor" / "tor.log").read_text(errors="replace")]
    logs += [p.read_text(errors="replace") for p in (home / "tor").glob("*.json")]
    for text in SEEN + logs:
        for secret in secrets:
            assert secret not in text


def test_route_helper_via_tor(in_tor_home: Path, http_server: HttpServer) -> None:
    """fogctl.tor.open_connection(via="tor") goes through the managed tor's SOCKS."""
    import asyncio

    from fogctl.tor import open_connection

    async def get() -> bytes:
        reader, writer = await open_connection("127.0.0.1", http_server.port, via="tor")
        writer.write(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        data = await reader.read()
        writer.close()
        return data.partition(b"\r\n\r\n")[2]

    assert poll(lambda: asyncio.run(get()), timeout=30, what="fetch via tor") == http_server.body


def test_wrong_password_and_cookie_are_refused(
    in_tor_home: Path, cli: Any, testnet: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = run(cli, "tor", "status", "--password", "not-the-password")
    assert res.code == 4, res.stderr
    assert "not-the-password" not in res.stderr
    bad = tmp_path / "cookie"
    bad.write_bytes(os.urandom(32))
    res = run(cli, "tor", "status", "--cookie", str(bad))
    assert res.code == 4, res.stderr
    assert "refused" in res.stderr
    # attaching to another tor (the testnet client) with a wrong password: exit 4
    monkeypatch.setenv("FOGCTL_HOME", str(tmp_path / "other"))
    res = run(cli, "tor", "up", "--attach", str(testnet.client.control_port), "--password", "x")
    assert res.code == 4, res.stderr
    res = run(cli, "tor", "up", "--attach", str(testnet.client.control_port), "--json")
    assert res.code == 0, res.stderr
    assert res.record()["managed"] is False and res.record()["bootstrap"] == 100


def test_killed_tor_is_detected_and_up_recovers(in_tor_home: Path, cli: Any) -> None:
    pid = run(cli, "tor", "status", "--json").record()["pid"]
    os.kill(pid, signal.SIGKILL)
    from fogctl.tor import proc

    poll(lambda: not proc.pid_alive(pid), timeout=5, what="tor to die", interval=0.05)
    res = run(cli, "tor", "status", "--json")
    assert res.code == 3
    assert res.record()["state"] == "crashed"
    assert "crashed or was killed" in res.stderr
    res = run(cli, "tor", "up", "--json")
    assert res.code == 0, res.stderr
    rec = res.record()
    assert rec["state"] == "running" and rec["pid"] != pid
    assert json.loads((in_tor_home / "tor" / "daemon.json").read_text())["pid"] == rec["pid"]


def test_attach_with_the_right_password(
    cli: Any, testnet: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tor that also accepts a control password: the right one attaches, a wrong one is 4."""
    import subprocess

    from fogctl.tor.binary import find_tor
    from fogctl.tor.control import open_controller

    hashed = (
        subprocess.run(
            [find_tor(), "--quiet", "--hash-password", "s3cret-pass"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    assert hashed.startswith("16:")
    ctl = open_controller(("127.0.0.1", testnet.client.control_port))
    try:
        ctl.set_conf("HashedControlPassword", hashed)
        monkeypatch.setenv("FOGCTL_HOME", str(tmp_path / "pw"))
        port = str(testnet.client.control_port)
        res = run(cli, "tor", "up", "--attach", port, "--password", "wrong", "--json")
        assert res.code == 4, res.stderr
        monkeypatch.setenv("FOGCTL_TOR_PASSWORD", "s3cret-pass")
        res = run(cli, "tor", "up", "--attach", port, "--json")
        assert res.code == 0, res.stderr
        assert res.record()["managed"] is False
        res = run(cli, "tor", "circuits", "--json")  # later commands reuse the password
        assert res.code == 0 and res.records()
        assert all("s3cret-pass" not in text for text in SEEN)
    finally:
        ctl.reset_conf("HashedControlPassword")
        ctl.close()
