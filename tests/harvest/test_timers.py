"""Timers: systemd units checked by systemd-analyze, crontab lines, idempotence, uninstall."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fogctl.errors import InvalidInput, OperationFailed
from fogctl.harvest.timers import (
    CronTab,
    Schedule,
    install,
    parse_cron_line,
    render_units,
    uninstall,
    verify_units,
)
from fogctl.state import State

from ..conftest import need_binary


def _units(unit_dir: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(unit_dir.iterdir())}


def test_systemd_install_is_verified_idempotent_and_uninstalls_exactly(
    fog_home: Path, tmp_path: Path
) -> None:
    need_binary("systemd-analyze")
    state = State(fog_home)
    d = tmp_path / "units"
    d.mkdir()
    (d / "other.service").write_text("[Service]\nExecStart=/bin/true\n")
    recs = install(
        state,
        directory=d,
        schedule=Schedule(10, 120),
        enable=False,
        cpu_quota=55,
        memory_max=90,
    )
    assert [Path(r.path).name for r in recs] == ["fogctl-harvest.service", "fogctl-harvest.timer"]
    assert all(r.changed and r.verified.startswith("ok") for r in recs), recs
    units = _units(d)
    timer = units["fogctl-harvest.timer"]
    assert "OnCalendar=*-*-* *:00/10:00" in timer and "Persistent=true" in timer
    assert "RandomizedDelaySec=120" in timer
    service = units["fogctl-harvest.service"]
    assert "Type=oneshot" in service and f"Environment=FOGCTL_HOME={fog_home}" in service
    assert "harvest run --quiet" in service
    assert "CPUQuota=55%" in service and "MemoryMax=90%" in service

    again = install(
        state,
        directory=d,
        schedule=Schedule(10, 120),
        enable=False,
        cpu_quota=55,
        memory_max=90,
    )
    assert not any(r.changed for r in again) and _units(d) == units

    removed = uninstall(state)
    assert sorted(Path(r.path).name for r in removed) == sorted(
        ["fogctl-harvest.service", "fogctl-harvest.timer"]
    )
    assert _units(d) == {"other.service": "[Service]\nExecStart=/bin/true\n"}
    assert uninstall(state) == []


def test_loop_service_and_refusals(fog_home: Path, tmp_path: Path) -> None:
    need_binary("systemd-analyze")
    state = State(fog_home)
    d = tmp_path / "units"
    (rec,) = install(state, directory=d, loop=True, grace=3, enable=False)
    text = Path(rec.path).read_text()
    assert "harvest run --loop" in text and "KillSignal=SIGTERM" in text
    assert "TimeoutStopSec=18" in text and rec.verified.startswith("ok")
    # edited by the owner since: uninstall keeps it unless forced
    Path(rec.path).write_text(text + "# mine\n")
    with pytest.raises(OperationFailed, match="changed since"):
        uninstall(state)
    assert Path(rec.path).exists()
    uninstall(state, force=True)
    assert not Path(rec.path).exists()
    # a file fogctl did not write is never replaced
    (d / "fogctl-harvest.timer").write_text("[Timer]\nOnCalendar=daily\n")
    with pytest.raises(OperationFailed, match="not written by fogctl"):
        install(state, directory=d, enable=False)


def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    need_binary("systemd-analyze")
    units = render_units(tmp_path, Schedule(), scope="user", loop=False, grace=3)
    units["fogctl-harvest.timer"] = units["fogctl-harvest.timer"].replace(
        "OnCalendar=*-*-* *:00/5:00", "OnCalendar=*:99/5"
    )
    for name, text in units.items():
        (tmp_path / name).write_text(text)
    verdict = verify_units([tmp_path / n for n in units], "user")
    assert verdict.startswith("failed"), verdict


@pytest.fixture
def crontab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A crontab(1) stand-in with the same interface (-l, -) keeping one file."""
    store = tmp_path / "crontab.txt"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "crontab"
    script.write_text(
        "#!/bin/sh\n"
        f'F="{store}"\n'
        'if [ "$1" = "-l" ]; then\n'
        '  [ -f "$F" ] || { echo "no crontab for $(id -un)" >&2; exit 1; }\n'
        '  cat "$F"; exit 0\n'
        "fi\n"
        'if [ "$1" = "-" ]; then cat > "$F"; exit 0; fi\n'
        "exit 2\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return store


def test_cron_install_parse_idempotent_uninstall(fog_home: Path, crontab: Path) -> None:
    state = State(fog_home)
    crontab.write_text("0 3 * * * /usr/bin/backup\n")
    (rec,) = install(state, method="cron", schedule=Schedule(15, 30))
    assert rec.changed and rec.method == "cron"
    lines = crontab.read_text().splitlines()
    assert lines[0] == "0 3 * * * /usr/bin/backup" and len(lines) == 2
    fields, command = parse_cron_line(lines[1])
    assert fields == ["*/15", "*", "*", "*", "*"]
    assert "harvest run --quiet --jitter 30" in command and f"FOGCTL_HOME={fog_home}" in command
    (again,) = install(state, method="cron", schedule=Schedule(15, 30))
    assert not again.changed and len(crontab.read_text().splitlines()) == 2
    # a new schedule replaces our line, never duplicates it
    install(state, method="cron", schedule=Schedule(30, 30))
    assert [ln.split()[0] for ln in crontab.read_text().splitlines()] == ["0", "*/30"]
    (gone,) = uninstall(state)
    assert gone.changed and crontab.read_text() == "0 3 * * * /usr/bin/backup\n"


def test_cron_parsing_and_schedules() -> None:
    assert parse_cron_line("*/5 * * * * fogctl harvest run")[1] == "fogctl harvest run"
    for bad in ("* * * *", "61 * * * * x", "*/5 25 * * * x", "a * * * * x"):
        with pytest.raises(InvalidInput):
            parse_cron_line(bad)
    assert Schedule(60).cron == "0 * * * *" and Schedule(120).on_calendar == "*-*-* 00/2:00:00"
    for bad_minutes in (0, 7, 90, 300):
        with pytest.raises(InvalidInput):
            Schedule(bad_minutes)


def test_cron_without_crontab_binary(fog_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    from fogctl.errors import ServiceUnavailable

    with pytest.raises(ServiceUnavailable, match="crontab"):
        CronTab()
