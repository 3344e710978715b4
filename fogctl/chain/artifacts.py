"""The compiled contracts (ABI + bytecode) shipped with fogctl.

Built by ``contracts/build.js`` with the pinned solc-js and OpenZeppelin and committed in
``fogctl/chain/artifacts/``, so running fogctl needs neither node nor solc.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from fogctl.errors import StateError

__all__ = ["ARTIFACT_DIR", "CONTRACT_NAMES", "all_error_abis", "load_artifact"]

ARTIFACT_DIR = Path(__file__).resolve().parent / "artifacts"
CONTRACT_NAMES = (
    "FogToken",
    "FogStaking",
    "FogTimelock",
    "FogGovernor",
    "FogQuadraticGovernor",
    "FogVesting",
    "PlainToken",
)


@cache
def load_artifact(name: str) -> dict[str, Any]:
    """``{"abi": [...], "bytecode": "0x..", ...}`` for one contract."""
    path = ARTIFACT_DIR / f"{name}.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StateError(f"{path}: contract artifact missing (reinstall fogctl)") from None
    except ValueError as exc:
        raise StateError(f"{path}: damaged contract artifact: {exc}") from None
    return data


@cache
def all_error_abis() -> tuple[dict[str, Any], ...]:
    """Every custom error any of the contracts can revert with (deduplicated)."""
    seen: dict[str, dict[str, Any]] = {}
    for name in CONTRACT_NAMES:
        for entry in load_artifact(name)["abi"]:
            if entry.get("type") == "error":
                sig = entry["name"] + "(" + ",".join(i["type"] for i in entry["inputs"]) + ")"
                seen.setdefault(sig, entry)
    return tuple(seen.values())
