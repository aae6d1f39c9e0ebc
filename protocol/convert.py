"""The two cattrs converters of the wire (anchors §2.8) and the helpers everybody calls.

``EXT`` maps a custom header (``extFields``: every value a string) to and from an attrs header
class.  ``BODY`` maps the JSON bodies, whose Java text comes from fastjson, to and from attrs body
classes.  Both rename snake_case fields to Java's camelCase through one hook factory; fields
whose Java name is irregular (``clientID``, ``lockOKMQSet``, the one-letter keys of
SendMessageRequestHeaderV2) carry their key in field metadata: ``attrs.field(metadata=wire("a"))``.

Wire facts the hooks encode (reference §3.1, clients README facts 2, 5, 7, 10):
* header booleans are ``"true"``/``"false"`` from Java and ``"1"``/``"0"`` from the C++ clients;
  anything else is a malformed field, never a silent ``bool("false") is True``;
* body enums arrive as Java ordinals (C++ clients) or names (Java); we write names;
* body numbers sometimes arrive as strings (``"subVersion":"1795741096752"``);
* ``None`` fields are omitted on output, as Java omits null properties;
* header integers are Java ``Integer``/``int`` (annotate the field ``Int32``) or ``Long``/``long``
  (plain ``int`` = ``Int64``): a value outside the Java type's range is a malformed field, as
  ``Integer.parseInt``/``Long.parseLong`` refuse it, instead of reaching the store's struct
  packing or a JSON file no Java tool can read.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable, Mapping
from types import NoneType, UnionType
from typing import Annotated, Any, TypeVar, Union, cast, get_args, get_origin

import attrs
import cattrs
import cattrs.v
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from protocol import fastjson
from protocol.errors import HeaderFieldError, RemoteProtocolError

__all__ = [
    "BODY",
    "EXT",
    "INT32_MAX",
    "INT32_MIN",
    "INT64_MAX",
    "INT64_MIN",
    "BodyDecodeError",
    "Int32",
    "Int64",
    "JavaRange",
    "camel",
    "decode_body",
    "decode_header",
    "encode_body",
    "encode_header",
    "structure_body",
    "surrogate_problem",
    "unstructure_body",
    "utf8_encodable",
    "wire",
]

T = TypeVar("T")

WIRE_KEY = "rocketmq.wire_key"


INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@attrs.frozen
class JavaRange:
    """Marks an ``int`` header field with the range of its Java type."""

    java: str
    low: int
    high: int


# A header field Java declares ``Integer``/``int``; plain ``int`` fields are Java ``Long``.
Int32 = Annotated[int, JavaRange("int", INT32_MIN, INT32_MAX)]
Int64 = Annotated[int, JavaRange("long", INT64_MIN, INT64_MAX)]


class BodyDecodeError(RemoteProtocolError):
    """A JSON body parsed but does not have the shape of the class it should carry."""


def wire(key: str) -> dict[str, str]:
    """Field metadata naming a field's irregular wire key: ``attrs.field(metadata=wire("a"))``."""
    return {WIRE_KEY: key}


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _wire_keys(cls: type) -> dict[str, str]:
    return {a.name: a.metadata.get(WIRE_KEY, camel(a.name)) for a in attrs.fields(cls)}


def _renames(cls: type) -> dict[str, Any]:
    return {name: override(rename=key) for name, key in _wire_keys(cls).items()}


def _optional_of(tp: Any) -> Any | None:
    """``X`` for ``X | None`` (and ``Optional[X]``), else ``None``."""
    if get_origin(tp) not in (Union, UnionType):
        return None
    args = [arg for arg in get_args(tp) if arg is not NoneType]
    if len(args) == 1 and len(get_args(tp)) == 2:
        return args[0]
    return None


# ---------------------------------------------------------------- EXT: extFields <-> headers

_DECIMAL = re.compile(r"[-+]?[0-9]+\Z").match
_BOOLS = {"true": True, "false": False, "1": True, "0": False}


def utf8_encodable(text: str) -> bool:
    """False when ``text`` holds a lone surrogate, which has no UTF-8 form."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def surrogate_problem(text: str) -> str:
    """Say where ``text``'s first lone surrogate is; for message properties (``name\x01value\x02``
    pairs) name the property, since that is what the sender can find and fix."""
    index = next(i for i, ch in enumerate(text) if "\ud800" <= ch <= "\udfff")
    what = f"a lone surrogate U+{ord(text[index]):04X} (not encodable as UTF-8)"
    if "\x01" in text:
        start = text.rfind("\x02", 0, index) + 1
        name, sep, _ = text[start:].partition("\x01")
        if sep and start + len(name) < index:
            return f"property {name!r} has {what}"
        return f"a property name has {what}"
    return f"{what} at character {index}"


def _ext_str(value: Any, _: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    # Only the JSON fallback of a frame's header can produce one (json.loads takes "\ud800");
    # refused here rather than failing later where the store encodes the text.
    if not utf8_encodable(value):
        raise ValueError(surrogate_problem(value))
    return value


def _ranged_int(value: str, java: JavaRange) -> int:
    # The regex admits a sign and rejects what int() would take but Java's parse would not
    # (spaces, underscores).
    if _DECIMAL(value) is None:
        raise ValueError(f"{value!r} is not an integer")
    number = int(value)
    if not java.low <= number <= java.high:
        raise ValueError(
            f"{value} is out of the range of a Java {java.java} ({java.low}..{java.high})"
        )
    return number


_LONG = JavaRange("long", INT64_MIN, INT64_MAX)
_INT = JavaRange("int", INT32_MIN, INT32_MAX)


def _ext_int(value: str, _: Any) -> int:
    # Up to 18 digits is always a long: the cheap common case.
    if len(value) < 19 and value.isdigit():
        return int(value)
    return _ranged_int(value, _LONG)


def _ext_int32(value: str, _: Any) -> int:
    if len(value) < 10 and value.isdigit():
        return int(value)
    return _ranged_int(value, _INT)


def _int_hook(java: JavaRange) -> Callable[[str, Any], int]:
    return _ext_int32 if java == _INT else _ext_int


def _java_range(tp: Any) -> JavaRange | None:
    """The JavaRange of an ``Int32``/``Int64`` annotation, else None."""
    if get_origin(tp) is Annotated and get_args(tp)[0] is int:
        for mark in tp.__metadata__:
            if isinstance(mark, JavaRange):
                return mark
    return None


def _ext_optional_int(hook: Callable[[str, Any], int]) -> Callable[[str, Any], int | None]:
    def structure(value: str, tp: Any) -> int | None:
        if value == "":
            return None  # Java leaves an unparsable optional field unset; "" is the common case
        return hook(value, tp)

    return structure


def _ext_float(value: str, _: Any) -> float:
    return float(value)


def _ext_bool(value: str, _: Any) -> bool:
    result = _BOOLS.get(value)
    if result is None:
        result = _BOOLS.get(value.lower())  # Java's parseBoolean ignores case
        if result is None:
            raise ValueError(f"{value!r} is not a boolean")
    return result


@functools.cache
def _enum_tables(enum_cls: type[enum.Enum]) -> tuple[dict[str, Any], dict[Any, Any]]:
    by_name = {member.name: member for member in enum_cls}
    by_value: dict[Any, Any] = {str(member.value): member for member in enum_cls}
    by_value.update({member.value: member for member in enum_cls})
    return by_name, by_value


def _structure_enum(value: Any, enum_cls: type[enum.Enum]) -> enum.Enum:
    # Java writes enums by name; C++ clients send ordinals, as numbers or numeric strings.
    by_name, by_value = _enum_tables(enum_cls)
    member = None
    if isinstance(value, str):
        member = by_name.get(value)
    if member is None and not isinstance(value, bool) and isinstance(value, str | int):
        member = by_value.get(value)
    if member is None:
        raise ValueError(f"{value!r} is not a {enum_cls.__name__}")
    return member  # type: ignore[no-any-return]


def _register_enums(conv: cattrs.Converter) -> None:
    # By class (singledispatch): IntEnum must be named itself, or the int hook would win.
    for base in (enum.Enum, enum.IntEnum):
        conv.register_structure_hook(base, _structure_enum)
        conv.register_unstructure_hook(base, lambda member: member.name)


def _ext_optional(tp: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    inner = _optional_of(tp)
    hook = conv.get_structure_hook(inner)
    if inner is str:
        return hook
    if inner is int:
        return _ext_optional_int(_ext_int)
    java = _java_range(inner)
    if java is not None:
        return _ext_optional_int(_int_hook(java))
    # Java leaves an unparsable optional field unset; an empty string is the common case.
    return lambda value, _: None if value == "" else hook(value, inner)


def _ext_header_structure(cls: type[T], conv: cattrs.Converter) -> Callable[[Any, Any], T]:
    renames = _renames(cls)
    return make_dict_structure_fn(
        cls,
        conv,
        _cattrs_forbid_extra_keys=False,
        _cattrs_detailed_validation=False,
        **renames,
    )


def _unstructure_without_nones(cls: type[Any], conv: cattrs.Converter) -> Callable[[Any], Any]:
    """Wire names, and no key for a None field: Java leaves null fields out of headers and
    bodies alike."""
    renames = _renames(cls)
    inner = make_dict_unstructure_fn(cls, conv, **renames)

    def unstructure(obj: Any) -> dict[str, Any]:
        return {key: value for key, value in inner(obj).items() if value is not None}

    return unstructure


def _make_ext() -> cattrs.Converter:
    conv = cattrs.Converter(detailed_validation=False, forbid_extra_keys=False)
    conv.register_structure_hook(str, _ext_str)
    conv.register_structure_hook(int, _ext_int)
    conv.register_structure_hook(float, _ext_float)
    conv.register_structure_hook(bool, _ext_bool)
    _register_enums(conv)
    conv.register_structure_hook_factory(
        lambda tp: _java_range(tp) is not None,
        lambda tp: _int_hook(cast(JavaRange, _java_range(tp))),
    )
    conv.register_structure_hook_factory(
        lambda tp: _optional_of(tp) is not None, lambda tp: _ext_optional(tp, conv)
    )
    conv.register_structure_hook_factory(attrs.has, lambda cls: _ext_header_structure(cls, conv))
    conv.register_unstructure_hook(str, lambda value: value)
    conv.register_unstructure_hook(bool, lambda value: "true" if value else "false")
    conv.register_unstructure_hook(int, str)
    conv.register_unstructure_hook(float, repr)
    conv.register_unstructure_hook_factory(
        attrs.has, lambda cls: _unstructure_without_nones(cls, conv)
    )
    return conv


EXT = _make_ext()

_decoders: dict[type[Any], Callable[[Mapping[str, str], Any], Any]] = {}
_encoders: dict[type[Any], Callable[[Any], dict[str, str]]] = {}


def decode_header(cls: type[T], ext_fields: Mapping[str, str]) -> T:
    """The header ``cls`` carried by ``ext_fields``; unknown keys (AccessKey, ...) are ignored.

    Raises :class:`HeaderFieldError` naming the header and the wire key when a required field
    is missing or any field is malformed.
    """
    decoder = _decoders.get(cls)
    if decoder is None:
        attrs.resolve_types(cast(Any, cls))
        decoder = _decoders[cls] = EXT.get_structure_hook(cls)
    try:
        return decoder(ext_fields, cls)  # type: ignore[no-any-return]
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise _explain(cls, ext_fields, exc) from None


def _explain(cls: type[Any], ext_fields: Mapping[str, str], exc: Exception) -> HeaderFieldError:
    """Find the field that made the fast decoder fail: rare, so it may be slow."""
    for field in attrs.fields(cls):
        key = field.metadata.get(WIRE_KEY, camel(field.name))
        if key not in ext_fields:
            if field.default is attrs.NOTHING:
                return HeaderFieldError(cls.__name__, key, "is missing")
            continue
        value = ext_fields[key]
        try:
            EXT.get_structure_hook(field.type)(value, field.type)
        except (ValueError, TypeError, AttributeError, KeyError) as field_exc:
            # A one-letter key (SendMessageRequestHeaderV2) says little: add Java's name.
            java = camel(field.name)
            named = f"({java}) is" if java.lower() != key.lower() else "is"
            return HeaderFieldError(cls.__name__, key, f"{named} malformed: {field_exc}")
    return HeaderFieldError(cls.__name__, "?", f"cannot be decoded: {exc!r}")


def encode_header(obj: Any) -> dict[str, str]:
    """``obj``'s extFields: wire keys, values as Java's ``toString()``, ``None`` omitted."""
    cls = type(obj)
    encoder = _encoders.get(cls)
    if encoder is None:
        attrs.resolve_types(cls)
        encoder = _encoders[cls] = EXT.get_unstructure_hook(cls)
    return encoder(obj)


# ---------------------------------------------------------------- BODY: JSON bodies


def _body_int(value: Any, _: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _DECIMAL(value) is not None:
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError(f"{value!r} is not an integer")


def _body_float(value: Any, _: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, int | float | str):
        return float(value)
    raise ValueError(f"{value!r} is not a number")


def _body_bool(value: Any, _: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _BOOLS:
        return _BOOLS[value.lower()]
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"{value!r} is not a boolean")


def _body_str(value: Any, _: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # fastjson reads a number where a String is declared
    raise ValueError(f"{value!r} is not a string")


def _object_keyed(tp: Any) -> bool:
    return get_origin(tp) in (dict, Mapping) and attrs.has(get_args(tp)[0])


def _key_mapping(key: Any) -> Any:
    if isinstance(key, fastjson.ObjectKey):
        return key.to_dict()
    if isinstance(key, str) and key.startswith("{"):
        # A writer that cannot put objects in key position may have stringified them.
        return fastjson.loads(key)
    return key


def _structure_object_keyed(tp: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    key_t, value_t = get_args(tp)
    key_hook = conv.get_structure_hook(key_t)
    value_hook = conv.get_structure_hook(value_t)

    def structure(value: Any, _: Any) -> dict[Any, Any]:
        if not isinstance(value, Mapping):
            raise ValueError(f"expected a JSON object, got {type(value).__name__}")
        return {
            key_hook(_key_mapping(key), key_t): value_hook(item, value_t)
            for key, item in value.items()
        }

    return structure


def _unstructure_object_keyed(tp: Any, conv: cattrs.Converter) -> Callable[[Any], Any]:
    key_t, value_t = get_args(tp)

    def unstructure(mapping: Mapping[Any, Any]) -> dict[Any, Any]:
        return {
            fastjson.ObjectKey.of(conv.unstructure(key, key_t)): conv.unstructure(item, value_t)
            for key, item in mapping.items()
        }

    return unstructure


def _body_structure(cls: type[T], conv: cattrs.Converter) -> Callable[[Any, Any], T]:
    inner = make_dict_structure_fn(cls, conv, _cattrs_forbid_extra_keys=False, **_renames(cls))

    def structure(value: Any, _: Any) -> T:
        # The generated code only tests ``key in value``: a list would pass as an empty object.
        if not isinstance(value, Mapping):
            raise ValueError(f"expected a JSON object, got {type(value).__name__}")
        return inner(value, cls)

    return structure


def _make_body() -> cattrs.Converter:
    conv = cattrs.Converter(detailed_validation=True, forbid_extra_keys=False)
    conv.register_structure_hook(int, _body_int)
    conv.register_structure_hook(float, _body_float)
    conv.register_structure_hook(bool, _body_bool)
    conv.register_structure_hook(str, _body_str)
    _register_enums(conv)
    conv.register_structure_hook_factory(attrs.has, lambda cls: _body_structure(cls, conv))
    conv.register_unstructure_hook_factory(
        attrs.has, lambda cls: _unstructure_without_nones(cls, conv)
    )
    conv.register_structure_hook_factory(
        _object_keyed, lambda tp: _structure_object_keyed(tp, conv)
    )
    conv.register_unstructure_hook_factory(
        _object_keyed, lambda tp: _unstructure_object_keyed(tp, conv)
    )
    return conv


BODY = _make_body()

_STRUCTURE_ERRORS = (cattrs.BaseValidationError, ValueError, TypeError, KeyError, AttributeError)


def structure_body(cls: type[T], value: Any) -> T:
    """``cls`` from an already parsed JSON value (e.g. a config file read by storage/)."""
    try:
        return BODY.structure(value, cls)
    except _STRUCTURE_ERRORS as exc:
        detail = "; ".join(_describe(exc, "$"))
        raise BodyDecodeError(f"{cls.__name__} body is malformed: {detail}") from None


def _describe(exc: BaseException, path: str, tp: Any = None) -> list[str]:
    """Like ``cattrs.transform_error`` but naming fields by their wire keys."""
    if isinstance(exc, cattrs.ClassValidationError):
        keys = _wire_keys(exc.cl)
        with_notes, without = exc.group_exceptions()
        lines = [
            line
            for sub, note in with_notes
            for line in _describe(sub, f"{path}.{keys.get(note.name, note.name)}", note.type)
        ]
        return lines + [line for sub in without for line in _describe(sub, path)]
    if isinstance(exc, cattrs.IterableValidationError):
        with_notes_i, without_i = exc.group_exceptions()
        lines = [
            line
            for sub, note in with_notes_i
            for line in _describe(sub, f"{path}[{note.index!r}]", note.type)
        ]
        return lines + [line for sub in without_i for line in _describe(sub, path)]
    detail = str(exc) if isinstance(exc, ValueError) and str(exc) else None
    text = detail or cattrs.v.format_exception(exc, tp)
    return [f"{text} @ {path}"]


def unstructure_body(obj: Any) -> Any:
    """The JSON value (dicts, lists, ``ObjectKey`` map keys) fastjson would write for ``obj``."""
    return BODY.unstructure(obj)


def decode_body(cls: type[T], data: bytes | bytearray | memoryview | str) -> T:
    """Parse a body in plain JSON or fastjson's dialect into ``cls``; unknown keys are ignored."""
    return structure_body(cls, fastjson.loads(data))


def encode_body(
    obj: Any,
    *,
    bare_int_keys: bool = False,
    pretty: bool = False,
    browser_compatible: bool = False,
) -> bytes:
    """fastjson's text for ``obj``: keys sorted, nulls omitted, compact unless ``pretty``.

    Integer map keys are quoted unless ``bare_int_keys`` (byte parity with Java files; Java and
    the C++ clients parse quoted ones).  Object map keys (``Map<MessageQueue, X>``) are always
    written as objects because Java tools cannot parse them any other way.
    """
    return fastjson.dumps_bytes(
        BODY.unstructure(obj),
        bare_int_keys=bare_int_keys,
        pretty=pretty,
        browser_compatible=browser_compatible,
    )
