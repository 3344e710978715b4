"""Helpers shared by command modules (kept tiny: no heavy imports)."""

from __future__ import annotations

from fogctl.state import State


def state() -> State:
    """The state directory this invocation uses (``--home`` > ``FOGCTL_HOME`` > platform)."""
    return State()


def examples(*commands: str) -> str:
    """A command epilog listing example command lines, kept verbatim by click and man."""
    return "Examples:\n\n\b\n" + "\n".join(f"  {c}" for c in commands)
