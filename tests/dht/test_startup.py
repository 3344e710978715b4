"""`fogctl dht ... --help` stays fast: no heavy library is imported to show help."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("kademlia", "rpcudp", "umsgpack", "cryptography", "zeroconf", "aioice", "rich", "psutil")


@pytest.mark.parametrize(
    "args", [["dht", "--help"], ["dht", "serve", "--help"], ["dht", "connect", "--help"]]
)
def test_help_imports_nothing_heavy(args: list[str]) -> None:
    res = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "fogctl.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    mods = {
        line.rsplit("|", 1)[1].strip()
        for line in res.stderr.splitlines()
        if line.startswith("import time:")
    }
    heavy = sorted(m for m in mods if m.split(".")[0] in HEAVY)
    assert not heavy, heavy[:5]
