"""Eligibility sensors: what the machine says about its owner, power and heat.

Every source returns :class:`Readings`, where each value is a :class:`Reading` with a
``status``: ``ok`` (a value was read), ``absent`` (this machine has no such sensor,
e.g. a desktop without a battery) or ``unknown`` (the sensor should exist but could not
be read). Nothing is guessed.

Sources:

* :class:`SystemSource` -- the real machine: battery and temperatures (read from
  ``/sys`` on Linux by :mod:`fogctl.harvest.procfs`, through psutil elsewhere), CPU
  load from other processes (a delta between two samples of ``/proc/stat``, never
  psutil's meaningless first ``cpu_percent`` call), owner idle time from logind's
  ``IdleHint`` where a seat exists, else the last access time of input devices and
  terminals (what w(1) shows), AC power from ``/sys/class/power_supply``, metered
  network from NetworkManager (``nmcli``).
* :class:`FileSource` -- a JSON or YAML file named by ``FOGCTL_HARVEST_SENSORS``, re-read
  on every poll, for scenarios and tests. A key set to ``null`` is ``absent``; a key
  left out is ``unknown``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from fogctl.errors import InvalidInput
from fogctl.harvest import procfs

__all__ = [
    "ENV_SENSORS",
    "CpuSampler",
    "FileSource",
    "Reading",
    "Readings",
    "SensorSource",
    "SystemSource",
    "default_source",
]

ENV_SENSORS = "FOGCTL_HARVEST_SENSORS"
OK, ABSENT, UNKNOWN = "ok", "absent", "unknown"

# Preferred temperature chips (CPU packages); other chips count only if none of these.
_CPU_CHIPS = ("coretemp", "k10temp", "zenpower", "cpu_thermal", "cpu-thermal", "soc_thermal")


# Named tuples, not dataclasses: these load on every 'harvest status' (a timer runs it
# every minute), and building a frozen dataclass costs ~1 ms at import, a tuple ~0.1 ms.
class Reading(NamedTuple):
    value: Any = None
    status: str = UNKNOWN
    source: str = ""

    @property
    def ok(self) -> bool:
        return self.status == OK


def _ok(value: Any, source: str) -> Reading:
    return Reading(value, OK, source)


_UNREAD = Reading()


class Readings(NamedTuple):
    """One snapshot of every sensor. Percentages are 0-100; temperature in degrees C."""

    battery_percent: Reading = _UNREAD
    charging: Reading = _UNREAD
    on_ac: Reading = _UNREAD
    temperature: Reading = _UNREAD
    cpu_other: Reading = _UNREAD
    cpu_total: Reading = _UNREAD
    idle_seconds: Reading = _UNREAD
    metered: Reading = _UNREAD
    mem_total: Reading = _UNREAD
    battery_wh: Reading = _UNREAD
    source: str = ""


class SensorSource(Protocol):
    def read(self, own_cpu_seconds: float = 0.0) -> Readings: ...


# -- CPU load with a proper interval ----------------------------------------------------


class CpuSampler:
    """Machine CPU utilisation between two samples of ``/proc/stat`` (psutil off Linux).

    ``own_cpu_seconds`` (the task's cumulative CPU time) is subtracted so the reading is
    the load of *other* processes. A sample can be persisted to a file so a one-shot
    ``harvest status`` started every minute measures the minute since the last one.
    """

    def __init__(self, persist: Path | None = None, min_interval: float = 0.1) -> None:
        self.persist = persist
        self.min_interval = min_interval
        self._prev: tuple[float, float, float, float] | None = None  # (t, busy, total, own)

    @staticmethod
    def _now_sample() -> tuple[float, float]:
        sample = procfs.cpu_times()
        if sample is not None:
            return sample
        import psutil

        t = psutil.cpu_times()
        idle = t.idle + getattr(t, "iowait", 0.0)
        total = sum(t)
        # guest time is already counted in user on Linux
        total -= getattr(t, "guest", 0.0) + getattr(t, "guest_nice", 0.0)
        return total - idle, total

    def _load_persisted(self) -> tuple[float, float, float, float] | None:
        if self.persist is None:
            return None
        try:
            data = json.loads(self.persist.read_text())
            return (float(data[0]), float(data[1]), float(data[2]), float(data[3]))
        except (OSError, ValueError, IndexError, TypeError):
            return None

    def sample(
        self, own_cpu_seconds: float = 0.0, *, max_age: float = 600.0
    ) -> tuple[float, float]:
        """(total %, other %) of the whole machine since the previous sample."""
        now = time.monotonic() if self.persist is None else time.time()
        prev = self._prev or self._load_persisted()
        if prev is None or not (0 <= now - prev[0] <= max_age):
            busy, total = self._now_sample()
            prev = (now, busy, total, own_cpu_seconds)
            time.sleep(self.min_interval)
            now = time.monotonic() if self.persist is None else time.time()
        elif now - prev[0] < self.min_interval:
            time.sleep(self.min_interval - (now - prev[0]))
            now = time.monotonic() if self.persist is None else time.time()
        busy, total = self._now_sample()
        ncpu = os.cpu_count() or 1
        dt_total = total - prev[2]
        if dt_total <= 0:
            # clock ticks did not advance (very short interval): fall back to wall time
            dt_total = max(now - prev[0], 1e-3) * ncpu
        used = busy - prev[1]
        # a smaller cumulative figure than last time means a new task (or none): all
        # of its CPU time falls inside this interval
        own = own_cpu_seconds - prev[3] if own_cpu_seconds >= prev[3] else own_cpu_seconds
        self._prev = (now, busy, total, own_cpu_seconds)
        if self.persist is not None:
            # a hint, not state: temp + rename without fsync (a lost sample costs one
            # blocking interval next time, nothing else)
            try:
                tmp = self.persist.with_name(f".{self.persist.name}.{os.getpid()}")
                tmp.write_text(json.dumps(list(self._prev)))
                os.replace(tmp, self.persist)
            except OSError:
                pass
        total_pct = max(0.0, min(100.0, 100.0 * used / dt_total))
        other_pct = max(0.0, min(100.0, 100.0 * (used - own) / dt_total))
        return total_pct, other_pct


# -- the real machine -----------------------------------------------------------------


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _power_supplies(root: Path) -> list[Path]:
    try:
        return sorted(root.iterdir())
    except OSError:
        return []


def read_ac(root: Path = Path("/sys/class/power_supply")) -> Reading:
    """On mains power? From ``type``=Mains/USB supplies' ``online``; absent if none exist."""
    mains = [p for p in _power_supplies(root) if _read(p / "type") in ("Mains", "USB")]
    if not mains:
        return Reading(None, ABSENT, "power_supply")
    values = [_read(p / "online") for p in mains]
    if all(v is None for v in values):
        return Reading(None, UNKNOWN, "power_supply")
    return _ok(any(v == "1" for v in values), "power_supply")


def read_battery_wh(root: Path = Path("/sys/class/power_supply")) -> Reading:
    """Full battery energy in Wh (energy_full, or charge_full x voltage_min_design)."""
    total = 0.0
    found = False
    for p in _power_supplies(root):
        if _read(p / "type") != "Battery":
            continue
        found = True
        e = _read(p / "energy_full")
        if e and e.isdigit():
            total += int(e) / 1e6
            continue
        c, v = _read(p / "charge_full"), _read(p / "voltage_min_design")
        if c and v and c.isdigit() and v.isdigit():
            total += int(c) / 1e6 * int(v) / 1e6
    if not found:
        return Reading(None, ABSENT, "power_supply")
    return (
        _ok(round(total, 2), "power_supply")
        if total > 0
        else Reading(None, UNKNOWN, "power_supply")
    )


def read_temperature(linux: bool | None = None) -> Reading:
    """The hottest CPU-package sensor (any chip's if no CPU chip is known)."""
    linux = _linux() if linux is None else linux
    temps: dict[str, list[float]]
    if linux:
        src = "sysfs"
        temps = procfs.temperatures()
    else:
        import psutil

        src = "psutil"
        try:
            raw = psutil.sensors_temperatures()
        except (OSError, AttributeError):
            return Reading(None, UNKNOWN, src)
        temps = {k: [s.current for s in v if s.current is not None] for k, v in raw.items()}
    if not temps:
        return Reading(None, ABSENT, src)
    chips = {k: v for k, v in temps.items() if k in _CPU_CHIPS} or temps
    values = [t for v in chips.values() for t in v]
    if not values:
        return Reading(None, UNKNOWN, src)
    return _ok(round(max(values), 1), f"{src}:" + ",".join(sorted(chips)))


def _linux() -> bool:
    """Read /proc and /sys directly (cheap), not through psutil (an import costs ~10 ms)."""
    return sys.platform.startswith("linux") and procfs.available()


def read_battery(linux: bool | None = None) -> tuple[float, bool | None] | None:
    """(percent, plugged) of the battery, ``None`` without one (psutil's semantics)."""
    if _linux() if linux is None else linux:
        return procfs.battery()
    import psutil

    try:
        bat = psutil.sensors_battery()
    except (OSError, AttributeError):
        return None
    return None if bat is None else (float(bat.percent), bat.power_plugged)


def read_mem_total(linux: bool | None = None) -> int:
    total = procfs.mem_total() if (_linux() if linux is None else linux) else None
    if total is None:
        import psutil

        total = int(psutil.virtual_memory().total)
    return total


def _logind_idle(now: float, run: Callable[..., Any] | None = None) -> Reading | None:
    """Owner idle seconds from logind (minimum over graphical/tty sessions with a seat)."""
    seats = Path("/run/systemd/seats")
    try:
        has_seat = any(seats.iterdir())
    except OSError:
        has_seat = False
    if not has_seat:
        return None  # no seat, no logind idle hint: and no subprocess import either
    import shutil
    import subprocess

    run = run or subprocess.run
    if shutil.which("loginctl") is None:
        return None
    try:
        out = run(
            ["loginctl", "list-sessions", "--no-legend"],
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        ).stdout
        idle: list[float] = []
        for line in out.splitlines():
            sid = line.split()[0] if line.split() else ""
            if not sid:
                continue
            props = run(
                [
                    "loginctl",
                    "show-session",
                    sid,
                    "-p",
                    "Seat",
                    "-p",
                    "IdleHint",
                    "-p",
                    "IdleSinceHint",
                ],
                capture_output=True,
                text=True,
                timeout=2,
                check=False,
            ).stdout
            kv = dict(x.split("=", 1) for x in props.splitlines() if "=" in x)
            if not kv.get("Seat"):
                continue
            if kv.get("IdleHint") != "yes":
                idle.append(0.0)
            else:
                since = int(kv.get("IdleSinceHint", "0") or 0) / 1e6
                idle.append(max(0.0, now - since) if since else 0.0)
    except (OSError, subprocess.SubprocessError, ValueError):
        return Reading(None, UNKNOWN, "logind")
    if not idle:
        return None
    return _ok(round(min(idle), 1), "logind")


def _device_idle(now: float) -> Reading:
    """Seconds since the newest access to an input device or a user terminal."""
    newest: float | None = None
    candidates: list[Path] = []
    for d in (Path("/dev/input"), Path("/dev/pts")):
        try:
            candidates += [p for p in d.iterdir() if p.name.startswith("event") or p.name.isdigit()]
        except OSError:
            continue
    for p in candidates:
        try:
            st = p.stat()
        except OSError:
            continue
        t = max(st.st_atime, st.st_mtime)
        newest = t if newest is None else max(newest, t)
    if newest is None:
        return Reading(None, ABSENT if not candidates else UNKNOWN, "devices")
    return _ok(round(max(0.0, now - newest), 1), "devices")


def read_idle(now: float) -> Reading:
    return _logind_idle(now) or _device_idle(now)


def read_metered() -> Reading:
    import shutil
    import subprocess

    if shutil.which("nmcli") is None:
        return Reading(None, ABSENT, "nmcli")
    try:
        out = subprocess.run(
            ["nmcli", "-t", "-f", "GENERAL.METERED", "device", "show"],
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return Reading(None, UNKNOWN, "nmcli")
    vals = [line.split(":", 1)[1] for line in out.splitlines() if ":" in line]
    if not vals:
        return Reading(None, UNKNOWN, "nmcli")
    return _ok(any(v.startswith("yes") for v in vals), "nmcli")


class SystemSource:
    """The real machine's sensors (/proc and /sys on Linux, else psutil; and the OS)."""

    name = "system"

    def __init__(self, sampler: CpuSampler | None = None, *, metered: bool = True) -> None:
        self.sampler = sampler or CpuSampler()
        self.check_metered = metered

    def read(self, own_cpu_seconds: float = 0.0) -> Readings:
        now = time.time()
        linux = _linux()
        src = "sysfs" if linux else "psutil"
        bat = read_battery(linux)
        if bat is None:
            battery = charging = Reading(None, ABSENT, src)
            on_ac = read_ac()
        else:
            battery = _ok(round(bat[0], 1), src)
            plugged = bat[1]
            charging = (
                _ok(bool(plugged), src) if plugged is not None else Reading(None, UNKNOWN, src)
            )
            on_ac = charging if plugged is not None else read_ac()
        total, other = self.sampler.sample(own_cpu_seconds)
        cpu_src = "/proc/stat" if linux else "psutil"
        return Readings(
            battery_percent=battery,
            charging=charging,
            on_ac=on_ac,
            temperature=read_temperature(linux),
            cpu_other=_ok(round(other, 1), cpu_src),
            cpu_total=_ok(round(total, 1), cpu_src),
            idle_seconds=read_idle(now),
            metered=read_metered() if self.check_metered else Reading(None, UNKNOWN, "not checked"),
            mem_total=_ok(read_mem_total(linux), src),
            battery_wh=read_battery_wh() if bat is not None else Reading(None, ABSENT, src),
            source=self.name,
        )


# -- scenario files ---------------------------------------------------------------------

_FILE_KEYS = {
    "battery": "battery_percent",
    "charging": "charging",
    "on_ac": "on_ac",
    "temperature": "temperature",
    "cpu_other": "cpu_other",
    "cpu_total": "cpu_total",
    "idle": "idle_seconds",
    "metered": "metered",
    "mem_total": "mem_total",
    "battery_wh": "battery_wh",
}


def parse_sensor_file(path: Path, text: str) -> Readings:
    """Readings from a scenario file's text (JSON or YAML mapping)."""
    try:
        data = json.loads(text)
    except ValueError:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidInput(f"{path}: not JSON or YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{path}: expected a mapping of sensor readings")
    values: dict[str, Reading] = {}
    for key, value in data.items():
        attr = _FILE_KEYS.get(str(key))
        if attr is None:
            raise InvalidInput(f"{path}: unknown sensor {key!r} (known: {', '.join(_FILE_KEYS)})")
        if value is None:
            values[attr] = Reading(None, ABSENT, "file")
        elif value == "unknown":
            values[attr] = Reading(None, UNKNOWN, "file")
        elif attr in ("charging", "on_ac", "metered"):
            if not isinstance(value, bool):
                raise InvalidInput(f"{path}: {key}: expected true, false or null")
            values[attr] = _ok(value, "file")
        else:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInput(f"{path}: {key}: expected a number or null")
            values[attr] = _ok(value, "file")
    return Readings(**values, source=f"file:{path}")


class FileSource:
    """Readings from a scenario file, re-read whenever it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cache: tuple[tuple[int, int], Readings] | None = None

    def read(self, own_cpu_seconds: float = 0.0) -> Readings:
        try:
            st = self.path.stat()
            key = (st.st_mtime_ns, st.st_size)
            if self._cache is not None and self._cache[0] == key:
                return self._cache[1]
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"{self.path}: cannot read sensor file: {exc.strerror}") from None
        readings = parse_sensor_file(self.path, text)
        self._cache = (key, readings)
        return readings


def default_source(
    environ: Mapping[str, str] | None = None, *, persist: Path | None = None, metered: bool = True
) -> SensorSource:
    env = os.environ if environ is None else environ
    path = env.get(ENV_SENSORS)
    if path:
        return FileSource(Path(path))
    return SystemSource(CpuSampler(persist), metered=metered)
