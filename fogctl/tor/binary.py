"""Finding the tor binaries (Debian puts them in /usr/sbin, often off a user's PATH)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from fogctl.errors import OperationFailed, ServiceUnavailable

__all__ = ["INSTALL_HINT", "SBIN_DIRS", "find_tor", "find_tor_gencert", "tor_version"]

INSTALL_HINT = "install it with 'sudo apt-get install tor' (Debian/Ubuntu) or set FOGCTL_TOR_BINARY"
# Searched after $PATH when tor.binary is not configured: Debian's package installs
# /usr/sbin/tor, which is not on an ordinary user's PATH.
SBIN_DIRS: tuple[str, ...] = ("/usr/sbin", "/usr/local/sbin", "/sbin")


def _resolve(name: str, configured: str | None) -> str:
    if configured:
        if os.sep in configured:
            if os.access(configured, os.X_OK) and Path(configured).is_file():
                return configured
            raise ServiceUnavailable(f"{configured} is not an executable file", hint=INSTALL_HINT)
        found = shutil.which(configured)
        if found is None:
            raise ServiceUnavailable(
                f"{configured} is not installed (not on PATH)", hint=INSTALL_HINT
            )
        return found
    search = os.environ.get("PATH", os.defpath)
    found = shutil.which(name, path=os.pathsep.join([search, *SBIN_DIRS]))
    if found is None:
        raise ServiceUnavailable(f"{name} is not installed (not on PATH)", hint=INSTALL_HINT)
    return found


def find_tor(configured: str | None = None) -> str:
    """Path of the tor daemon: ``tor.binary`` config if set, else PATH, else /usr/sbin."""
    if configured is None:
        configured = os.environ.get("FOGCTL_TOR_BINARY") or None
    return _resolve("tor", configured)


def find_tor_gencert(tor: str | None = None) -> str:
    """Path of tor-gencert (ships with Debian's tor package), next to tor if possible."""
    if tor is not None:
        sibling = Path(tor).with_name("tor-gencert")
        if sibling.is_file() and os.access(sibling, os.X_OK):
            return str(sibling)
    search = os.environ.get("PATH", os.defpath)
    dirs = [search, "/usr/bin", *SBIN_DIRS]
    found = shutil.which("tor-gencert", path=os.pathsep.join(dirs))
    if found is None:
        raise ServiceUnavailable("tor-gencert is not installed", hint=INSTALL_HINT)
    return found


def tor_version(tor: str) -> str:
    """``tor --version`` as a short string (e.g. ``0.4.9.11``)."""
    try:
        res = subprocess.run(
            [tor, "--version"], capture_output=True, text=True, timeout=20, check=False
        )
    except OSError as exc:
        raise ServiceUnavailable(f"cannot run {tor}: {exc.strerror}", hint=INSTALL_HINT) from None
    except subprocess.TimeoutExpired:
        raise OperationFailed(f"{tor} --version did not answer in 20 s") from None
    first = res.stdout.strip().splitlines()[:1]
    if res.returncode != 0 or not first or not first[0].startswith("Tor version"):
        raise ServiceUnavailable(f"{tor} does not look like tor", hint=INSTALL_HINT)
    return first[0].removeprefix("Tor version").strip().rstrip(".")
