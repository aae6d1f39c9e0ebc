"""Java-properties text and its mapping onto attrs config classes.

RocketMQ's config files (broker.conf, namesrv.conf) and the bodies of
UPDATE_BROKER_CONFIG / GET_BROKER_CONFIG are ``java.util.Properties`` text.  Config
classes are attrs classes whose field names are RocketMQ's own camelCase keys, so a
user's broker.conf maps onto them one to one; unknown keys are reported, never dropped
silently.
"""

from __future__ import annotations

import difflib
import enum
from typing import Any, TypeVar

import attrs

T = TypeVar("T")

_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _unescape(text: str) -> str:
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "u" and i + 6 <= len(text):
                try:
                    out.append(chr(int(text[i + 2 : i + 6], 16)))
                    i += 6
                    continue
                except ValueError:
                    pass
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.lstrip()
        if not pending and (not line or line[0] in "#!"):
            continue
        # A line continues when it ends in an odd number of backslashes.
        stripped = line.rstrip("\\")
        if (len(line) - len(stripped)) % 2 == 1:
            pending += line[:-1]
            continue
        lines.append(pending + line)
        pending = ""
    if pending:
        lines.append(pending)
    return lines


def parse_properties(text: str) -> dict[str, str]:
    """Parse ``java.util.Properties`` text (``k=v``, ``k: v``, ``k v``, comments, escapes)."""
    result: dict[str, str] = {}
    for line in _logical_lines(text):
        i = 0
        while i < len(line):
            ch = line[i]
            if ch == "\\":
                i += 2
                continue
            if ch in "=: \t\f":
                break
            i += 1
        key = line[:i]
        rest = line[i:].lstrip(" \t\f")
        if rest[:1] in ("=", ":"):
            rest = rest[1:].lstrip(" \t\f")
        result[_unescape(key)] = _unescape(rest).rstrip() if rest else ""
    return result


def format_properties(values: dict[str, str]) -> str:
    """Properties text in the form RocketMQ's ``MixAll.properties2String`` writes (k=v lines)."""
    return "".join(f"{key}={value}\n" for key, value in values.items())


# ---------------------------------------------------------------- config classes


def _to_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.name)
    return str(value)


def _from_text(kind: Any, text: str, key: str) -> object:
    text = text.strip()
    if kind is bool or kind == "bool":
        lowered = text.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        raise ValueError(f"{key}: expected true or false, got {text!r}")
    if kind is int or kind == "int":
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{key}: expected an integer, got {text!r}") from None
    if kind is float or kind == "float":
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{key}: expected a number, got {text!r}") from None
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind[text.upper()]
        except KeyError:
            names = ", ".join(m.name for m in kind)
            raise ValueError(f"{key}: expected one of {names}, got {text!r}") from None
    return text


@attrs.frozen
class ConfigLoad:
    """What ``apply_properties`` did: values set, keys it did not know (with suggestions)."""

    applied: dict[str, str]
    unknown: dict[str, str | None]  # key -> closest known key, if any

    def warnings(self) -> list[str]:
        out = []
        for key, hint in self.unknown.items():
            tip = f" (did you mean {hint!r}?)" if hint else ""
            out.append(f"unknown config key {key!r} ignored{tip}")
        return out


def apply_properties(
    obj: T, props: dict[str, str], *, aliases: dict[str, str] | None = None
) -> tuple[T, ConfigLoad]:
    """A copy of attrs instance ``obj`` with ``props`` applied; unknown keys are reported.

    Raises ``ValueError`` naming the key when a value does not parse.
    """
    cls: Any = type(obj)
    attrs.resolve_types(cls)
    fields = {f.name: f for f in attrs.fields(cls)}
    aliases = aliases or {}
    changes: dict[str, object] = {}
    applied: dict[str, str] = {}
    unknown: dict[str, str | None] = {}
    for key, text in props.items():
        name = aliases.get(key, key)
        field = fields.get(name)
        if field is None:
            close = difflib.get_close_matches(key, list(fields), n=1)
            unknown[key] = close[0] if close else None
            continue
        changes[name] = _from_text(field.type, text, key)
        applied[name] = text
    return attrs.evolve(obj, **changes), ConfigLoad(applied, unknown)  # type: ignore[misc]


def config_to_properties(obj: object) -> dict[str, str]:
    """Every field of an attrs config as text, in declaration order (for -p and GET_*_CONFIG)."""
    cls: Any = type(obj)
    return {f.name: _to_text(getattr(obj, f.name)) for f in attrs.fields(cls)}
