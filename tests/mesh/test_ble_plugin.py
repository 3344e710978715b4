"""The optional BLE plugin (plugins/ble) in CI: its sans-IO framing carries real
bundles through the mesh decoder at BLE MTUs, and its entry point is declared where
'mesh serve --transport ble' looks. The radio side (bleak) is untested: no radio."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

from fogctl.mesh.bundle import decode_bundle, new_bundle

PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "ble"
sys.path.insert(0, str(PLUGIN))

from fogctl_ble.framing import Chunker, Reassembler  # noqa: E402


@pytest.mark.parametrize("mtu", [23, 247, 517])
def test_bundles_cross_ble_framing(mtu: int) -> None:
    b = new_bundle("dtn://a/", "dtn://b/", bytes(range(256)) * 20, now=10**9)
    r = Reassembler()
    out = [r.feed(c) for c in Chunker(mtu).chunks(b.to_bytes())]
    assert out[-1] is not None and decode_bundle(out[-1]) == b


def test_entry_point_is_declared() -> None:
    meta = tomllib.loads((PLUGIN / "pyproject.toml").read_text())
    eps = meta["project"]["entry-points"]["fogctl.transports"]
    assert eps == {"ble": "fogctl_ble:BleTransport"}
    assert "untested" in meta["project"]["description"]
