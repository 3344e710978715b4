"""Power model: P = alpha + beta * util, RAPL counters, energy and battery drain."""

from __future__ import annotations

from pathlib import Path

import pytest

from fogctl.errors import ServiceUnavailable
from fogctl.harvest.power import (
    DESKTOP,
    LAPTOP,
    PowerModel,
    calibrate,
    model_for,
    rapl_domains,
    read_rapl_uj,
)


def test_model_math() -> None:
    m = PowerModel(10.0, 40.0, "t")
    assert m.watts(0) == 10 and m.watts(0.5) == 30 and m.watts(2) == 50
    assert m.task_energy_j(cpu_seconds=8, ncpu=4) == 80.0  # 2 s of the whole machine
    assert m.drain_pct_per_h(25.0, 50.0) == 50.0
    assert m.drain_pct_per_h(25.0, None) is None
    assert model_for(None, None, True) is LAPTOP and model_for(None, 1, False) is DESKTOP
    assert model_for(3, 7, False).source == "calibrated"


def _zone(root: Path, name: str, energy: int, wrap: int = 2**32) -> None:
    d = root / name
    d.mkdir(parents=True)
    (d / "energy_uj").write_text(f"{energy}\n")
    (d / "max_energy_range_uj").write_text(f"{wrap}\n")


def test_rapl_zones_and_counters(tmp_path: Path) -> None:
    _zone(tmp_path, "intel-rapl:0", 1000)
    _zone(tmp_path, "intel-rapl:1", 500)
    _zone(tmp_path, "intel-rapl:0:0", 7)  # a subzone (core) is part of the package
    zones = rapl_domains(tmp_path)
    assert [z.name for z in zones] == ["intel-rapl:0", "intel-rapl:1"]
    assert read_rapl_uj(zones) == (1500, 2 * 2**32)


def test_calibrate_needs_rapl(tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailable, match="RAPL"):
        calibrate(0.1, tmp_path)
