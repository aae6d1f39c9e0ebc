"""Reading and writing the JSON dialect Java's fastjson produces (reference §3.4, §5.8).

fastjson writes maps with non-String keys in two forms that RFC 8259 forbids: bare numbers
(``{"brokerAddrs":{0:"127.0.0.1:10911"}}``) and whole JSON objects in key position
(``{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"t"}:{...}}}``).  Python's ``json``
rejects both, and a regex rewrite of the text would corrupt any string that happens to contain
``,5:`` -- so the reader here is a small tokenizer that always knows whether it is inside a
string.  Plain JSON takes the C-accelerated ``json`` path first; the tokenizer only runs when
that fails, so the common case stays cheap.

Object keys come back as :class:`ObjectKey` (hashable, so they can key a ``dict``); the body
converter turns them into ``MessageQueue`` values.  The writer emits the same forms: bare int
keys when asked, ``ObjectKey`` keys as objects, sorted keys, compact or fastjson's tab-indented
pretty format used for the broker's config files.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Hashable, Iterable, Mapping
from json.decoder import scanstring  # type: ignore[attr-defined]
from json.encoder import encode_basestring, encode_basestring_ascii
from typing import Any, cast

import attrs

from protocol.errors import LocalProtocolError, RemoteProtocolError

__all__ = ["JsonDecodeError", "ObjectKey", "dumps", "dumps_bytes", "loads"]

# Deep enough for every RocketMQ body (they nest four or five levels); shallow enough that a
# hostile ``[[[[...`` can never reach Python's recursion limit.
MAX_DEPTH = 200

_WS = re.compile(r"[ \t\n\r]*")
_WS_CHARS = " \t\n\r"
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_INT_MAP = re.compile(r"(-?[0-9]+:-?[0-9]+(?:,-?[0-9]+:-?[0-9]+)*)[ \t\n\r]*\}")
_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_LITERALS = {"true": True, "false": False, "null": None}
_JS_SAFE = 2**53  # fastjson's BrowserCompatible writes longs beyond ±2^53 as strings


class JsonDecodeError(RemoteProtocolError):
    """The bytes are not JSON, not even in fastjson's lenient dialect."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(f"{message} at offset {pos}")
        self.pos = pos


@attrs.frozen(slots=True)
class ObjectKey:
    """A JSON object used as a map key; frozen so it can key a dict.

    Nested objects become ``ObjectKey`` and arrays become tuples, recursively.
    """

    items: tuple[tuple[Hashable, Hashable], ...]

    @classmethod
    def of(cls, mapping: Mapping[Any, Any]) -> ObjectKey:
        # Sorted: two JSON objects with the same members are the same key in any order.
        items = sorted(mapping.items(), key=_member_order)
        return cls(tuple((key, _freeze(value)) for key, value in items))

    def to_dict(self) -> dict[Any, Any]:
        return {key: _thaw(value) for key, value in self.items}


def _member_order(item: tuple[Any, Any]) -> tuple[str, Any]:
    key = item[0]
    # Any total order will do; keys of one kind compare natively, others (nested object keys)
    # by their text.
    return (type(key).__name__, key if isinstance(key, str | int | float) else repr(key))


def _freeze(value: Any) -> Hashable:
    if isinstance(value, Mapping):
        return ObjectKey.of(value)
    if isinstance(value, list | tuple):
        return tuple(_freeze(item) for item in value)
    if isinstance(value, Hashable):
        return value
    raise LocalProtocolError(f"{type(value).__name__} cannot be part of a map key")


def _thaw(value: Any) -> Any:
    if isinstance(value, ObjectKey):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_thaw(item) for item in value]
    return value


# ---------------------------------------------------------------- reader


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse plain JSON or fastjson output; raise :class:`JsonDecodeError` on anything else."""
    if isinstance(data, str):
        text = data
    else:
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonDecodeError("body is not UTF-8", exc.start) from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    return _Parser(text).parse()


class _Parser:
    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> Any:
        try:
            value = self._value(0)
        except ValueError as exc:  # int() refuses numbers of more than 4300 digits
            raise JsonDecodeError(f"unreadable number: {exc}", self.pos) from None
        self._skip_ws()
        if self.pos != len(self.text):
            raise JsonDecodeError("trailing data after the JSON value", self.pos)
        return value

    def _skip_ws(self) -> None:
        match = _WS.match(self.text, self.pos)
        assert match is not None  # the pattern matches the empty string
        self.pos = match.end()

    def _peek(self) -> str:
        text, pos = self.text, self.pos
        if pos < len(text) and text[pos] in _WS_CHARS:
            self._skip_ws()
            pos = self.pos
        if pos >= len(text):
            raise JsonDecodeError("unexpected end of JSON", pos)
        return text[pos]

    def _value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise JsonDecodeError(f"JSON nested deeper than {MAX_DEPTH}", self.pos)
        char = self._peek()
        if char == "{":
            return self._object(depth + 1)
        if char == "[":
            return self._array(depth + 1)
        if char == '"':
            return self._string()
        if char == "-" or char.isdigit():
            return self._number()
        match = _IDENT.match(self.text, self.pos)
        if match is not None and match.group() in _LITERALS:
            self.pos = match.end()
            return _LITERALS[match.group()]
        raise JsonDecodeError(f"unexpected character {char!r}", self.pos)

    def _string(self) -> str:
        try:
            value, self.pos = scanstring(self.text, self.pos + 1, True)
        except ValueError as exc:
            raise JsonDecodeError("malformed string", self.pos) from exc
        return cast(str, value)

    def _number(self) -> int | float:
        match = _NUMBER.match(self.text, self.pos)
        if match is None:
            raise JsonDecodeError("malformed number", self.pos)
        self.pos = match.end()
        if match.group(1) is None and match.group(2) is None:
            return int(match.group())
        return float(match.group())

    def _key(self, depth: int) -> Hashable:
        char = self._peek()
        if char == '"':
            return self._string()
        if char == "-" or char.isdigit():
            return self._number()
        if char == "{":
            return ObjectKey.of(self._object(depth + 1))
        match = _IDENT.match(self.text, self.pos)
        if match is not None:
            # fastjson accepts unquoted field names; true/false/null stay names, not literals.
            self.pos = match.end()
            return match.group()
        raise JsonDecodeError(f"unexpected character {char!r} in key position", self.pos)

    def _expect(self, char: str) -> None:
        if self._peek() != char:
            raise JsonDecodeError(f"expected {char!r}", self.pos)
        self.pos += 1

    def _object(self, depth: int) -> dict[Hashable, Any]:
        self.pos += 1  # "{"
        # The leaves of consumerOffset.json and delayOffset.json ({0:250,1:249}) are digits,
        # colons and commas only -- no string can start inside such a match -- so they are
        # read in one step instead of a method call per token.
        leaf = _INT_MAP.match(self.text, self.pos)
        if leaf is not None:
            self.pos = leaf.end()
            pairs = (pair.split(":") for pair in leaf.group(1).split(","))
            return {int(key): int(value) for key, value in pairs}
        out: dict[Hashable, Any] = {}
        if self._peek() == "}":
            self.pos += 1
            return out
        while True:
            key = self._key(depth)
            self._expect(":")
            out[key] = self._value(depth)
            char = self._peek()
            self.pos += 1
            if char == "}":
                return out
            if char != ",":
                raise JsonDecodeError("expected ',' or '}'", self.pos - 1)
            if self._peek() == "}":  # fastjson tolerates a trailing comma
                self.pos += 1
                return out

    def _array(self, depth: int) -> list[Any]:
        self.pos += 1  # "["
        out: list[Any] = []
        if self._peek() == "]":
            self.pos += 1
            return out
        while True:
            out.append(self._value(depth))
            char = self._peek()
            self.pos += 1
            if char == "]":
                return out
            if char != ",":
                raise JsonDecodeError("expected ',' or ']'", self.pos - 1)
            if self._peek() == "]":
                self.pos += 1
                return out


# ---------------------------------------------------------------- writer


def dumps(
    value: Any,
    *,
    sort_keys: bool = True,
    bare_int_keys: bool = False,
    pretty: bool = False,
    browser_compatible: bool = False,
) -> str:
    """Serialize like fastjson.

    ``bare_int_keys`` writes integer map keys unquoted (fastjson's default, needed only for
    byte-identical files; Java parses quoted ones too).  ``pretty`` is fastjson's PrettyFormat:
    one tab per level, no space after ``:``, maps with non-String keys on one line.
    ``browser_compatible`` is the namesrv's standard-JSON mode (§3.4 #4): quoted keys, non-ASCII
    escaped, longs beyond ±2^53 written as strings.
    """
    if not (bare_int_keys or pretty or browser_compatible):
        # The C encoder writes the same text whenever the value is plain JSON; it refuses
        # object keys, mixed key types and NaN, and those take the writer below.
        try:
            return json.dumps(
                value,
                sort_keys=sort_keys,
                ensure_ascii=False,
                allow_nan=False,
                separators=(",", ":"),
            )
        except (TypeError, ValueError):
            pass
    writer = _Writer(
        sort_keys=sort_keys,
        bare_int_keys=bare_int_keys and not browser_compatible,
        pretty=pretty,
        browser_compatible=browser_compatible,
    )
    writer.write(value, 0)
    return "".join(writer.parts)


def dumps_bytes(value: Any, **options: bool) -> bytes:
    # A lone surrogate (a peer can send one as a JSON escape) becomes "?", as in Java.
    return dumps(value, **options).encode("utf-8", "replace")


def _key_order(key: Any) -> tuple[int, Any]:
    if isinstance(key, bool):
        return (3, str(key))
    if isinstance(key, int | float):
        return (0, key)
    if isinstance(key, str):
        return (1, key)
    return (2, dumps(key))


class _Writer:
    __slots__ = ("bare_int_keys", "big_ints_as_strings", "encode_str", "parts", "pretty", "sort")

    def __init__(
        self, *, sort_keys: bool, bare_int_keys: bool, pretty: bool, browser_compatible: bool
    ) -> None:
        self.parts: list[str] = []
        self.sort = sort_keys
        self.bare_int_keys = bare_int_keys
        self.pretty = pretty
        self.big_ints_as_strings = browser_compatible
        self.encode_str = encode_basestring_ascii if browser_compatible else encode_basestring

    def write(self, value: Any, depth: int) -> None:
        parts = self.parts
        if isinstance(value, str):
            parts.append(self.encode_str(value))
        elif value is None:
            parts.append("null")
        elif value is True:
            parts.append("true")
        elif value is False:
            parts.append("false")
        elif isinstance(value, int):
            if self.big_ints_as_strings and not -_JS_SAFE < value < _JS_SAFE:
                parts.append(f'"{value}"')
            else:
                parts.append(str(int(value)))
        elif isinstance(value, float):
            # fastjson writes NaN and infinities as null
            parts.append(repr(value) if math.isfinite(value) else "null")
        elif isinstance(value, Mapping):
            self._mapping(value, depth)
        elif isinstance(value, ObjectKey):
            self._mapping(value.to_dict(), depth)
        elif isinstance(value, list | tuple | set | frozenset):
            items = sorted(value, key=_key_order) if isinstance(value, set | frozenset) else value
            self._array(items, depth)
        else:
            raise LocalProtocolError(f"cannot write {type(value).__name__} as JSON")

    def _key(self, key: Any) -> None:
        if isinstance(key, str):
            self.parts.append(self.encode_str(key))
        elif isinstance(key, ObjectKey):
            # Object keys are written compactly even in pretty mode, as fastjson does.
            self.parts.append(
                dumps(
                    key,
                    sort_keys=self.sort,
                    bare_int_keys=self.bare_int_keys,
                    browser_compatible=self.big_ints_as_strings,
                )
            )
        elif isinstance(key, int | float) and not isinstance(key, bool):
            text = str(key) if isinstance(key, int) else repr(key)
            self.parts.append(text if self.bare_int_keys else f'"{text}"')
        else:
            raise LocalProtocolError(f"cannot write a {type(key).__name__} map key")

    def _mapping(self, mapping: Mapping[Any, Any], depth: int) -> None:
        parts = self.parts
        if not mapping:
            parts.append("{}")
            return
        if (
            self.bare_int_keys
            and all(type(key) is int for key in mapping)
            and all(type(item) is int for item in mapping.values())
        ):
            # The leaves of consumerOffset.json and delayOffset.json: one join, not a call per entry.
            keys = sorted(mapping) if self.sort else mapping
            closing = "\n" + "\t" * depth + "}" if self.pretty else "}"
            parts.append("{" + ",".join(f"{key}:{mapping[key]}" for key in keys) + closing)
            return
        items: Iterable[tuple[Any, Any]] = mapping.items()
        if self.sort:
            items = sorted(items, key=lambda kv: _key_order(kv[0]))
        parts.append("{")
        if self.pretty:
            # fastjson breaks lines before String-keyed entries only; a map keyed by numbers or
            # objects stays on one line and gets just the newline before its closing brace.
            string_keyed = all(isinstance(key, str) for key in mapping)
            inner = "\n" + "\t" * (depth + 1)
            first = True
            for key, item in items:
                if not first:
                    parts.append(",")
                first = False
                if string_keyed:
                    parts.append(inner)
                self._key(key)
                parts.append(":")
                self.write(item, depth + 1)
            parts.append("\n" + "\t" * depth + "}")
            return
        first = True
        for key, item in items:
            if not first:
                parts.append(",")
            first = False
            self._key(key)
            parts.append(":")
            self.write(item, depth + 1)
        parts.append("}")

    def _array(self, items: Iterable[Any], depth: int) -> None:
        parts = self.parts
        parts.append("[")
        inner = "\n" + "\t" * (depth + 1) if self.pretty else ""
        count = 0
        for item in items:
            if count:
                parts.append(",")
            parts.append(inner)
            self.write(item, depth + 1)
            count += 1
        if self.pretty and count:
            parts.append("\n" + "\t" * depth)
        parts.append("]")
