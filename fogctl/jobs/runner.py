"""``python -m fogctl.jobs.runner [--concurrency N] JOB...``: the detached runner that
``fogctl submit`` (without ``--wait``) starts. It drives its jobs to terminal states,
logs to stderr (the state dir's ``jobs/runner.log``), stops cleanly on SIGTERM (its
in-process attempts are stopped; containers are left for a later adopter) and exits."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from fogctl.errors import FogError


def _term(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fogctl-job-runner")
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("ids", nargs="+")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _term)
    from fogctl.jobs.engine import run_jobs
    from fogctl.state import State

    try:
        run_jobs(State(), args.ids, concurrency=args.concurrency)
    except FogError as exc:
        sys.stderr.write(f"fogctl runner: {exc.message}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
