"""Linux sensor readings straight from ``/proc`` and ``/sys`` (no psutil import).

``fogctl harvest status`` runs every minute from a timer, and importing psutil costs
about as much as everything else harvest does, so on Linux the few figures it needs
are read from the files psutil itself reads, with psutil's semantics:

* CPU times from the first line of ``/proc/stat`` (``psutil.cpu_times``);
* a process's CPU seconds from ``/proc/PID/stat`` (``Process.cpu_times``);
* the battery from ``/sys/class/power_supply`` (``psutil.sensors_battery``: the first
  ``BAT*``/``*battery*`` supply, energy or charge ratio, else ``capacity``);
* temperatures from ``/sys/class/hwmon`` (``psutil.sensors_temperatures``), else the
  ``/sys/class/thermal`` zones;
* total memory from ``sysconf`` (``psutil.virtual_memory().total``).

Every function returns ``None`` where the interface is missing (not Linux, /proc not
mounted), and the caller falls back to psutil. ``tests/harvest/test_sensors.py`` checks
each against psutil on the machine running the tests.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = [
    "Battery",
    "available",
    "battery",
    "cpu_times",
    "mem_total",
    "process_cpu_seconds",
    "temperatures",
]

PROC = Path("/proc")
POWER_SUPPLY = Path("/sys/class/power_supply")
HWMON = Path("/sys/class/hwmon")
THERMAL = Path("/sys/class/thermal")

_TEMP = re.compile(r"temp\d+_")

# (percent, plugged): plugged is None when nothing says so
Battery = tuple[float, bool | None]


def _ticks() -> int:
    try:
        return os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError, AttributeError):
        return 100


def available(proc: Path = PROC) -> bool:
    """True where ``/proc/stat`` can be read (Linux with procfs mounted)."""
    return os.access(proc / "stat", os.R_OK)


def cpu_times(proc: Path = PROC) -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine since boot; ``None`` if unreadable.

    Idle is ``idle + iowait``; ``guest`` and ``guest_nice`` are already counted in
    ``user`` and ``nice``, so they are left out of the total (as psutil does).
    """
    try:
        with open(proc / "stat", "rb") as f:
            line = f.readline()
    except OSError:
        return None
    parts = line.split()
    if not parts or parts[0] != b"cpu":
        return None
    try:
        v = [int(x) for x in parts[1:]]
    except ValueError:
        return None
    if len(v) < 4:
        return None
    total = sum(v[:8])  # user nice system idle iowait irq softirq steal
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    hz = _ticks()
    return (total - idle) / hz, total / hz


def process_cpu_seconds(pid: int, proc: Path = PROC) -> float | None:
    """User + system CPU seconds of ``pid`` (``/proc/PID/stat``); ``None`` if gone."""
    try:
        data = (proc / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    rest = data[data.rfind(b")") + 2 :].split()
    try:
        utime, stime = int(rest[11]), int(rest[12])
    except (IndexError, ValueError):
        return None
    return (utime + stime) / _ticks()


def _cat(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _int(path: Path) -> int | None:
    text = _cat(path)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def battery(root: Path = POWER_SUPPLY) -> Battery | None:
    """(percent, plugged) of the first battery, or ``None`` when there is none.

    Plugged comes from any mains/USB supply's ``online``, else from the battery's
    ``status`` (Discharging: no; Charging, Full or "Not charging", which the kernel
    reports on AC with charging held back: yes); ``None`` when neither says.
    """
    try:
        names = sorted(p.name for p in root.iterdir())
    except OSError:
        return None
    bats = [n for n in names if n.startswith("BAT") or "battery" in n.lower()]
    if not bats:
        return None
    bat = root / bats[0]
    now = _int(bat / "energy_now")
    full = _int(bat / "energy_full")
    if now is None or full is None:
        now, full = _int(bat / "charge_now"), _int(bat / "charge_full")
    if now is not None and full is not None:
        percent = 100.0 * now / full if full > 0 else 0.0
    else:
        cap = _int(bat / "capacity")
        if cap is None:
            return None
        percent = float(cap)
    plugged: bool | None = None
    online = [
        _cat(root / n / "online")
        for n in names
        if n not in bats and _cat(root / n / "type") in ("Mains", "USB")
    ]
    online = [o for o in online if o is not None]
    if online:
        plugged = any(o == "1" for o in online)
    else:
        status = (_cat(bat / "status") or "").lower()
        if status == "discharging":
            plugged = False
        elif status in ("charging", "full", "not charging"):
            plugged = True
    return max(0.0, min(100.0, percent)), plugged


def temperatures(hwmon: Path | None = None, thermal: Path | None = None) -> dict[str, list[float]]:
    """Current temperatures (deg C) by chip name, like ``psutil.sensors_temperatures``.

    hwmon chips first (``tempN_input`` in the chip dir or its ``device`` dir); the
    thermal zones (by ``type``) only when no hwmon temperature file exists at all. A
    chip whose files exist but cannot be read maps to an empty list (unknown, not absent).
    """
    hwmon = HWMON if hwmon is None else hwmon
    thermal = THERMAL if thermal is None else thermal
    out: dict[str, list[float]] = {}
    found = False
    try:
        chips = sorted(hwmon.iterdir())
    except OSError:
        chips = []
    for chip in chips:
        name = _cat(chip / "name") or chip.name
        for d in (chip, chip / "device"):
            try:
                files = sorted(p for p in d.iterdir() if _TEMP.match(p.name))
            except OSError:
                continue
            if files:
                found = True
                values = out.setdefault(name, [])
            for p in files:
                if p.name.endswith("_input") and (value := _int(p)) is not None:
                    values.append(value / 1000.0)
    if found:
        return out
    try:
        zones = sorted(p for p in thermal.iterdir() if p.name.startswith("thermal_zone"))
    except OSError:
        zones = []
    for zone in zones:
        kind = _cat(zone / "type") or zone.name
        values = out.setdefault(kind, [])
        if (value := _int(zone / "temp")) is not None:
            values.append(value / 1000.0)
    return out


def mem_total() -> int | None:
    """Physical memory in bytes (``sysconf``), ``None`` where the system cannot say."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return pages * size if pages > 0 and size > 0 else None
