"""Library entry points behind ``fogctl harvest``: policy, status, one cycle, the loop."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fogctl.errors import InvalidInput
from fogctl.harvest import queue
from fogctl.harvest.policy import (
    DEFAULTS,
    Decision,
    Memory,
    Policy,
    evaluate,
    parse_field,
    policy_from,
)
from fogctl.harvest.power import PowerModel, model_for
from fogctl.harvest.sensors import Readings, SensorSource, default_source
from fogctl.harvest.status_records import HarvestStatusRecord
from fogctl.state import State, write_atomic

if TYPE_CHECKING:
    from fogctl.harvest.records import PolicyRecord

__all__ = ["decide", "load_policy", "policy_record", "power_model", "set_policy", "status"]


def load_policy(state: State, **flags: Any) -> Policy:
    """The policy in force: flags > FOGCTL_HARVEST_* env > config.yaml > defaults."""
    cfg = state.config
    values = {}
    for name, default in DEFAULTS.to_dict().items():
        values[name] = cfg.get(f"harvest.{name}", default, flag=flags.get(name))
    return policy_from(values)


def policy_record(state: State) -> PolicyRecord:
    from fogctl.harvest.records import PolicyRecord

    pol = load_policy(state)
    sources = {k: state.config.source(f"harvest.{k}") for k in pol.to_dict()}
    return PolicyRecord(values=pol.to_dict(), sources=sources, path=str(state.root / "config.yaml"))


def set_policy(state: State, changes: Mapping[str, Any], reset: bool = False) -> PolicyRecord:
    """Validate ``changes`` and write them under ``harvest:`` in the state dir config.yaml."""
    power = {k: v for k, v in changes.items() if k in ("power_alpha", "power_beta")}
    parsed = {k: parse_field(k, v) for k, v in changes.items() if k not in power}
    import yaml

    path = state.root / "config.yaml"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    data = yaml.safe_load(text) if text.strip() else {}
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: expected a mapping at the top level")
    section = {} if reset else dict(data.get("harvest") or {})
    section.update(parsed)
    # power model calibration lives beside the policy fields
    for k, v in power.items():
        section[k] = float(v)
    data["harvest"] = section
    state.root.mkdir(parents=True, exist_ok=True)
    write_atomic(path, yaml.safe_dump(data, sort_keys=True).encode())
    fresh = State(state.root)
    return policy_record(fresh)


def power_model(state: State, has_battery: bool) -> PowerModel:
    cfg = state.config
    return model_for(cfg.get("harvest.power_alpha"), cfg.get("harvest.power_beta"), has_battery)


def decide(policy: Policy, readings: Readings, mem: Memory, now: float | None = None) -> Decision:
    now = time.time() if now is None else now
    return evaluate(policy, readings, mem, now, datetime.fromtimestamp(now).time())


def sensor_source(state: State, policy: Policy, *, persist: bool = True) -> SensorSource:
    path = state.subdir("harvest") / "cpu.sample" if persist else None
    return default_source(persist=path, metered=not policy.allow_metered)


def running_task_cpu(state: State) -> float:
    """CPU seconds of the WASM runners of tasks running now (our own load, not others')."""
    queue.migrate(state)
    rows = state.db.query("SELECT id FROM harvest_tasks WHERE state = 'running'")
    if not rows:
        return 0.0
    from fogctl.harvest.procfs import available, process_cpu_seconds

    total = 0.0
    for row in rows:
        try:
            pid = int((state.root / "harvest" / "tasks" / row["id"] / "pid").read_text())
        except (OSError, ValueError):
            continue
        if available():
            total += process_cpu_seconds(pid) or 0.0
            continue
        import psutil

        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
    return total


def status(state: State, *, source: SensorSource | None = None) -> HarvestStatusRecord:
    """Eligibility now with every rule, power estimate and queue counts (changes nothing)."""
    policy = load_policy(state)
    src = source or sensor_source(state, policy)
    readings = src.read(running_task_cpu(state))
    mem = queue.load_memory(state)
    now = time.time()
    d = decide(policy, readings, mem, now)
    has_battery = readings.battery_percent.status != "absent"
    model = power_model(state, has_battery)
    util = (readings.cpu_total.value or 0.0) / 100 if readings.cpu_total.ok else 0.0
    ncpu = os.cpu_count() or 1
    task_util = min(1.0, util + policy.cpu_limit / 100 * policy.max_cpus / ncpu)
    watts_task = model.watts(task_util)
    on_battery = has_battery and not (readings.charging.ok and readings.charging.value)
    drain = (
        model.drain_pct_per_h(
            watts_task, readings.battery_wh.value if readings.battery_wh.ok else None
        )
        if on_battery
        else None
    )
    c = queue.counts(state)
    return HarvestStatusRecord(
        eligible=d.eligible,
        state=d.state,
        rules=d.rules,
        backoff_until=mem.backoff_until if mem.backoff_until > now else None,
        watts_idle=model.watts(util),
        watts_task=watts_task,
        battery_drain_pct_per_h=drain,
        power_model=f"{model.source}: {model.alpha:g} W + {model.beta:g} W x util",
        sensors=readings.source,
        queued=c["queued"],
        running=c["running"],
        preempted=c["preempted"],
        done=c["done"],
        at=round(now, 3),
    )
