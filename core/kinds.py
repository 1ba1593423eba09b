"""The typed seam of the queue: a job kind is declared once, as a `Kind` (its name, key prefix, typed
parameters, run function and the slash command that asks for it), in its own module under jobs/.

Parameters are frozen dataclasses deriving from `Params`. They are checked when built (by a command, a webhook
trigger or a button) and again when a worker reads them back from the queue (`Params.load`), field by field:
a `str` is a str, an `int` an int (never a bool), a `tuple[str, ...]` a sequence of str; unknown or missing
keys are refused. A class adds its own cross-field rules in `check()`. Nothing here knows any particular kind.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

P = TypeVar("P", bound="Params")
MAX_TEXT = 20_000          # a parameter is a reference or a short text, never a document


class BadParams(ValueError):
    """Parameters that do not fit their kind; str() names the field."""


@dataclass(frozen=True)
class Params:
    """Base of every kind's parameters. `quiet`: the job gets no parent message unless it has something to say
    (webhook checks); a kind that can be quiet declares the field."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = _checked(type(self).__name__, f.name, _hints(type(self))[f.name], getattr(self, f.name))
            object.__setattr__(self, f.name, value)
        self.check()

    def check(self) -> None:
        """Cross-field rules; raise BadParams with a one-line reason."""

    @classmethod
    def load(cls: type[P], data: object) -> P:
        """Parameters read back from the queue: a JSON object with exactly this class's fields."""
        if not isinstance(data, dict):
            raise BadParams(f"{cls.__name__}: parameters are not an object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise BadParams(f"{cls.__name__}: unknown parameter {unknown[0]!r}")
        try:
            return cls(**data)
        except TypeError as exc:        # a required field is missing
            raise BadParams(f"{cls.__name__}: {exc}") from None

    def dump(self) -> dict[str, Any]:
        """JSON-ready: tuples become lists."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in dataclasses.fields(self)}

    @property
    def is_quiet(self) -> bool:
        return bool(getattr(self, "quiet", False))


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _checked(owner: str, name: str, hint: Any, value: Any) -> Any:
    where = f"{owner}.{name}"
    if hint is str:
        if not isinstance(value, str):
            raise BadParams(f"{where} must be text, not {type(value).__name__}")
        if len(value) > MAX_TEXT:
            raise BadParams(f"{where} is longer than {MAX_TEXT} characters")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise BadParams(f"{where} must be true or false, not {type(value).__name__}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadParams(f"{where} must be a whole number, not {type(value).__name__}")
        if not -(2**53) < value < 2**53:
            raise BadParams(f"{where} is out of range")
        return value
    if typing.get_origin(hint) is tuple:
        (item, *rest) = typing.get_args(hint)
        if rest != [Ellipsis]:
            raise TypeError(f"{where}: only tuple[X, ...] is supported")
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise BadParams(f"{where} must be a list, not {type(value).__name__}")
        if len(value) > 1000:
            raise BadParams(f"{where} has more than 1000 items")
        return tuple(_checked(owner, f"{name}[{i}]", item, v) for i, v in enumerate(value))
    raise TypeError(f"{where}: parameters are str, int, bool or tuple[X, ...], not {hint!r}")


@dataclass(frozen=True)
class Kind:
    """A job kind, declared once. `run(job)` does the work (a jobs.runtime.JobRun whose `params` is an instance
    of `params`); `command` is the slash command that asks for it ("" when only GitHub or a button does);
    `prefix` starts its job keys (`bp-1a2b3c4d5e`)."""

    name: str
    prefix: str
    params: type[Params]
    run: Callable[[Any], Awaitable[Any]]
    command: str = ""
    about: str = ""

    def __post_init__(self) -> None:
        if not (self.prefix.isascii() and self.prefix.isalpha() and self.prefix.islower()):
            raise ValueError(f"kind {self.name}: prefix {self.prefix!r} must be lower-case letters")

    def load(self, data: object) -> Params:
        return self.params.load(data)


class Registry:
    """Every kind a worker runs, by name; prefixes and commands must not clash."""

    def __init__(self, *kinds: Kind):
        self.by_name: dict[str, Kind] = {}
        prefixes: dict[str, str] = {}
        for kind in kinds:
            if kind.name in self.by_name:
                raise ValueError(f"kind {kind.name} declared twice")
            if kind.prefix in prefixes:
                raise ValueError(f"kinds {prefixes[kind.prefix]} and {kind.name} share the prefix {kind.prefix}")
            self.by_name[kind.name] = kind
            prefixes[kind.prefix] = kind.name

    def __getitem__(self, name: str) -> Kind:
        return self.by_name[name]

    def get(self, name: str) -> Kind | None:
        return self.by_name.get(name)

    def __iter__(self):
        return iter(self.by_name.values())

    def __len__(self) -> int:
        return len(self.by_name)

    def commands(self) -> dict[str, Kind]:
        return {k.command: k for k in self if k.command}
