"""Power model: P = alpha + beta * u (u = machine CPU utilisation, 0..1).

Calibration reads RAPL energy counters (``/sys/class/powercap/intel-rapl:N/energy_uj``,
package domains) while the machine idles and while every CPU spins, and stores alpha
and beta in the state dir config (``harvest.power_alpha``, ``harvest.power_beta``).
Without RAPL the documented defaults apply:

=========  =====  =====  ==================================================
machine    alpha  beta   source
=========  =====  =====  ==================================================
laptop     5 W    20 W   typical 15 W-TDP mobile CPU, idle to all-core load
desktop    30 W   65 W   typical 65 W-TDP desktop CPU plus board and disks
=========  =====  =====  ==================================================

A task's energy is its marginal share: beta x (task CPU seconds / CPUs) joules.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from fogctl.errors import ServiceUnavailable

__all__ = [
    "DESKTOP",
    "LAPTOP",
    "PowerModel",
    "calibrate",
    "rapl_domains",
    "read_rapl_uj",
]

POWERCAP = Path("/sys/class/powercap")


class PowerModel(NamedTuple):  # a tuple: cheaper to define than a dataclass
    alpha: float
    beta: float
    source: str

    def watts(self, utilisation: float) -> float:
        u = max(0.0, min(1.0, utilisation))
        return round(self.alpha + self.beta * u, 2)

    def task_energy_j(self, cpu_seconds: float, ncpu: int | None = None) -> float:
        n = ncpu or os.cpu_count() or 1
        return round(self.beta * cpu_seconds / n, 3)

    def drain_pct_per_h(self, watts: float, battery_wh: float | None) -> float | None:
        if not battery_wh:
            return None
        return round(100.0 * watts / battery_wh, 2)


LAPTOP = PowerModel(5.0, 20.0, "default-laptop")
DESKTOP = PowerModel(30.0, 65.0, "default-desktop")


def rapl_domains(root: Path = POWERCAP) -> list[Path]:
    """Package-level RAPL zones (``intel-rapl:N``; not the ``:N:M`` subzones)."""
    try:
        zones = [
            p for p in root.iterdir() if p.name.count(":") == 1 and p.name.startswith("intel-rapl")
        ]
    except OSError:
        return []
    return sorted(z for z in zones if (z / "energy_uj").exists())


def read_rapl_uj(zones: list[Path]) -> tuple[int, int]:
    """(sum of energy_uj, sum of max_energy_range_uj) across zones."""
    total = wrap = 0
    for z in zones:
        try:
            total += int((z / "energy_uj").read_text())
            wrap += int((z / "max_energy_range_uj").read_text())
        except (OSError, ValueError):
            raise ServiceUnavailable(f"{z}/energy_uj: cannot read RAPL counter") from None
    return total, wrap


def _measure_watts(
    zones: list[Path], seconds: float, load: Callable[[float], None] | None
) -> float:
    e0, wrap = read_rapl_uj(zones)
    t0 = time.monotonic()
    if load is None:
        time.sleep(seconds)
    else:
        load(seconds)
    e1, _ = read_rapl_uj(zones)
    dt = time.monotonic() - t0
    de = e1 - e0 if e1 >= e0 else e1 + wrap - e0
    return de / 1e6 / dt


def _spin_all(seconds: float) -> None:
    import multiprocessing as mp

    def spin(until: float) -> None:
        while time.monotonic() < until:
            pass

    until = time.monotonic() + seconds
    procs = [mp.Process(target=spin, args=(until,)) for _ in range(os.cpu_count() or 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()


def calibrate(seconds: float = 2.0, root: Path = POWERCAP) -> PowerModel:
    """Measure alpha (idle watts) and beta (extra watts at full load) from RAPL."""
    zones = rapl_domains(root)
    if not zones:
        raise ServiceUnavailable(
            f"no RAPL energy counters under {root} (needs an Intel/AMD CPU with powercap, "
            "readable energy_uj); the default power model stays in use"
        )
    idle = _measure_watts(zones, seconds, None)
    busy = _measure_watts(zones, seconds, _spin_all)
    return PowerModel(round(idle, 2), round(max(0.0, busy - idle), 2), "rapl")


def model_for(alpha: float | None, beta: float | None, has_battery: bool) -> PowerModel:
    if alpha is not None and beta is not None:
        return PowerModel(float(alpha), float(beta), "calibrated")
    return LAPTOP if has_battery else DESKTOP
