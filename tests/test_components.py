from __future__ import annotations

import json
from pathlib import Path

from fogctl.components import DEFAULT_RPC_URL, rpc_url
from fogctl.config import Config


def test_rpc_url_prefers_config_then_local_chain(tmp_path: Path) -> None:
    assert rpc_url(Config({}, {}), tmp_path) == DEFAULT_RPC_URL
    (tmp_path / "chain").mkdir()
    (tmp_path / "chain" / "node.json").write_text(json.dumps({"rpc_url": "http://127.0.0.1:9545"}))
    assert rpc_url(Config({}, {}), tmp_path) == "http://127.0.0.1:9545"
    cfg = Config({"chain.rpc_url": "http://127.0.0.1:7545"}, {})
    assert rpc_url(cfg, tmp_path) == "http://127.0.0.1:7545"
    (tmp_path / "chain" / "node.json").write_text("{torn")
    assert rpc_url(Config({}, {}), tmp_path) == DEFAULT_RPC_URL


def test_tor_control_prefers_config_then_managed_tor(tmp_path: Path) -> None:
    from fogctl.components import DEFAULT_TOR_CONTROL, tor_control_endpoint

    assert tor_control_endpoint(Config({}, {}), tmp_path) == DEFAULT_TOR_CONTROL
    (tmp_path / "tor").mkdir()
    (tmp_path / "tor" / "daemon.json").write_text(json.dumps({"control": "127.0.0.1:19051"}))
    assert tor_control_endpoint(Config({}, {}), tmp_path) == "127.0.0.1:19051"
    cfg = Config({"tor.control": "unix:///run/tor/control"}, {})
    assert tor_control_endpoint(cfg, tmp_path) == "unix:///run/tor/control"
