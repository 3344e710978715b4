"""fogctl-schedule(1) pages are current and complete; --help stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fogctl.cli import manpages

MAN = Path(__file__).resolve().parents[2] / "man"
HEAVY = ("numpy", "pymoo", "matplotlib", "scipy", "moocore", "rich", "highspy")


def test_schedule_man_pages_are_current_and_name_every_option() -> None:
    from fogctl.cli.main import get_click_command

    pages = {n: t for n, t in manpages.generate().items() if n.startswith("fogctl-schedule")}
    assert set(pages) == {
        "fogctl-schedule.1",
        "fogctl-schedule-price.1",
        "fogctl-schedule-sim.1",
    }
    for name, text in pages.items():
        assert (MAN / name).read_text() == text, f"{name} is stale: regenerate it"
    root = get_click_command()
    ctx = root.context_class(root, info_name="fogctl")
    for path, command, sub_ctx in manpages.walk(root, ctx, ["fogctl"]):
        if path[1:2] != ["schedule"]:
            continue
        page = (MAN / f"{'-'.join(path)}.1").read_text()
        assert command.epilog and "fogctl schedule" in command.epilog
        for param in command.get_params(sub_ctx):
            for opt in param.opts:
                if opt.startswith("-"):
                    assert manpages.esc(opt) in page, f"{path} does not mention {opt}"
    assert "fogctl dht providers \\-\\-json | fogctl schedule" in pages["fogctl-schedule.1"]


def test_help_imports_nothing_heavy() -> None:
    for args in (["schedule", "--help"], ["schedule", "sim", "--help"]):
        res = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "fogctl.cli.main", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 0, res.stderr[-2000:]
        mods = {
            line.rsplit("|", 1)[1].strip()
            for line in res.stderr.splitlines()
            if line.startswith("import time:") and "|" in line
        }
        heavy = sorted(m for m in mods if m.split(".")[0] in HEAVY)
        assert not heavy, f"fogctl {' '.join(args)} imported {heavy[:5]}"
    # the engine package itself is cheap to import: numpy loads on first use
    probe = "import sys, fogctl.schedule; print(sorted(m for m in sys.modules if m in %r))"
    res = subprocess.run(
        [sys.executable, "-c", probe % (HEAVY,)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stdout + res.stderr
