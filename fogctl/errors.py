"""Typed errors and the exit codes they map to, in one place.

Every expected failure in fogctl is a :class:`FogError` subclass. The CLI edge turns
it into one line on stderr (and an ``error`` record with ``--json``) and exits with
its code. Anything else is a bug.

Exit codes (documented in fogctl(1)):

====  ==========================================================
0     success
1     the operation failed (:class:`OperationFailed`)
2     usage error or invalid input (:class:`InvalidInput`)
3     a needed service is unreachable (:class:`ServiceUnavailable`)
4     authentication or authorization refused (:class:`Refused`)
130   interrupted (SIGINT)
====  ==========================================================
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_REFUSED = 4
EXIT_INTERRUPTED = 130


class FogError(Exception):
    """Base of all expected fogctl failures; ``str(err)`` is the one-line message."""

    exit_code: int = EXIT_FAILED
    code: str = "failed"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class OperationFailed(FogError):
    """The operation ran and failed (exit 1)."""

    exit_code = EXIT_FAILED
    code = "failed"


class InvalidInput(FogError):
    """Bad flags, files, records or specs (exit 2). Message names file:line where known."""

    exit_code = EXIT_USAGE
    code = "invalid"


class ServiceUnavailable(FogError):
    """A needed service (docker, tor, chain RPC, peers) cannot be reached (exit 3)."""

    exit_code = EXIT_UNAVAILABLE
    code = "unavailable"


class Refused(FogError):
    """Authentication or authorization was refused (exit 4)."""

    exit_code = EXIT_REFUSED
    code = "refused"


class StateError(OperationFailed):
    """The state directory cannot be created, read or written (exit 1)."""

    code = "state"


__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "FogError",
    "InvalidInput",
    "OperationFailed",
    "Refused",
    "ServiceUnavailable",
    "StateError",
]
