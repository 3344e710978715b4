"""Where the state directory lives, and making sure it is usable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from fogctl.errors import StateError

ENV_HOME = "FOGCTL_HOME"


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$FOGCTL_HOME``, else the platform's user state directory for fogctl."""
    env = os.environ if environ is None else environ
    home = env.get(ENV_HOME)
    if home:
        return Path(home).expanduser()
    import platformdirs

    return Path(platformdirs.user_state_dir("fogctl", appauthor=False))


def _describe(exc: OSError) -> str:
    return exc.strerror or exc.__class__.__name__


def ensure_dir(path: Path, *, mode: int = 0o700) -> Path:
    """Create ``path`` (and parents) if missing; fail clearly if it is not a usable directory."""
    try:
        path.mkdir(mode=mode, parents=True, exist_ok=True)
    except FileExistsError:
        raise StateError(f"state directory {path}: exists and is not a directory") from None
    except NotADirectoryError:
        raise StateError(f"state directory {path}: a parent is not a directory") from None
    except OSError as exc:
        raise StateError(f"state directory {path}: cannot create: {_describe(exc)}") from None
    if not path.is_dir():
        raise StateError(f"state directory {path}: exists and is not a directory")
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise StateError(f"state directory {path}: not readable and writable by this user")
    return path


def check_readable(path: Path) -> Path:
    """Fail clearly unless ``path`` is an existing, readable directory (creates nothing)."""
    if not path.exists():
        raise StateError(f"state directory {path}: does not exist (run 'fogctl init')")
    if not path.is_dir():
        raise StateError(f"state directory {path}: exists and is not a directory")
    if not os.access(path, os.R_OK | os.X_OK):
        raise StateError(f"state directory {path}: not readable by this user")
    return path
