"""Sensors: real psutil readings on this machine, sysfs adapters, scenario files."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from fogctl.errors import InvalidInput
from fogctl.harvest.sensors import (
    ABSENT,
    OK,
    UNKNOWN,
    CpuSampler,
    FileSource,
    SystemSource,
    _logind_idle,
    read_ac,
    read_battery_wh,
)


def test_system_source_reports_what_psutil_sees() -> None:
    r = SystemSource(metered=False).read()
    bat = psutil.sensors_battery()
    if bat is None:
        assert r.battery_percent.status == ABSENT and r.charging.status == ABSENT
    else:
        assert r.battery_percent.status == OK
        assert abs(r.battery_percent.value - bat.percent) < 2
    temps = psutil.sensors_temperatures()
    assert (r.temperature.status == ABSENT) == (not temps)
    if temps:
        assert r.temperature.status in (OK, UNKNOWN)
    assert r.cpu_other.status == OK and 0 <= r.cpu_other.value <= 100
    assert r.mem_total.value == psutil.virtual_memory().total
    assert r.idle_seconds.status in (OK, ABSENT, UNKNOWN)
    assert r.metered.status == UNKNOWN  # not checked when the policy allows metered


def _spinner(seconds: float) -> subprocess.Popen[bytes]:
    code = f"import time\nt=time.time()+{seconds}\nwhile time.time()<t: pass"
    return subprocess.Popen([sys.executable, "-c", code])


def test_cpu_sampler_measures_an_interval_and_subtracts_our_own_task() -> None:
    sampler = CpuSampler(min_interval=0.05)
    p = _spinner(3.0)
    try:
        time.sleep(0.2)
        proc = psutil.Process(p.pid)
        t = proc.cpu_times()
        c0, w0 = t.user + t.system, time.monotonic()
        sampler.sample(c0)
        time.sleep(0.8)
        t = proc.cpu_times()
        c1, w1 = t.user + t.system, time.monotonic()
        total, other = sampler.sample(c1)
    finally:
        p.kill()
        p.wait()
    ncpu = psutil.cpu_count() or 1
    # the spinner's share of the whole machine, measured from its own CPU time
    spin = 100 * (c1 - c0) / (w1 - w0) / ncpu
    assert spin > 5
    assert total >= spin * 0.8  # the machine's total includes the spinner
    assert other <= total - spin * 0.8  # "other" does not


def test_cpu_sampler_persists_between_processes(tmp_path: Path) -> None:
    f = tmp_path / "cpu.sample"
    CpuSampler(f, min_interval=0.05).sample()
    assert f.exists()
    t0 = time.monotonic()
    total, _ = CpuSampler(f, min_interval=0.05).sample()  # uses the stored sample
    assert time.monotonic() - t0 < 0.5 and 0 <= total <= 100


def _supply(root: Path, name: str, **files: str) -> None:
    d = root / name
    d.mkdir(parents=True)
    for k, v in files.items():
        (d / k).write_text(v + "\n")


def test_sysfs_ac_and_battery_capacity(tmp_path: Path) -> None:
    assert read_ac(tmp_path).status == ABSENT
    assert read_battery_wh(tmp_path).status == ABSENT
    _supply(tmp_path, "AC", type="Mains", online="0")
    _supply(tmp_path, "BAT0", type="Battery", energy_full="50000000")
    _supply(tmp_path, "BAT1", type="Battery", charge_full="2000000", voltage_min_design="11100000")
    ac = read_ac(tmp_path)
    assert ac.status == OK and ac.value is False
    (tmp_path / "AC" / "online").write_text("1\n")
    assert read_ac(tmp_path).value is True
    assert read_battery_wh(tmp_path).value == pytest.approx(50 + 22.2)


def test_logind_idle_parsing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("fogctl.harvest.sensors.Path.iterdir", lambda self: iter([self / "seat0"]))
    monkeypatch.setattr("shutil.which", lambda name: "/bin/" + name)

    class Res:
        def __init__(self, out: str) -> None:
            self.stdout = out

    def fake(argv: list[str], **kw: Any) -> Res:
        if argv[1] == "list-sessions":
            return Res("2 1000 alice seat0 tty2\n5 1000 alice - pts/1\n")
        if argv[2] == "2":
            return Res("Seat=seat0\nIdleHint=yes\nIdleSinceHint=1000000000\n")
        return Res("Seat=\nIdleHint=no\nIdleSinceHint=0\n")

    r = _logind_idle(1600.0, run=fake)
    assert r is not None and r.status == OK and r.value == 600.0  # the ssh session is ignored


def test_sensor_file_absent_unknown_and_errors(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("battery: null\ntemperature: 50\ncpu_other: unknown\n")
    r = FileSource(f).read()
    assert r.battery_percent.status == ABSENT
    assert r.temperature.value == 50 and r.cpu_other.status == UNKNOWN
    assert r.idle_seconds.status == UNKNOWN  # not in the file
    for bad in ("batery: 3\n", "charging: 1\n", "temperature: hot\n", "- 1\n", "a: [\n"):
        f.write_text(bad)
        with pytest.raises(InvalidInput, match=str(f)):
            FileSource(f).read()
    with pytest.raises(InvalidInput):
        FileSource(tmp_path / "missing").read()


def test_cpu_sampler_new_task_counter_restarts() -> None:
    """A second task's CPU counter starts again from 0: it is still our own load."""
    sampler = CpuSampler(min_interval=0.05)
    p = _spinner(2.0)
    try:
        time.sleep(0.1)
        proc = psutil.Process(p.pid)
        t0 = proc.cpu_times()
        sampler.sample(5.0)  # the previous task ended having used 5 s
        w0 = time.monotonic()
        time.sleep(0.8)
        t1 = proc.cpu_times()
        used = (t1.user + t1.system) - (t0.user + t0.system)
        total, other = sampler.sample(used)  # the new task's counter: < 5 s
        spin = 100 * used / (time.monotonic() - w0)
    finally:
        p.kill()
        p.wait()
    ncpu = psutil.cpu_count() or 1
    assert spin > 5
    assert other <= total - spin / ncpu * 0.8
