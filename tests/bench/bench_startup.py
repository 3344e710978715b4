"""Start-up time of fogctl beside bare Python, measured in the same run.

    python tests/bench/bench_startup.py [--runs N]

Targets (issue: foundation): ``fogctl --version`` under 3x and ``fogctl --help``
under 5x the median start-up of ``python -c pass``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def median_seconds(cmd: list[str], runs: int) -> float:
    subprocess.run(cmd, capture_output=True, check=True)  # warm the page cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    exe = shutil.which("fogctl")
    fogctl = [exe] if exe else [sys.executable, "-m", "fogctl.cli.main"]
    base = median_seconds([sys.executable, "-c", "pass"], args.runs)
    rows = [("python -c pass", base, 1.0, None)]
    for label, extra, target in (
        ("fogctl --version", ["--version"], 3.0),
        ("fogctl --help", ["--help"], 5.0),
    ):
        t = median_seconds([*fogctl, *extra], args.runs)
        rows.append((label, t, t / base, target))
    print(f"{'command':<20} {'median ms':>10} {'x python':>9} {'target':>7}")
    ok = True
    for label, t, ratio, target in rows:
        mark = "" if target is None else (f"<{target:.0f}x " + ("ok" if ratio < target else "MISS"))
        ok &= target is None or ratio < target
        print(f"{label:<20} {t * 1000:>10.1f} {ratio:>9.2f} {mark:>7}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
