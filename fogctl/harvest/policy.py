"""The harvest policy and the eligibility core (sans-IO: readings and ``now`` in).

Rules (BOINC's computing preferences, with the seed's defaults):

=================  ==========  =======================================================
field              default     meaning
=================  ==========  =======================================================
min_battery        50          % battery needed to run on battery (charging always ok)
battery_hysteresis 5           resume only at min_battery + this
run_on_battery     true        false: never run without AC power
require_ac         false       true: run only when on mains power is known
max_temp           70          stop at or above this CPU temperature (deg C)
temp_hysteresis    5           resume only at max_temp - this
idle               300 s       owner idle at least this long (0: ignore the owner)
max_other_cpu      25          stop when other processes use more than this % of the machine
cpu_hysteresis     10          resume only below max_other_cpu - this
cpu_limit          50          CPU cap of a task, % of max_cpus CPUs (cgroup quota / --cpus)
max_cpus           1           CPUs a task may use
mem_idle           90          memory cap, % of RAM, when the owner is idle
mem_busy           50          memory cap, % of RAM, when idle is 0 (owner may be busy)
allow_metered      true        false: do not run on a metered network
hours              ""          local time window, "HH:MM-HH:MM" (may wrap midnight)
min_backoff        120 s       after a stop, do not start again for at least this long
grace              3 s         checkpoint grace period before a task is killed
checkpoint_every   60 s        periodic checkpoint of WASM tasks
poll               1 s         eligibility check interval while a task runs
executor           wasm        default executor for tasks that name none
allow_docker       false       run Docker tasks
strict_sensors     false       true: a sensor that cannot be read blocks work
=================  ==========  =======================================================

Sensors the machine lacks (``absent``) never block; hysteresis keeps work from flapping
around a threshold, and a stop holds for ``min_backoff``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import time as dtime
from typing import Any, NamedTuple

from fogctl.errors import InvalidInput
from fogctl.harvest.sensors import ABSENT, OK, UNKNOWN, Reading, Readings
from fogctl.harvest.status_records import RuleResult

__all__ = [
    "DEFAULTS",
    "Decision",
    "Memory",
    "Policy",
    "evaluate",
    "parse_duration",
    "parse_field",
    "parse_hours",
    "parse_percent",
]


@dataclass(frozen=True, slots=True)
class Policy:
    min_battery: float = 50.0
    battery_hysteresis: float = 5.0
    run_on_battery: bool = True
    require_ac: bool = False
    max_temp: float = 70.0
    temp_hysteresis: float = 5.0
    idle: float = 300.0
    max_other_cpu: float = 25.0
    cpu_hysteresis: float = 10.0
    cpu_limit: float = 50.0
    max_cpus: int = 1
    mem_idle: float = 90.0
    mem_busy: float = 50.0
    allow_metered: bool = True
    hours: str = ""
    min_backoff: float = 120.0
    grace: float = 3.0
    checkpoint_every: float = 60.0
    poll: float = 1.0
    executor: str = "wasm"
    allow_docker: bool = False
    strict_sensors: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def mem_limit_bytes(self, mem_total: int | None) -> int | None:
        if not mem_total:
            return None
        pct = self.mem_idle if self.idle > 0 else self.mem_busy
        return int(mem_total * pct / 100)


DEFAULTS = Policy()

_DUR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, None: 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any, name: str = "duration") -> float:
    """Seconds from ``90``, ``"90s"``, ``"5m"``, ``"1.5h"``."""
    if isinstance(value, bool):
        raise InvalidInput(f"{name}: expected a duration like 30s, 5m or 1h, got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise InvalidInput(f"{name}: must not be negative")
        return float(value)
    m = _DUR.match(str(value))
    if not m:
        raise InvalidInput(f"{name}: expected a duration like 30s, 5m or 1h, got {value!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_percent(value: Any, name: str = "percent", *, upper: float = 100.0) -> float:
    """A percentage from ``60``, ``"60%"`` or ``"60 %"`` (0..upper)."""
    if isinstance(value, bool):
        raise InvalidInput(f"{name}: expected a percentage, got {value!r}")
    text = str(value).strip().rstrip("%").strip()
    try:
        pct = float(text)
    except ValueError:
        raise InvalidInput(f"{name}: expected a percentage like 60%, got {value!r}") from None
    if not 0 <= pct <= upper:
        raise InvalidInput(f"{name}: {pct:g} is outside 0-{upper:g}")
    return pct


def _parse_number(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise InvalidInput(f"{name}: expected a number, got {value!r}")
    try:
        return float(str(value).strip().rstrip("C").rstrip("°").strip())
    except ValueError:
        raise InvalidInput(f"{name}: expected a number, got {value!r}") from None


def _parse_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    low = str(value).strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise InvalidInput(f"{name}: expected true or false, got {value!r}")


def _hhmm(text: str, name: str) -> dtime:
    m = re.match(r"^(\d{1,2}):(\d{2})$", text.strip())
    if not m or int(m.group(1)) > 24 or int(m.group(2)) > 59:
        raise InvalidInput(f"{name}: expected HH:MM, got {text!r}")
    h, mi = int(m.group(1)), int(m.group(2))
    return dtime(23, 59, 59) if h == 24 else dtime(h, mi)


def parse_hours(value: Any, name: str = "hours") -> str:
    """Validate ``"HH:MM-HH:MM"`` (comma-separated windows allowed; empty = always)."""
    text = str(value or "").strip()
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "-" not in part:
            raise InvalidInput(f"{name}: expected HH:MM-HH:MM, got {part!r}")
        a, b = part.split("-", 1)
        _hhmm(a, name)
        _hhmm(b, name)
    return text


def in_hours(hours: str, local: dtime) -> bool:
    windows = [p.strip() for p in hours.split(",") if p.strip()]
    if not windows:
        return True
    for part in windows:
        a, b = (_hhmm(x, "hours") for x in part.split("-", 1))
        if (a <= local < b) if a <= b else (local >= a or local < b):
            return True
    return False


def _executor(value: Any, name: str) -> str:
    v = str(value).strip()
    if v not in ("wasm", "docker"):
        raise InvalidInput(f"{name}: expected wasm or docker, got {value!r}")
    return v


def _cpus(value: Any, name: str) -> int:
    n = _parse_number(value, name)
    if n < 1 or n != int(n):
        raise InvalidInput(f"{name}: expected a whole number of CPUs >= 1")
    return int(n)


_PARSERS: dict[str, Callable[[Any, str], Any]] = {
    "min_battery": parse_percent,
    "battery_hysteresis": parse_percent,
    "run_on_battery": _parse_bool,
    "require_ac": _parse_bool,
    "max_temp": _parse_number,
    "temp_hysteresis": _parse_number,
    "idle": parse_duration,
    "max_other_cpu": parse_percent,
    "cpu_hysteresis": parse_percent,
    "cpu_limit": lambda v, n: parse_percent(v, n) or _zero_cap(n),
    "max_cpus": _cpus,
    "mem_idle": parse_percent,
    "mem_busy": parse_percent,
    "allow_metered": _parse_bool,
    "hours": parse_hours,
    "min_backoff": parse_duration,
    "grace": parse_duration,
    "checkpoint_every": parse_duration,
    "poll": parse_duration,
    "executor": _executor,
    "allow_docker": _parse_bool,
    "strict_sensors": _parse_bool,
}


def _zero_cap(name: str) -> float:
    raise InvalidInput(f"{name}: a CPU cap of 0% would never run anything")


def parse_field(name: str, value: Any) -> Any:
    """Validate and normalise one policy field (``InvalidInput`` names the field)."""
    parser = _PARSERS.get(name)
    if parser is None:
        raise InvalidInput(f"unknown harvest policy field {name!r} (known: {', '.join(_PARSERS)})")
    out = parser(value, f"harvest.{name}")
    if name == "poll" and out <= 0:
        raise InvalidInput("harvest.poll: must be greater than 0")
    return out


def policy_from(values: Mapping[str, Any]) -> Policy:
    return replace(DEFAULTS, **{k: parse_field(k, v) for k, v in values.items()})


# -- the eligibility core ---------------------------------------------------------------


class Memory(NamedTuple):  # a tuple: cheaper to define than a dataclass (see sensors)
    """What the core remembers between evaluations (persisted by the caller)."""

    eligible: bool = False
    since: float = 0.0
    backoff_until: float = 0.0


class Decision(NamedTuple):
    eligible: bool
    state: str  # eligible | suspended | backoff
    rules: tuple[RuleResult, ...]
    memory: Memory

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(f"{r.rule}: {r.detail}" for r in self.rules if r.result == "fail")


def _sensor_rule(
    name: str,
    reading: Reading,
    threshold: Any,
    passed: Callable[[Any], bool],
    detail_ok: str,
    detail_fail: str,
) -> RuleResult:
    if reading.status == ABSENT:
        return RuleResult(name, "absent", None, threshold, f"no {name} sensor on this machine")
    if reading.status != OK:
        return RuleResult(name, "unknown", None, threshold, f"{name} could not be read")
    ok = passed(reading.value)
    return RuleResult(
        name, "pass" if ok else "fail", reading.value, threshold, detail_ok if ok else detail_fail
    )


def evaluate(policy: Policy, r: Readings, mem: Memory, now: float, local: dtime) -> Decision:
    """Apply every rule to ``r``. Running work uses stop thresholds, idle work start ones."""
    running = mem.eligible
    rules: list[RuleResult] = []

    # battery: charging (or on AC) always passes; else level with hysteresis
    bat_need = policy.min_battery if running else policy.min_battery + policy.battery_hysteresis
    plugged = (r.charging.ok and r.charging.value) or (r.on_ac.ok and r.on_ac.value)
    if r.battery_percent.status == ABSENT:
        rules.append(RuleResult("battery", "absent", None, bat_need, "no battery (mains powered)"))
    elif plugged:
        rules.append(RuleResult("battery", "pass", r.battery_percent.value, bat_need, "charging"))
    elif not policy.run_on_battery:
        rules.append(
            RuleResult(
                "battery",
                "fail",
                r.battery_percent.value,
                bat_need,
                "on battery and run_on_battery is false",
            )
        )
    else:
        rules.append(
            _sensor_rule(
                "battery",
                r.battery_percent,
                bat_need,
                lambda v: v >= bat_need,
                f"{r.battery_percent.value}% >= {bat_need:g}%",
                f"{r.battery_percent.value}% < {bat_need:g}% and not charging",
            )
        )

    if policy.require_ac:
        rules.append(_sensor_rule("ac", r.on_ac, True, bool, "on mains power", "on battery"))

    t_max = policy.max_temp if running else policy.max_temp - policy.temp_hysteresis
    rules.append(
        _sensor_rule(
            "temperature",
            r.temperature,
            t_max,
            (lambda v: v < t_max) if running else (lambda v: v <= t_max),
            f"{r.temperature.value} C below {t_max:g} C",
            f"{r.temperature.value} C, limit {t_max:g} C",
        )
    )

    if policy.idle > 0:
        rules.append(
            _sensor_rule(
                "idle",
                r.idle_seconds,
                policy.idle,
                lambda v: v >= policy.idle,
                f"owner idle {r.idle_seconds.value} s",
                f"owner active {r.idle_seconds.value} s ago (need {policy.idle:g} s)",
            )
        )

    cpu_max = policy.max_other_cpu if running else policy.max_other_cpu - policy.cpu_hysteresis
    rules.append(
        _sensor_rule(
            "cpu",
            r.cpu_other,
            cpu_max,
            lambda v: v <= cpu_max,
            f"other processes use {r.cpu_other.value}%",
            f"other processes use {r.cpu_other.value}% > {cpu_max:g}%",
        )
    )

    if not policy.allow_metered:
        rules.append(
            _sensor_rule(
                "network",
                r.metered,
                False,
                lambda v: not v,
                "network not metered",
                "network is metered",
            )
        )

    if policy.hours:
        ok = in_hours(policy.hours, local)
        rules.append(
            RuleResult(
                "hours",
                "pass" if ok else "fail",
                local.strftime("%H:%M"),
                policy.hours,
                "inside the window" if ok else "outside the window",
            )
        )

    blocked = any(x.result == "fail" for x in rules) or (
        policy.strict_sensors and any(x.result == UNKNOWN for x in rules)
    )
    if running:
        if blocked:
            mem = Memory(False, now, now + policy.min_backoff)
            rules.append(
                RuleResult(
                    "backoff",
                    "fail",
                    0.0,
                    policy.min_backoff,
                    f"stopped; holds for {policy.min_backoff:g} s",
                )
            )
            return Decision(False, "suspended", tuple(rules), mem)
        return Decision(True, "eligible", tuple(rules), mem)
    if now < mem.backoff_until:
        left = round(mem.backoff_until - now, 1)
        rules.append(
            RuleResult("backoff", "fail", left, policy.min_backoff, f"back-off for {left:g} s more")
        )
        return Decision(False, "backoff" if not blocked else "suspended", tuple(rules), mem)
    if blocked:
        return Decision(
            False, "suspended", tuple(rules), Memory(False, mem.since, mem.backoff_until)
        )
    return Decision(True, "eligible", tuple(rules), Memory(True, now, mem.backoff_until))
