"""Bad input and missing components: one clear line, the documented exit code, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def _path_without_tor(tmp_path: Path) -> str:
    """A PATH holding only this Python: no tor, no tor-gencert."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(sys.executable)
    return str(bindir)


def test_tor_not_installed_exits_3_with_hint(tmp_path: Path) -> None:
    """A real process whose PATH lacks tor (and tor.binary set to look it up there)."""
    env = {
        "PATH": _path_without_tor(tmp_path),
        "FOGCTL_HOME": str(tmp_path / "home"),
        "FOGCTL_TOR_BINARY": "tor",
        "HOME": str(tmp_path),
    }
    for args in (["tor", "up"], ["tor", "testnet", "up", "--dir", str(tmp_path / "net")]):
        res = subprocess.run(
            [sys.executable, "-m", "fogctl.cli.main", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert res.returncode == 3, res.stderr
        assert "tor is not installed" in res.stderr
        assert "apt-get install tor" in res.stderr
        assert "Traceback" not in res.stderr
        assert res.stderr.count("\n") == 1


def test_default_lookup_without_tor_anywhere(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No tor on PATH nor in the sbin fallbacks: exit 3 with the hint, and --json's error."""
    from fogctl.tor import binary

    monkeypatch.setattr(binary, "SBIN_DIRS", ())
    monkeypatch.setenv("PATH", _path_without_tor(tmp_path))
    monkeypatch.delenv("FOGCTL_TOR_BINARY", raising=False)
    res = cli("tor", "up", "--json")
    assert res.code == 3
    assert '"code":"unavailable"' in res.stderr and "apt-get install tor" in res.stderr


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ("http", "virtual port"),
        ("80:127.0.0.1:99999", "target port"),
        ("80:some.host:80", "target host"),
        ("80:", "target port"),
    ],
)
def test_malformed_port_map_exits_2_naming_the_field(cli: Any, spec: str, field: str) -> None:
    res = cli("tor", "onion", "add", spec)
    assert res.code == 2
    assert field in res.stderr and "Traceback" not in res.stderr


def test_duplicate_virtual_port_exits_2(cli: Any, tmp_path: Path) -> None:
    from fogctl.errors import InvalidInput
    from fogctl.tor.onion import parse_port_map
    from fogctl.tor.onions import _ports_arg

    with pytest.raises(InvalidInput, match="virtual port 80 given twice"):
        _ports_arg([parse_port_map("80:1"), parse_port_map("80:2")])


def test_status_without_tor_exits_3(cli: Any) -> None:
    res = cli("tor", "status", "--json")
    assert res.code == 3
    assert res.record()["state"] == "stopped"
    assert "fogctl tor up" in res.stderr


def test_commands_need_a_running_tor(cli: Any) -> None:
    for args in (["tor", "circuits"], ["tor", "newnym"], ["tor", "onion", "add", "80"]):
        res = cli(*args)
        assert res.code == 3, args
        assert "tor is not running" in res.stderr


def test_bad_attach_and_options(cli: Any) -> None:
    assert cli("tor", "up", "--attach", "notaport").code == 2
    assert cli("tor", "up", "--attach", "70000").code == 2
    assert cli("tor", "testnet", "up", "--relays", "0").code == 2
    assert cli("tor", "testnet", "up", "--relays", "2", "--exits", "3").code == 2
    res = cli("tor", "onion", "rm", "not-an-onion")
    assert res.code == 2 and "v3 address" in res.stderr


def test_attach_to_nothing_exits_3(cli: Any) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = cli("tor", "up", "--attach", str(port))
    assert res.code == 3 and "unreachable" in res.stderr


def test_via_parsing() -> None:
    from fogctl.errors import InvalidInput, ServiceUnavailable
    from fogctl.tor import resolve_via

    assert resolve_via("direct") is None
    assert resolve_via("socks5://127.0.0.1:9050") == ("127.0.0.1", 9050)
    with pytest.raises(InvalidInput):
        resolve_via("carrier-pigeon")
    with pytest.raises(ServiceUnavailable, match="no tor SOCKS port"):
        resolve_via("tor")
    os.environ["FOGCTL_TOR_SOCKS"] = "127.0.0.1:9150"
    try:
        assert resolve_via("tor") == ("127.0.0.1", 9150)
    finally:
        del os.environ["FOGCTL_TOR_SOCKS"]


def test_owned_tor_started(orphaned_tor: Any) -> None:
    """Starts the orphan early; test_zz_owner.py (run last) checks that it exited."""
    assert orphaned_tor.was_running
