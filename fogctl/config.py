"""Configuration with one precedence rule: flags > ``FOGCTL_*`` env > config.yaml > defaults.

Keys are dotted (``harvest.min_battery``). The environment variable for a key is
``FOGCTL_`` + the key upper-cased with dots and dashes as underscores
(``FOGCTL_HARVEST_MIN_BATTERY``). ``config.yaml`` in the state directory holds the
same keys nested (``harvest: {min_battery: 50}``). An environment value is coerced to
the type of the key's default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fogctl.errors import InvalidInput

__all__ = ["CONFIG_FILE", "Config", "env_name", "load_config"]

CONFIG_FILE = "config.yaml"
_MISSING: Any = object()


def env_name(key: str) -> str:
    return "FOGCTL_" + key.upper().replace(".", "_").replace("-", "_")


def _flatten(prefix: str, data: Mapping[str, Any], out: dict[str, Any]) -> None:
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            _flatten(key, v, out)
        else:
            out[key] = v


def _coerce(key: str, raw: str, like: Any) -> Any:
    source = env_name(key)
    if isinstance(like, bool):
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off", ""):
            return False
        raise InvalidInput(f"{source}: expected a boolean, got {raw!r}")
    if isinstance(like, int):
        try:
            return int(raw)
        except ValueError:
            raise InvalidInput(f"{source}: expected an integer, got {raw!r}") from None
    if isinstance(like, float):
        try:
            return float(raw)
        except ValueError:
            raise InvalidInput(f"{source}: expected a number, got {raw!r}") from None
    return raw


class Config:
    """Resolved configuration for one process. Cheap to build; read-only."""

    def __init__(
        self,
        file_values: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        path: Path | None = None,
    ) -> None:
        self._file = dict(file_values or {})
        self._env = os.environ if environ is None else environ
        self.path = path

    def get(self, key: str, default: Any = None, *, flag: Any = _MISSING) -> Any:
        """Value of ``key``: ``flag`` if given (not None), else env, else file, else default."""
        if flag is not _MISSING and flag is not None:
            return flag
        raw = self._env.get(env_name(key))
        if raw is not None:
            return _coerce(key, raw, default)
        if key in self._file:
            return self._file[key]
        return default

    def source(self, key: str, *, flag: Any = _MISSING) -> str:
        """Where ``key``'s value comes from: flag, env, file or default."""
        if flag is not _MISSING and flag is not None:
            return "flag"
        if env_name(key) in self._env:
            return "env"
        if key in self._file:
            return "file"
        return "default"

    def section(self, prefix: str) -> dict[str, Any]:
        """File values under ``prefix.`` (without the prefix)."""
        p = prefix + "."
        return {k[len(p) :]: v for k, v in self._file.items() if k.startswith(p)}


def load_config(state_dir: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read ``config.yaml`` from ``state_dir`` if present (no file is fine)."""
    path = state_dir / CONFIG_FILE
    values: dict[str, Any] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read: {exc.strerror}") from None
    if text.strip():
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
            problem = getattr(exc, "problem", None) or "invalid YAML"
            raise InvalidInput(f"{where}: {problem}") from None
        if data is not None and not isinstance(data, Mapping):
            raise InvalidInput(f"{path}: expected a mapping at the top level")
        _flatten("", data or {}, values)
    return Config(values, environ, path)
