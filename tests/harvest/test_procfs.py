"""/proc and /sys readers: the same figures as psutil on this machine; sysfs layouts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from fogctl.harvest import procfs
from fogctl.harvest.sensors import ABSENT, OK, UNKNOWN, read_temperature

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc only")


@linux
def test_cpu_times_match_psutil() -> None:
    ours = procfs.cpu_times()
    t = psutil.cpu_times()
    assert ours is not None
    total = sum(t) - t.guest - t.guest_nice
    busy = total - t.idle - t.iowait
    # two reads a moment apart: the counters only grow by a few ticks per CPU
    slack = 0.5 * (os.cpu_count() or 1)
    assert abs(ours[1] - total) < slack and abs(ours[0] - busy) < slack


@linux
def test_process_cpu_seconds_matches_psutil() -> None:
    code = "import time\nt=time.process_time()+0.3\nwhile time.process_time()<t: pass\n"
    p = subprocess.Popen([sys.executable, "-c", code + "time.sleep(30)"])
    try:
        end = time.monotonic() + 20
        while (procfs.process_cpu_seconds(p.pid) or 0) < 0.3 and time.monotonic() < end:
            time.sleep(0.02)
        ours = procfs.process_cpu_seconds(p.pid)
        t = psutil.Process(p.pid).cpu_times()
        assert ours is not None and ours >= 0.3
        assert abs(ours - (t.user + t.system)) < 0.05
    finally:
        p.kill()
        p.wait()
    assert procfs.process_cpu_seconds(p.pid) is None  # reaped: gone


def test_process_cpu_seconds_parses_a_name_with_spaces_and_parens(tmp_path: Path) -> None:
    (tmp_path / "42").mkdir()
    fields = ["S"] + ["0"] * 10 + ["250", "150"] + ["0"] * 30
    (tmp_path / "42" / "stat").write_text("42 (a b) (c)) " + " ".join(fields) + "\n")
    hz = os.sysconf("SC_CLK_TCK")
    assert procfs.process_cpu_seconds(42, tmp_path) == pytest.approx(400 / hz)
    (tmp_path / "42" / "stat").write_text("42 (x) S 1\n")
    assert procfs.process_cpu_seconds(42, tmp_path) is None


def test_cpu_times_rejects_a_malformed_stat(tmp_path: Path) -> None:
    (tmp_path / "stat").write_text("cpu  a b c d\n")
    assert procfs.cpu_times(tmp_path) is None
    (tmp_path / "stat").write_text("cpu  100 0 50 800 50 0 0 0 7 0\n")
    hz = os.sysconf("SC_CLK_TCK")
    assert procfs.cpu_times(tmp_path) == (150 / hz, 1000 / hz)
    assert procfs.cpu_times(tmp_path / "missing") is None


@linux
def test_battery_temperatures_and_memory_match_psutil() -> None:
    bat, ours = psutil.sensors_battery(), procfs.battery()
    assert (bat is None) == (ours is None)
    if bat is not None and ours is not None:
        assert abs(bat.percent - ours[0]) < 2
    temps = psutil.sensors_temperatures()
    mine = procfs.temperatures()
    assert {k for k, v in mine.items() if v} == set(temps)
    assert procfs.mem_total() == psutil.virtual_memory().total


def _supply(root: Path, entry: str, **files: str) -> None:
    d = root / entry
    d.mkdir(parents=True)
    for k, v in files.items():
        (d / k).write_text(v + "\n")


def test_battery_energy_ratio_and_mains_online(tmp_path: Path) -> None:
    _supply(tmp_path, "AC", type="Mains", online="0")
    _supply(
        tmp_path, "BAT0", type="Battery", energy_now="30000000", energy_full="40000000",
        capacity="99", status="Discharging",
    )  # fmt: skip
    assert procfs.battery(tmp_path) == (75.0, False)
    (tmp_path / "AC" / "online").write_text("1\n")
    assert procfs.battery(tmp_path) == (75.0, True)


def test_battery_capacity_and_status_without_a_mains_supply(tmp_path: Path) -> None:
    _supply(tmp_path, "BAT1", type="Battery", capacity="42", status="Not charging")
    assert procfs.battery(tmp_path) == (42.0, True)  # on AC, charging held back
    (tmp_path / "BAT1" / "status").write_text("Discharging\n")
    assert procfs.battery(tmp_path) == (42.0, False)
    (tmp_path / "BAT1" / "status").write_text("Unknown\n")
    assert procfs.battery(tmp_path) == (42.0, None)  # nothing says: unknown, not guessed
    (tmp_path / "BAT1" / "capacity").unlink()
    assert procfs.battery(tmp_path) is None  # no reading at all
    assert procfs.battery(tmp_path / "none") is None


def test_battery_charge_ratio_used_when_energy_files_are_missing(tmp_path: Path) -> None:
    _supply(tmp_path, "BAT0", charge_now="1000", charge_full="4000", status="Charging")
    assert procfs.battery(tmp_path) == (25.0, True)


def test_temperatures_hwmon_first_then_thermal_zones(tmp_path: Path) -> None:
    hwmon, thermal = tmp_path / "hwmon", tmp_path / "thermal"
    _supply(thermal, "thermal_zone0", type="x86_pkg_temp", temp="51000")
    assert procfs.temperatures(hwmon, thermal) == {"x86_pkg_temp": [51.0]}
    _supply(hwmon, "hwmon0", name="coretemp", temp1_input="48000", temp2_input="61500")
    _supply(hwmon, "hwmon1", name="acpitz", temp1_input="bogus")
    _supply(hwmon / "hwmon2", "device", temp1_input="30000", temp1_max="90000")
    (hwmon / "hwmon2" / "name").write_text("nvme\n")
    got = procfs.temperatures(hwmon, thermal)
    assert got == {"acpitz": [], "coretemp": [48.0, 61.5], "nvme": [30.0]}  # acpitz: unknown


def test_read_temperature_prefers_cpu_chips_and_tells_absent_from_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hwmon, thermal = tmp_path / "hwmon", tmp_path / "thermal"
    monkeypatch.setattr(procfs, "HWMON", hwmon)
    monkeypatch.setattr(procfs, "THERMAL", thermal)
    assert read_temperature(linux=True).status == ABSENT  # no sensor at all
    _supply(hwmon, "hwmon0", name="nvme", temp1_input="80000")
    _supply(hwmon, "hwmon1", name="k10temp", temp1_input="55000")
    r = read_temperature(linux=True)
    assert r.status == OK and r.value == 55.0 and r.source == "sysfs:k10temp"
    (hwmon / "hwmon1" / "temp1_input").write_text("?\n")  # the CPU sensor fails to read
    r = read_temperature(linux=True)
    assert r.status == UNKNOWN  # not the disk's 80 deg C, and not "absent"
