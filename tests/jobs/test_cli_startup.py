"""fogctl submit/jobs --help stay fast: no docker, wasmtime, yaml or rich at start-up."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = {"docker", "wasmtime", "yaml", "rich", "requests", "cryptography", "psutil"}


@pytest.mark.parametrize(
    "args", [["submit", "--help"], ["jobs", "--help"], ["jobs", "ls", "--help"]]
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
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in res.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert not (mods & HEAVY), sorted(mods & HEAVY)
