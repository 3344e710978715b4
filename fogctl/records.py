"""Records: the JSON objects fogctl commands pass over pipes, one per line.

A record is a frozen, slotted dataclass with a ``kind`` (a class variable written
into every JSON object) and stable field names. The same classes serve the library
and the CLI, so there is one schema; fogctl-records(5) is generated from them.

Domains define their own record classes in their event/record modules and register
them with :func:`record` so that :func:`read_records` can rebuild them from JSON.

Reading is strict about syntax and types (an error names ``file:line``) and lenient
about fields it does not know, so newer producers can feed older consumers.
"""

from __future__ import annotations

import dataclasses
import io
import json
import sys
import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, ClassVar, TypeVar

from fogctl.errors import InvalidInput

__all__ = [
    "AssignmentRecord",
    "ComponentStatus",
    "ErrorRecord",
    "NodeRecord",
    "Record",
    "iter_json_lines",
    "read_records",
    "record",
    "record_from_dict",
    "record_types",
    "to_json_line",
]


class Record:
    """Base of every record. Subclasses are ``@record`` frozen slotted dataclasses."""

    __slots__ = ()
    kind: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict, ``kind`` first, fields in declared order."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            out[f.name] = _jsonable(getattr(self, f.name))
        return out


_REGISTRY: dict[str, type[Record]] = {}
R = TypeVar("R", bound=type[Record])


@typing.dataclass_transform(frozen_default=True)
def record(kind: str) -> typing.Callable[[R], R]:
    """Class decorator: make a frozen slotted dataclass record of ``kind`` and register it."""

    def wrap(cls: R) -> R:
        if kind in _REGISTRY and _REGISTRY[kind].__qualname__ != cls.__qualname__:
            raise ValueError(f"record kind {kind!r} is already registered")
        cls.kind = kind
        dc = dataclasses.dataclass(frozen=True, slots=True)(cls)
        _REGISTRY[kind] = dc
        return dc  # type: ignore[return-value]

    return wrap


def record_types() -> dict[str, type[Record]]:
    """All registered record kinds (for docs and readers)."""
    return dict(sorted(_REGISTRY.items()))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Path):
        return str(value)
    return value


def to_json_line(rec: Record | Mapping[str, Any]) -> str:
    """One compact JSON line (no trailing newline)."""
    data = rec.to_dict() if isinstance(rec, Record) else dict(rec)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# -- reading -----------------------------------------------------------------------


def _open_source(source: str | Path | IO[str]) -> tuple[str, IO[str], bool]:
    if isinstance(source, io.TextIOBase | io.StringIO) or hasattr(source, "read"):
        name = getattr(source, "name", "<stdin>")
        return (str(name) if isinstance(name, str) else "<stdin>"), source, False  # type: ignore[return-value]
    text = str(source)
    if text == "-":
        return "<stdin>", sys.stdin, False
    try:
        return text, open(text, encoding="utf-8"), True
    except FileNotFoundError:
        raise InvalidInput(f"{text}: no such file") from None
    except IsADirectoryError:
        raise InvalidInput(f"{text}: is a directory") from None
    except PermissionError:
        raise InvalidInput(f"{text}: permission denied") from None


def iter_json_lines(
    source: str | Path | IO[str], *, name: str | None = None, comments: bool = False
) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """Yield ``(name, lineno, object)`` for each non-blank line of JSON Lines input.

    ``source`` is a path, ``"-"`` for stdin, or an open text stream (``name`` names it in
    errors). With ``comments``, lines starting with ``#`` are skipped (spec files allow
    them; records on pipes do not). Raises :class:`InvalidInput` naming ``file:line``
    for a line that is not a JSON object.
    """
    opened_as, stream, close = _open_source(source)
    name = name or opened_as
    try:
        lineno = 0
        while True:
            try:
                line = stream.readline()
            except UnicodeDecodeError:
                raise InvalidInput(f"{name}:{lineno + 1}: not valid UTF-8") from None
            if not line:
                break
            lineno += 1
            if not line.strip() or (comments and line.lstrip().startswith("#")):
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"{name}:{lineno}: not JSON: {exc.msg}") from None
            except RecursionError:
                raise InvalidInput(f"{name}:{lineno}: JSON nested too deeply") from None
            if not isinstance(obj, dict):
                raise InvalidInput(f"{name}:{lineno}: expected a JSON object per line")
            yield name, lineno, obj
    finally:
        if close:
            stream.close()


def read_records(
    source: str | Path | IO[str], *, kinds: Iterable[str] | None = None
) -> Iterator[Record | dict[str, Any]]:
    """Read JSON Lines records; known kinds become record objects, others stay dicts.

    With ``kinds``, a record of any other kind is an error naming its line.
    """
    allowed = set(kinds) if kinds is not None else None
    for name, lineno, obj in iter_json_lines(source):
        kind = obj.get("kind")
        if allowed is not None and kind not in allowed:
            want = ", ".join(sorted(allowed))
            raise InvalidInput(f"{name}:{lineno}: expected a record of kind {want}, got {kind!r}")
        try:
            yield record_from_dict(obj) if kind in _REGISTRY else obj
        except InvalidInput as exc:
            raise InvalidInput(f"{name}:{lineno}: {exc.message}") from None


def _check_type(name: str, value: Any, hint: Any) -> Any:
    """Check (and lightly coerce) one field value against its annotation."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_type(name, value, arg)
            except InvalidInput as exc:
                errors.append(exc)
        raise errors[0] if errors else InvalidInput(f"field {name!r}: bad value")
    if hint is Any or hint is object:
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise InvalidInput(f"field {name!r}: expected a list")
        (item,) = typing.get_args(hint)[:1] or (Any,)
        return tuple(_check_type(name, v, item) for v in value)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise InvalidInput(f"field {name!r}: expected an object")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise InvalidInput(f"field {name!r}: expected true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"field {name!r}: expected an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(f"field {name!r}: expected a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise InvalidInput(f"field {name!r}: expected a string")
        return value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise InvalidInput(f"field {name!r}: expected an object")
        return _build(hint, value)
    return value


def _build(cls: type[Any], obj: Mapping[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in obj:
            kwargs[f.name] = _check_type(f.name, obj[f.name], hints[f.name])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise InvalidInput(f"missing field {f.name!r}")
    return cls(**kwargs)


def record_from_dict(obj: Mapping[str, Any]) -> Record:
    """Rebuild a registered record from its dict; unknown fields are ignored."""
    kind = obj.get("kind")
    if not isinstance(kind, str) or kind not in _REGISTRY:
        raise InvalidInput(f"unknown record kind {kind!r}")
    built: Record = _build(_REGISTRY[kind], obj)
    return built


# -- records shared by every domain ---------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ComponentStatus:
    """Whether a real component fogctl drives can be reached, and where."""

    reachable: bool
    endpoint: str
    detail: str = ""


@record("node")
class NodeRecord(Record):
    """A fog node: identity, reachability and (when known) what it offers.

    ``id`` is the hex SHA-256 of the Ed25519 public key, truncated to 160 bits (the
    Kademlia id space). ``memory`` is in bytes, ``cpu`` in cores, utilisations and
    ``trust`` in 0..1, ``latency_ms`` from the reader, ``cost`` and ``price`` per hour.
    """

    id: str
    ed25519: str | None = None
    x25519: str | None = None
    addresses: tuple[str, ...] = ()
    cpu: float | None = None
    memory: int | None = None
    cpu_util: float | None = None
    memory_util: float | None = None
    latency_ms: float | None = None
    trust: float | None = None
    cost: float | None = None
    price: float | None = None
    bid: str | None = None
    tier: str | None = None
    region: str | None = None
    operator: str | None = None
    battery: float | None = None
    temperature_c: float | None = None
    stake_address: str | None = None
    onion: str | None = None
    mix_key: str | None = None
    state_dir: str | None = None
    version: str | None = None
    created: bool | None = None
    components: dict[str, Any] | None = None


@record("error")
class ErrorRecord(Record):
    """A failure, written to stderr with ``--json``: ``code`` names it, ``exit`` is the status."""

    code: str
    exit: int
    message: str


@record("assignment")
class AssignmentRecord(Record):
    """A placement of one job on one node: written by fogctl schedule, read by fogctl submit.

    ``order`` is the start order (0 first); ``start``/``finish`` are predicted seconds
    from plan time; ``objectives`` holds latency_ms, balance, trust, cost, price;
    ``preempts`` names running jobs evicted to make room; ``node`` is null and
    ``unplaced`` says why when ``--allow-partial`` left the job out; ``spec`` carries
    the job spec so ``fogctl submit -`` can run it.
    """

    job: str
    node: str | None = None
    order: int = 0
    start: float | None = None
    finish: float | None = None
    objectives: dict[str, Any] | None = None
    preempts: tuple[str, ...] = ()
    unplaced: str | None = None
    spec: dict[str, Any] | None = None
