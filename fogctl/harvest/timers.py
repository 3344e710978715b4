"""Platform scheduling: a systemd service + timer, or a crontab line, written idempotently.

``install`` writes (and records in ``<state>/harvest/installed.json`` with each file's
SHA-256) exactly these things:

* systemd (``--user``: ``$XDG_CONFIG_HOME/systemd/user``, ``--system``:
  ``/etc/systemd/system``): ``fogctl-harvest.service`` (``Type=oneshot``, runs
  ``fogctl harvest run`` at idle CPU and I/O priority) and ``fogctl-harvest.timer``
  (``OnCalendar``, ``Persistent=true`` so a run missed while the machine slept happens
  at boot, ``RandomizedDelaySec`` so a fleet does not start at one instant); with
  ``--loop``, a long-running ``fogctl-harvest-loop.service`` instead (``harvest run
  --loop``, stopped by SIGTERM with time for the checkpoint grace).
* cron: one line in the user's crontab, tagged with a comment naming the state dir
  (``--jitter`` gives the random delay cron lacks).

Running ``install`` again with the same options changes nothing; ``uninstall`` removes
only what the manifest lists, and refuses to delete a file edited since (``--force``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fogctl.errors import InvalidInput, OperationFailed, ServiceUnavailable
from fogctl.harvest.records import TimerRecord
from fogctl.state import State, write_atomic

__all__ = [
    "CronTab",
    "Schedule",
    "install",
    "parse_cron_line",
    "render_units",
    "uninstall",
    "unit_dir",
    "verify_units",
]

SERVICE = "fogctl-harvest.service"
TIMER = "fogctl-harvest.timer"
LOOP_SERVICE = "fogctl-harvest-loop.service"
MANIFEST = "installed.json"


@dataclass(frozen=True, slots=True)
class Schedule:
    """Every ``minutes`` minutes; systemd OnCalendar and cron forms of the same thing."""

    minutes: int = 5
    jitter: int = 60

    def __post_init__(self) -> None:
        m = self.minutes
        if m < 1 or (m < 60 and 60 % m) or (m >= 60 and (m % 60 or 24 % (m // 60))):
            raise InvalidInput(
                f"--every: {m} min does not divide an hour or a day evenly "
                "(use 1-30 min dividing 60, or 1, 2, 3, 4, 6, 8, 12, 24 h)"
            )
        if self.jitter < 0:
            raise InvalidInput("--jitter: must not be negative")

    @property
    def on_calendar(self) -> str:
        if self.minutes < 60:
            return f"*-*-* *:00/{self.minutes}:00"
        return f"*-*-* 00/{self.minutes // 60}:00:00"

    @property
    def cron(self) -> str:
        if self.minutes < 60:
            return f"*/{self.minutes} * * * *" if self.minutes > 1 else "* * * * *"
        h = self.minutes // 60
        return f"0 */{h} * * *" if h > 1 else "0 * * * *"


def fogctl_command() -> list[str]:
    """How the unit should call fogctl: the console script of this installation (beside
    its interpreter, as pip/venv/pipx install it), else the one on PATH, else this
    interpreter. A wrapper found first on PATH (a pyenv shim: a shell script that
    re-resolves the version, ~100 ms more per run) is not what a timer should run."""
    beside = Path(sys.executable).parent / "fogctl"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    exe = shutil.which("fogctl")
    if exe:
        return [str(Path(exe).resolve())]
    return [sys.executable, "-m", "fogctl.cli.main"]


def unit_dir(scope: str, environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if scope == "system":
        return Path("/etc/systemd/system")
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    return Path(base) / "systemd" / "user"


def _exec(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def render_units(
    state_root: Path,
    schedule: Schedule,
    *,
    scope: str,
    loop: bool,
    grace: float,
    command: Sequence[str] | None = None,
    cpu_quota: float | None = None,
    memory_max: float | None = None,
) -> dict[str, str]:
    """The unit files. ``cpu_quota`` (% of one CPU) and ``memory_max`` (% of RAM), from
    the policy, make systemd cap the whole service too (CPUQuota=, MemoryMax=)."""
    cmd = list(command or fogctl_command())
    env = f"Environment=FOGCTL_HOME={_exec([str(state_root)])}"
    common = "Nice=19\nIOSchedulingClass=idle\nCPUSchedulingPolicy=idle\nNoNewPrivileges=true\n"
    if cpu_quota is not None:
        common += f"CPUQuota={cpu_quota:g}%\n"
    if memory_max is not None:
        common += f"MemoryMax={memory_max:g}%\n"
    wanted = "default.target" if scope == "user" else "multi-user.target"
    if loop:
        return {
            LOOP_SERVICE: (
                "# Written by fogctl harvest install; removed by fogctl harvest uninstall.\n"
                "[Unit]\nDescription=fogctl idle-compute harvesting (foreground loop)\n"
                "Documentation=man:fogctl-harvest(1)\n\n"
                "[Service]\nType=simple\n"
                f"ExecStart={_exec([*cmd, 'harvest', 'run', '--loop', '--quiet'])}\n"
                f"{env}\n{common}"
                "KillSignal=SIGTERM\n"
                f"TimeoutStopSec={int(grace) + 15}\n"
                "Restart=on-failure\nRestartSec=60\n\n"
                f"[Install]\nWantedBy={wanted}\n"
            )
        }
    return {
        SERVICE: (
            "# Written by fogctl harvest install; removed by fogctl harvest uninstall.\n"
            "[Unit]\nDescription=fogctl idle-compute harvesting (one cycle)\n"
            "Documentation=man:fogctl-harvest(1)\n\n"
            "[Service]\nType=oneshot\n"
            f"ExecStart={_exec([*cmd, 'harvest', 'run', '--quiet'])}\n"
            f"{env}\n{common}"
            "KillSignal=SIGTERM\n"
            f"TimeoutStopSec={int(grace) + 15}\n"
        ),
        TIMER: (
            "# Written by fogctl harvest install; removed by fogctl harvest uninstall.\n"
            "[Unit]\nDescription=Run fogctl harvest periodically\n"
            "Documentation=man:fogctl-harvest(1)\n\n"
            f"[Timer]\nOnCalendar={schedule.on_calendar}\nPersistent=true\n"
            f"RandomizedDelaySec={schedule.jitter}\nUnit={SERVICE}\n\n"
            "[Install]\nWantedBy=timers.target\n"
        ),
    }


def verify_units(paths: Sequence[Path], scope: str) -> str:
    """``systemd-analyze verify`` on the units: ``ok``, ``failed: ...`` or ``unavailable``.

    ``--man=no``: the man page may not be installed yet. Without a running user manager
    (a container, a CI box) ``--user`` cannot start, so the same files are checked by
    the system manager's rules (unit syntax, calendar specs, executables are the same).
    """
    tool = shutil.which("systemd-analyze")
    if tool is None:
        return "unavailable: systemd-analyze not installed"
    scopes = [["--user"], []] if scope == "user" else [[]]
    for extra in scopes:
        argv = [tool, "verify", "--man=no", *extra, *map(str, paths)]
        try:
            res = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"unavailable: {exc}"
        if "Failed to initialize manager" in res.stderr and extra:
            continue
        names = {p.name for p in paths}
        ours = [ln for ln in res.stderr.splitlines() if any(n in ln for n in names)]
        how = "" if extra or scope == "system" else " (system manager rules; no user manager)"
        if res.returncode != 0:
            return "failed: " + " | ".join(ours or res.stderr.strip().splitlines()[-1:])
        if ours:
            return "warnings: " + " | ".join(ours) + how
        return "ok" + how
    return "unavailable: no systemd manager could be initialised"


# -- cron --------------------------------------------------------------------------------

_CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")
_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


def parse_cron_line(line: str) -> tuple[list[str], str]:
    """Split a crontab line into its 5 time fields and the command; validate ranges."""
    parts = line.strip().split(None, 5)
    if len(parts) < 6:
        raise InvalidInput(f"crontab line needs 5 time fields and a command: {line!r}")
    fields, command = parts[:5], parts[5]
    for f, (lo, hi) in zip(fields, _CRON_RANGES, strict=True):
        if not _CRON_FIELD.match(f):
            raise InvalidInput(f"crontab field {f!r} is not valid")
        for n in re.findall(r"\d+", re.sub(r"/\d+", "", f)):
            if not lo <= int(n) <= hi:
                raise InvalidInput(f"crontab field {f!r}: {n} outside {lo}-{hi}")
    return fields, command


class CronTab:
    """The user's crontab through the ``crontab`` command (``-l`` to read, ``-`` to write).

    ``user`` names another user's crontab (``crontab -u USER``; root only).
    """

    def __init__(self, command: str = "crontab", user: str | None = None) -> None:
        self.command = shutil.which(command)
        if self.command is None:
            raise ServiceUnavailable(
                "crontab is not installed (apt install cron), or use --systemd"
            )
        self.user = user

    def _argv(self, *args: str) -> list[str]:
        return [self.command or "crontab", *(["-u", self.user] if self.user else []), *args]

    def read(self) -> list[str]:
        res = subprocess.run(
            self._argv("-l"),
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if res.returncode != 0:
            if "no crontab" in res.stderr.lower():
                return []
            raise OperationFailed(f"crontab -l: {res.stderr.strip() or res.returncode}")
        return res.stdout.splitlines()

    def write(self, lines: list[str]) -> None:
        text = "\n".join(lines) + "\n" if lines else ""
        res = subprocess.run(
            self._argv("-"),
            input=text,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if res.returncode != 0:
            raise OperationFailed(f"crontab -: {res.stderr.strip() or res.returncode}")

    def remove(self) -> None:
        res = subprocess.run(
            self._argv("-r"), capture_output=True, text=True, check=False, timeout=30
        )
        if res.returncode != 0 and "no crontab" not in res.stderr.lower():
            raise OperationFailed(f"crontab -r: {res.stderr.strip() or res.returncode}")


def cron_line(state_root: Path, schedule: Schedule, command: Sequence[str] | None = None) -> str:
    cmd = list(command or fogctl_command())
    run = _exec([*cmd, "harvest", "run", "--quiet", "--jitter", str(schedule.jitter)])
    return (
        f"{schedule.cron} FOGCTL_HOME={shlex.quote(str(state_root))} {run} "
        f"# fogctl-harvest {state_root}"
    )


# -- install / uninstall --------------------------------------------------------------


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _manifest_path(state: State) -> Path:
    return state.subdir("harvest") / MANIFEST


def _load_manifest(state: State) -> dict[str, Any]:
    try:
        data = json.loads(_manifest_path(state).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_manifest(state: State, data: dict[str, Any]) -> None:
    write_atomic(_manifest_path(state), json.dumps(data, indent=2, sort_keys=True).encode())


def _systemctl(scope: str, *args: str) -> bool:
    tool = shutil.which("systemctl")
    if tool is None or not Path("/run/systemd/system").is_dir():
        return False
    argv = [tool, *(["--user"] if scope == "user" else []), *args]
    return subprocess.run(argv, capture_output=True, check=False, timeout=60).returncode == 0


def install(
    state: State,
    *,
    method: str = "systemd",
    scope: str = "user",
    schedule: Schedule | None = None,
    loop: bool = False,
    grace: float = 3.0,
    cpu_quota: float | None = None,
    memory_max: float | None = None,
    directory: Path | None = None,
    enable: bool = True,
    crontab: CronTab | None = None,
    command: Sequence[str] | None = None,
) -> list[TimerRecord]:
    """Write the units (or the cron line); idempotent. Returns one record per thing."""
    schedule = schedule or Schedule()
    manifest = _load_manifest(state)
    out: list[TimerRecord] = []
    if method == "cron":
        if loop:
            raise InvalidInput("--loop needs --systemd (cron starts one cycle at a time)")
        tab = crontab or CronTab()
        line = cron_line(state.root, schedule, command)
        parse_cron_line(line)
        lines = tab.read()
        tag = f"# fogctl-harvest {state.root}"
        old = [ln for ln in lines if ln.endswith(tag)]
        changed = old != [line]
        if changed:
            tab.write([ln for ln in lines if not ln.endswith(tag)] + [line])
        manifest["cron"] = {"line": line}
        _save_manifest(state, manifest)
        return [TimerRecord("install", "cron", "crontab", changed, "parsed")]
    if method != "systemd":
        raise InvalidInput(f"unknown install method {method!r} (systemd or cron)")
    if scope not in ("user", "system"):
        raise InvalidInput(f"unknown scope {scope!r} (user or system)")
    d = directory or unit_dir(scope)
    units = render_units(
        state.root,
        schedule,
        scope=scope,
        loop=loop,
        grace=grace,
        command=command,
        cpu_quota=cpu_quota,
        memory_max=memory_max,
    )
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OperationFailed(f"{d}: cannot create: {exc.strerror}") from None
    import tempfile

    with tempfile.TemporaryDirectory(prefix="fogctl-units-") as tmp:
        for name, text in units.items():
            (Path(tmp) / name).write_text(text)
        verified = verify_units([Path(tmp) / n for n in units], scope)
    if verified.startswith("failed"):
        raise OperationFailed(f"systemd-analyze verify rejected the units: {verified}")
    written: dict[str, str] = dict(manifest.get("files", {}))
    paths: list[Path] = []
    changes: list[bool] = []
    for name, text in units.items():
        path = d / name
        try:
            current = path.read_text()
        except FileNotFoundError:
            current = None
        except OSError as exc:
            raise OperationFailed(f"{path}: cannot read: {exc.strerror}") from None
        if current is not None and current != text and str(path) not in written:
            raise OperationFailed(f"{path}: exists and was not written by fogctl; not replacing it")
        changed = current != text
        if changed:
            try:
                write_atomic(path, text.encode())
            except OSError as exc:
                raise OperationFailed(f"{path}: cannot write: {exc.strerror}") from None
        written[str(path)] = _sha(text)
        paths.append(path)
        changes.append(changed)
    manifest["files"] = written
    manifest["scope"] = scope
    _save_manifest(state, manifest)
    if enable:
        unit = LOOP_SERVICE if loop else TIMER
        if _systemctl(scope, "daemon-reload"):
            _systemctl(scope, "enable", "--now", unit)
    for path, changed in zip(paths, changes, strict=True):
        out.append(TimerRecord("install", "systemd", str(path), changed, verified))
    return out


def uninstall(
    state: State, *, force: bool = False, crontab: CronTab | None = None
) -> list[TimerRecord]:
    """Remove exactly what ``install`` recorded; anything edited since is kept unless forced."""
    manifest = _load_manifest(state)
    out: list[TimerRecord] = []
    files: dict[str, str] = dict(manifest.get("files", {}))
    scope = str(manifest.get("scope", "user"))
    if files:
        for name in (TIMER, LOOP_SERVICE):
            if any(Path(p).name == name for p in files):
                _systemctl(scope, "disable", "--now", name)
    for p, sha in sorted(files.items()):
        path = Path(p)
        try:
            text = path.read_text()
        except FileNotFoundError:
            out.append(TimerRecord("uninstall", "systemd", p, False, "already gone"))
            del files[p]
            continue
        if _sha(text) != sha and not force:
            raise OperationFailed(f"{p}: changed since fogctl wrote it; remove by hand or --force")
        path.unlink()
        del files[p]
        out.append(TimerRecord("uninstall", "systemd", p, True))
    if out:
        _systemctl(scope, "daemon-reload")
    cron = manifest.get("cron")
    if isinstance(cron, dict):
        tab = crontab or CronTab()
        lines = tab.read()
        keep = [ln for ln in lines if ln != cron.get("line")]
        changed = len(keep) != len(lines)
        if changed and any(ln.strip() for ln in keep):
            tab.write(keep)
        elif changed:  # ours was the only line: leave no empty crontab behind
            tab.remove()
        out.append(TimerRecord("uninstall", "cron", "crontab", changed))
    manifest.pop("cron", None)
    manifest.pop("files", None)
    manifest.pop("scope", None)
    _save_manifest(state, manifest)
    return out
