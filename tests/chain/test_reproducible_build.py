"""The committed artifacts are exactly what the pinned solc-js and OpenZeppelin produce.

The recompile starts with the session (tests/chain/conftest.py) and is checked here.
"""

from __future__ import annotations

import json

from fogctl.chain.artifacts import ARTIFACT_DIR, CONTRACT_NAMES, load_artifact
from tests.chain.conftest import CONTRACTS, Compile
from tests.conftest import need


def test_recompiling_gives_byte_identical_artifacts(background_compile: Compile) -> None:
    proc, out = background_compile.proc, background_compile.out
    need(proc is not None, background_compile.why_not)
    assert proc is not None
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-2000:]
    built = sorted(p.name for p in out.glob("*.json"))
    committed = sorted(p.name for p in ARTIFACT_DIR.glob("*.json"))
    assert built == committed, "artifacts differ in names: run 'node contracts/build.js'"
    for name in built:
        assert (out / name).read_bytes() == (ARTIFACT_DIR / name).read_bytes(), (
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
