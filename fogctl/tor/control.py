"""Opening an authenticated stem controller, with failures mapped to fogctl's exit codes.

Endpoints are written ``unix:///path/to/control.sock``, ``/path/to/control.sock``,
``HOST:PORT`` or a bare ``PORT`` (on 127.0.0.1). Authentication tries what tor offers
(cookie or safecookie read from the path tor announces, or a password); an explicit
``cookie`` file or ``password`` is used instead when given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fogctl.errors import InvalidInput, Refused, ServiceUnavailable
from fogctl.hostport import parse_hostport

__all__ = ["Endpoint", "open_controller", "parse_endpoint"]

Endpoint = tuple[str, str | int]  # ("unix", path) or (host, port)


def parse_endpoint(text: str) -> Endpoint:
    """``unix:///p``, ``/p``, ``HOST:PORT`` or ``PORT`` -> endpoint; bad input exits 2."""
    value = text.strip()
    if value.startswith("unix://"):
        value = value[len("unix://") :]
    if value.startswith("/"):
        return ("unix", value)
    try:
        return parse_hostport(value, what="control port", port_alone=True)
    except InvalidInput as exc:
        raise InvalidInput(f"{exc.message} (or PORT, or a socket path)") from None


def describe(endpoint: Endpoint) -> str:
    return f"unix://{endpoint[1]}" if endpoint[0] == "unix" else f"{endpoint[0]}:{endpoint[1]}"


_CLASS: Any = None


def _controller_class() -> Any:
    """stem's Controller without its automatic TAKEOWNERSHIP.

    When ``__OwningControllerProcess`` names our pid, stem's Controller sends
    TAKEOWNERSHIP after authenticating, and tor then exits as soon as that one control
    connection closes. fogctl opens short-lived connections to tors it owns, so it
    keeps the pid-based ownership instead.
    """
    global _CLASS
    if _CLASS is None:
        from stem.control import BaseController, Controller

        class FogController(Controller):  # type: ignore[misc]
            def _post_authentication(self) -> None:
                BaseController._post_authentication(self)

        _CLASS = FogController
    return _CLASS


def open_controller(
    endpoint: Endpoint,
    *,
    password: str | None = None,
    cookie: Path | None = None,
) -> Any:
    """A connected, authenticated ``stem.control.Controller`` (the caller closes it).

    Unreachable -> :class:`ServiceUnavailable` (exit 3); refused credentials ->
    :class:`Refused` (exit 4). The password never appears in a message.
    """
    import stem
    import stem.connection
    import stem.socket

    where = describe(endpoint)
    cls = _controller_class()
    try:
        if endpoint[0] == "unix":
            controller = cls(stem.socket.ControlSocketFile(str(endpoint[1])))
        else:
            controller = cls(stem.socket.ControlPort(str(endpoint[0]), int(endpoint[1])))
    except stem.SocketError as exc:
        raise ServiceUnavailable(
            f"tor control {where} unreachable: {exc}", hint="start it with 'fogctl tor up'"
        ) from None
    try:
        if cookie is not None:
            stem.connection.authenticate_cookie(controller, str(cookie))
        elif password is not None:
            stem.connection.authenticate_password(controller, password)
        else:
            stem.connection.authenticate(controller)
    except stem.connection.UnreadableCookieFile as exc:
        controller.close()
        raise Refused(
            f"tor control {where}: cannot read the auth cookie {exc.cookie_path}"
        ) from None
    except stem.connection.IncorrectCookieSize:
        controller.close()
        raise Refused(f"tor control {where}: the auth cookie file has the wrong size") from None
    except stem.connection.MissingPassword:
        controller.close()
        raise Refused(f"tor control {where} wants a password (use --password)") from None
    except stem.connection.PasswordAuthFailed:
        controller.close()
        raise Refused(f"tor control {where} refused the password") from None
    except stem.connection.CookieAuthFailed:
        controller.close()
        raise Refused(f"tor control {where} refused the auth cookie") from None
    except stem.connection.AuthenticationFailure as exc:
        controller.close()
        raise Refused(f"tor control {where} refused authentication: {exc}") from None
    except stem.SocketError as exc:
        controller.close()
        raise ServiceUnavailable(f"tor control {where} closed the connection: {exc}") from None
    return controller
