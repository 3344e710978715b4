"""Keep `fogctl --help` fast: heavy libraries load only inside the commands that use them."""

from __future__ import annotations

import subprocess
import sys

HEAVY = (
    "docker",
    "web3",
    "pymoo",
    "stem",
    "kademlia",
    "wasmtime",
    "cryptography",
    "psutil",
    "rich",
    "numpy",
    "scipy",
    "matplotlib",
    "moocore",
    "nacl",
    "cbor2",
    "zeroconf",
    "aioice",
)


def imported_modules(*args: str) -> set[str]:
    res = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "fogctl.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    names = set()
    for line in res.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def test_help_imports_nothing_heavy() -> None:
    from fogctl.cli.main import available_builtins

    for args in (["--help"], *([name, "--help"] for name in available_builtins())):
        mods = imported_modules(*args)
        heavy = sorted(m for m in mods if m.split(".")[0] in HEAVY)
        assert not heavy, f"fogctl {' '.join(args)} imported {heavy[:5]}"


def test_version_does_not_import_typer() -> None:
    res = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-c",
            "import sys; sys.argv = ['fogctl', '--version']\n"
            "from fogctl.cli.main import run\nrun()",
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0
    assert "typer" not in res.stderr
