"""fogctl harvest from the command line: records out, one-line errors, exit codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .conftest import ROOT, Sensors


def rules(rec: dict[str, Any]) -> dict[str, str]:
    return {r["rule"]: r["result"] for r in rec["rules"]}


def test_status_on_this_machine(cli: Any) -> None:
    res = cli("harvest", "status", "--json")
    assert res.code == 0, res.stderr
    rec = res.record()
    assert rec["kind"] == "harvest-status" and rec["sensors"] == "system"
    assert set(rules(rec)) >= {"battery", "temperature", "idle", "cpu"}
    assert all(v in ("pass", "fail", "absent", "unknown") for v in rules(rec).values())
    assert rec["eligible"] == (not any(v == "fail" for v in rules(rec).values()))
    assert rec["watts_task"] >= rec["watts_idle"] > 0


def test_status_loads_no_heavy_module() -> None:
    """What a timer runs every minute stays light: no psutil (Linux reads /proc and /sys),
    no wasmtime, docker or rich, and no yaml without a config file."""
    import json
    import os
    import subprocess
    import sys

    code = (
        "import sys,json;from fogctl.cli.main import main;"
        "main(['harvest','status','--json']);sys.stdout.flush();"
        "print(json.dumps(sorted(m for m in ('psutil','wasmtime','docker','yaml','rich') "
        "if m in sys.modules)), file=sys.stderr)"
    )
    env = dict(os.environ)
    env.pop("FOGCTL_HARVEST_SENSORS", None)
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert res.returncode == 0, res.stderr
    loaded = json.loads(res.stderr.strip().splitlines()[-1])
    assert loaded == ([] if sys.platform.startswith("linux") else ["psutil"]), loaded
    assert json.loads(res.stdout)["kind"] == "harvest-status"


def test_status_scenarios(cli: Any, sensors: Sensors) -> None:
    rec = cli("harvest", "status", "--json").record()
    assert rec["eligible"] and rec["sensors"].startswith("file:")
    assert rec["battery_drain_pct_per_h"] > 0  # on battery, 50 Wh pack
    sensors.set(**{**dict(battery=30, charging=False, temperature=45, cpu_other=3, idle=900)})
    rec = cli("harvest", "status", "--json").record()
    assert not rec["eligible"] and rules(rec)["battery"] == "fail"
    sensors.set(battery=None, charging=None, temperature=None, cpu_other=3, idle=900)
    rec = cli("harvest", "status", "--json").record()
    assert rec["eligible"]
    assert rules(rec)["battery"] == "absent" and rules(rec)["temperature"] == "absent"
    assert rec["battery_drain_pct_per_h"] is None


def test_policy_set_show_and_errors(cli: Any, fog_home: Path) -> None:
    res = cli(
        "harvest",
        "policy",
        "set",
        "--min-battery",
        "60",
        "--max-temp",
        "65",
        "--idle",
        "5m",
        "--cpu-limit",
        "60%",
        "--json",
    )
    assert res.code == 0, res.stderr
    rec = res.record()
    assert rec["values"]["cpu_limit"] == 60 and rec["values"]["idle"] == 300
    assert rec["sources"]["min_battery"] == "file" and rec["sources"]["grace"] == "default"
    assert "min_battery: 60" in (fog_home / "config.yaml").read_text()
    shown = cli("harvest", "policy", "show", "--json").record()
    assert shown["values"]["max_temp"] == 65
    bad = cli("harvest", "policy", "set", "--cpu-limit", "150%", "--json")
    assert bad.code == 2 and "cpu_limit" in bad.stderr and "Traceback" not in bad.stderr
    assert cli("harvest", "policy", "show", "--json").record()["values"]["cpu_limit"] == 60
    reset = cli("harvest", "policy", "set", "--reset", "--json").record()
    assert reset["values"]["cpu_limit"] == 50


def test_env_overrides_config(cli: Any, monkeypatch: Any) -> None:
    cli("harvest", "policy", "set", "--max-temp", "65")
    monkeypatch.setenv("FOGCTL_HARVEST_MAX_TEMP", "80")
    rec = cli("harvest", "policy", "show", "--json").record()
    assert rec["values"]["max_temp"] == 80 and rec["sources"]["max_temp"] == "env"


def test_add_list_run_cycle(cli: Any, sensors: Sensors, tmp_path: Path) -> None:
    split = cli(
        "harvest",
        "split",
        str(ROOT / "examples" / "harvest-sum.yaml"),
        "--chunks",
        "2",
        "--range",
        "0:1000",
        "-o",
        str(tmp_path),
        "--json",
    )
    assert split.code == 0, split.stderr
    paths = [r["path"] for r in split.records()]
    added = cli("harvest", "add", *paths, "--json")
    assert added.code == 0, added.stderr
    assert [r["state"] for r in added.records()] == ["queued", "queued"]
    cli("harvest", "policy", "set", "--poll", "0.2s", "--min-backoff", "0")
    sensors.update(idle=5)
    res = cli("harvest", "run", "--json")
    assert res.code == 0 and res.record()["outcome"] == "ineligible"
    assert any(r.startswith("idle:") for r in res.record()["reasons"])
    sensors.update(idle=900)
    res = cli("harvest", "run", "--json")
    assert res.code == 0, res.stderr
    assert len(res.record()["completed"]) == 2
    listed = cli("harvest", "list", "--state", "done", "--json").records()
    assert len(listed) == 2 and all(t["energy_j"] >= 0 for t in listed)
    merged = cli("harvest", "merge", "harvest-sum", "--json").record()
    assert sum(v[0] for v in merged["results"]) == sum(i * i for i in range(1000))


def test_bad_input_is_one_line(cli: Any, tmp_path: Path, monkeypatch: Any) -> None:
    missing = cli("harvest", "add", str(tmp_path / "none.yaml"), "--json")
    assert missing.code == 2 and "Traceback" not in missing.stderr
    bad = tmp_path / "s.json"
    bad.write_text('{"battery": "full"}')
    monkeypatch.setenv("FOGCTL_HARVEST_SENSORS", str(bad))
    res = cli("harvest", "status", "--json")
    assert res.code == 2 and "battery" in res.stderr
    assert cli("harvest", "list", "--state", "weird").code == 2
    assert cli("harvest", "install", "--cron", "--loop").code in (2, 3)
    assert cli("harvest", "install", "--every", "7m", "--no-enable").code == 2


def test_install_uninstall_cli(cli: Any, tmp_path: Path) -> None:
    d = tmp_path / "units"
    res = cli(
        "harvest", "install", "--systemd", "--user", "--unit-dir", str(d), "--no-enable", "--json"
    )
    assert res.code == 0, res.stderr
    assert {Path(r["path"]).name for r in res.records()} == {
        "fogctl-harvest.service",
        "fogctl-harvest.timer",
    }
    res = cli("harvest", "uninstall", "--json")
    assert res.code == 0 and len(res.records()) == 2 and not any(d.iterdir())


def test_calibrate_without_rapl_is_unavailable(cli: Any) -> None:
    from fogctl.harvest.power import rapl_domains

    res = cli("harvest", "calibrate", "--seconds", "0.2", "--json")
    if rapl_domains():
        assert res.code == 0 and res.record()["source"] == "rapl"
    else:
        assert res.code == 3 and "RAPL" in res.stderr


def test_submit_harvest_fills_the_queue(cli: Any, sensors: Sensors, tmp_path: Path) -> None:
    job = tmp_path / "small.yaml"
    job.write_text(
        f"metadata: {{name: small}}\nwasm: {ROOT / 'examples' / 'harvest-sum.wat'}\n"
        "env: {FOGCTL_INDEX_START: '0', FOGCTL_INDEX_END: '100'}\n"
    )
    res = cli("submit", "--harvest", str(job), "--json")
    assert res.code == 0, res.stderr
    ref = res.record()["ref"]
    (task,) = cli("harvest", "list", "--json").records()
    assert task["id"] == ref and task["state"] == "queued"
    cli("harvest", "policy", "set", "--poll", "0.2s")
    assert cli("harvest", "run", "--json").record()["completed"] == [ref]
    (task,) = cli("harvest", "list", "--json").records()
    assert task["result"] == f"[{sum(i * i for i in range(100))}]"
