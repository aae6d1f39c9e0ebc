"""Hypothesis strategies derived from the attrs header and body classes' type hints."""

from __future__ import annotations

import enum
import functools
import inspect
from types import NoneType, UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import attrs
from hypothesis import strategies as st

from protocol.convert import JavaRange

# Lone surrogates cannot be UTF-8 encoded; the codec refuses them (tests/protocol/test_java_ranges.py).
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), text)


def classes_in(module: Any) -> list[type]:
    return sorted(
        (
            obj
            for obj in vars(module).values()
            if inspect.isclass(obj) and attrs.has(obj) and obj.__module__ == module.__name__
        ),
        key=lambda cls: cls.__name__,
    )


@functools.cache
def for_type(tp: Any) -> st.SearchStrategy[Any]:
    origin = get_origin(tp)
    if origin in (Union, UnionType):
        args = [arg for arg in get_args(tp) if arg is not NoneType]
        return st.one_of(st.none(), *(for_type(arg) for arg in args))
    if tp is Any:
        return json_scalars
    if tp is str:
        return text
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(-(2**63), 2**63 - 1)
    if origin is Annotated:
        java = next(m for m in tp.__metadata__ if isinstance(m, JavaRange))
        return st.integers(java.low, java.high)
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return st.sampled_from(list(tp))
    if origin is tuple:
        item, _ellipsis = get_args(tp)
        return st.lists(for_type(item), max_size=3).map(tuple)
    if origin is dict:
        key, value = get_args(tp)
        return st.dictionaries(for_type(key), for_type(value), max_size=3)
    if attrs.has(tp):
        attrs.resolve_types(tp)
        return st.builds(tp, **{f.name: for_type(f.type) for f in attrs.fields(tp)})
    raise TypeError(f"no strategy for {tp!r}")
