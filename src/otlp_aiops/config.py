"""Strict configuration objects: one frozen dataclass per model or stage is the single description of
its settings. It is one section of ``params.yaml``, it is what MLflow logs, and an unknown key is an
error, never a silent default."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting that is unknown, of the wrong type or out of range; the message names it."""


_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_NUMBER = re.compile(r"\d+(\.\d+)?")


def parse_duration(value: Any, key: str = "duration") -> float:
    """Seconds from ``3600``, ``"3600s"``, ``"90m"``, ``"2h"``, ``"1h30m"``, ``"500ms"``, ``"1d"``
    (a number alone is seconds); :class:`ConfigError` naming ``key`` for anything else or a
    negative duration. Every duration setting (simulator, features, benchmark) is read here."""
    not_one = f"{key}: {value!r} is not a duration (use e.g. 15s, 5m, 2h, 1h30m or a number of seconds)"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(not_one)
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if _NUMBER.fullmatch(text):
            seconds = float(text)
        else:
            parts = _DURATION_PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ConfigError(not_one)
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    else:
        seconds = float(value)
    if seconds < 0:
        raise ConfigError(f"{key}: must not be negative, got {value!r}")
    return seconds


def _coerce(name: str, tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(name, arg, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}{name}: invalid value {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}{name}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        items = [_coerce(name, inner, v, where) for v in value]
        return tuple(items) if origin is tuple else items
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}{name}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where}{name}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}{name}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}{name}: expected a string, got {value!r}")
    return value


def config_from_dict(cls: type[T], values: Mapping[str, Any] | None, where: str = "") -> T:
    """Build the frozen dataclass ``cls`` from a mapping (a ``params.yaml`` section).

    Unknown keys raise :class:`ConfigError` naming the key and the known ones; values are checked
    against the field types (ints are accepted for floats); ``__post_init__`` may check ranges.
    ``where`` prefixes messages, e.g. ``"params.yaml rca.baro: "``.
    """
    values = dict(values or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}unknown setting(s) {', '.join(unknown)} for {cls.__name__}; "
            f"known: {', '.join(sorted(fields))}"
        )
    kwargs = {k: _coerce(k, hints[k], v, where) for k, v in values.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}{e}") from None


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain JSON-able values (tuples become lists); the inverse of config_from_dict."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out
