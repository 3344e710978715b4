"""The committed artifacts are exactly what the pinned solc-js and OpenZeppelin produce."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from fogctl.chain.artifacts import ARTIFACT_DIR, CONTRACT_NAMES, load_artifact
from tests.conftest import need

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"


def test_recompiling_gives_byte_identical_artifacts(tmp_path: Path) -> None:
    node = shutil.which("node")
    need(node is not None, "node is not installed (.ci/run needs it for the contracts)")
    need(
        (CONTRACTS / "node_modules" / "solc").is_dir()
        and (CONTRACTS / "node_modules" / "@openzeppelin" / "contracts").is_dir(),
        "contracts/node_modules missing ('npm ci' in contracts/; .ci/run does it)",
    )
    assert node is not None
    res = subprocess.run(
        [node, str(CONTRACTS / "build.js"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    built = sorted(p.name for p in tmp_path.glob("*.json"))
    committed = sorted(p.name for p in ARTIFACT_DIR.glob("*.json"))
    assert built == committed, "artifacts differ in names: run 'node contracts/build.js'"
    for name in built:
        assert (tmp_path / name).read_bytes() == (ARTIFACT_DIR / name).read_bytes(), (
            f"{name} differs from a fresh compile: run 'node contracts/build.js' and commit"
        )


def test_pinned_versions_match_the_artifacts() -> None:
    package = json.loads((CONTRACTS / "package.json").read_text())
    lock = json.loads((CONTRACTS / "package-lock.json").read_text())
    deps = package["devDependencies"]
    for name in ("solc", "@openzeppelin/contracts", "@foundry-rs/anvil"):
        assert deps[name][0].isdigit(), f"{name} must be pinned exactly, not {deps[name]}"
        assert lock["packages"][f"node_modules/{name}"]["version"] == deps[name]
    assert deps["@openzeppelin/contracts"].startswith("5.")
    for name in CONTRACT_NAMES:
        art = load_artifact(name)
        assert art["compiler"]["version"].startswith(deps["solc"] + "+")
        assert art["compiler"]["settings"]["evmVersion"] == "cancun"
        assert art["bytecode"].startswith("0x") and len(art["bytecode"]) > 100
        # EIP-170: the runtime code must fit a real chain's 24 KiB limit.
        assert (len(art["deployedBytecode"]) - 2) // 2 <= 24576, name
