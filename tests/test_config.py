from __future__ import annotations

from pathlib import Path

import pytest

from fogctl.config import env_name, load_config
from fogctl.errors import InvalidInput


def test_precedence_flag_env_file_default(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("harvest:\n  min_battery: 40\n  idle: 5m\n")
    cfg = load_config(tmp_path, environ={"FOGCTL_HARVEST_MIN_BATTERY": "60"})
    assert cfg.get("harvest.min_battery", 50, flag=70) == 70
    assert cfg.source("harvest.min_battery", flag=70) == "flag"
    assert cfg.get("harvest.min_battery", 50) == 60  # env coerced to the default's type
    assert cfg.source("harvest.min_battery") == "env"
    assert cfg.get("harvest.idle", "1m") == "5m"
    assert cfg.source("harvest.idle") == "file"
    assert cfg.get("harvest.max_temp", 70) == 70
    assert cfg.source("harvest.max_temp") == "default"
    assert cfg.get("harvest.min_battery", 50, flag=None) == 60  # an unset flag is no flag


def test_env_name() -> None:
    assert env_name("chain.rpc_url") == "FOGCTL_CHAIN_RPC_URL"


def test_bad_env_value_and_bad_yaml(tmp_path: Path) -> None:
    cfg = load_config(tmp_path, environ={"FOGCTL_HARVEST_MIN_BATTERY": "lots"})
    with pytest.raises(InvalidInput, match="FOGCTL_HARVEST_MIN_BATTERY: expected an integer"):
        cfg.get("harvest.min_battery", 50)
    (tmp_path / "config.yaml").write_text("a: [1, 2\nb: 3\n")
    with pytest.raises(InvalidInput, match=r"config\.yaml:\d+"):
        load_config(tmp_path, environ={})
    (tmp_path / "config.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(InvalidInput, match="expected a mapping"):
        load_config(tmp_path, environ={})
