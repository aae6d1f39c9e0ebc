"""Header integers in their Java type's range, and text that has a UTF-8 form (issue 13, 4 and 5).

Java parses a header's ``Integer`` field with ``Integer.parseInt`` and a ``Long`` with
``Long.parseLong``; a value past the range is refused there.  We refuse it in the codec too, with
a HeaderFieldError naming the field, instead of letting it reach the store's struct packing or a
JSON file.  A lone surrogate (a JSON ``"\\ud800"`` escape) has no UTF-8 form: refused likewise.
"""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import headers
from protocol.convert import (
    INT32_MAX,
    INT32_MIN,
    INT64_MAX,
    INT64_MIN,
    WIRE_KEY,
    Int32,
    camel,
    decode_header,
    encode_header,
)
from protocol.errors import HeaderFieldError
from protocol.headers import (
    PullMessageRequestHeader,
    SendMessageRequestHeaderV2,
    UpdateConsumerOffsetRequestHeader,
)
from protocol.headers.send import decode_send_v2
from protocol.message import properties_to_string
from tests.protocol.strategies import for_type

HEADER_CLASSES = sorted(
    (getattr(headers, name) for name in headers.__all__ if attrs.has(getattr(headers, name))),
    key=lambda cls: cls.__name__,
)
for _cls in HEADER_CLASSES:
    attrs.resolve_types(_cls)


def _int_fields() -> list[tuple[type, attrs.Attribute, bool]]:
    out = []
    for cls in HEADER_CLASSES:
        for field in attrs.fields(cls):
            if field.type in (int, int | None):
                out.append((cls, field, False))
            elif field.type in (Int32, Int32 | None):
                out.append((cls, field, True))
    return out


INT_FIELDS = _int_fields()


def _key(field: attrs.Attribute) -> str:
    return field.metadata.get(WIRE_KEY, camel(field.name))


def test_java_types_of_known_fields() -> None:
    """A few fields checked by hand against the reference (§3.2.1-§3.2.4)."""
    kinds = {(cls.__name__, _key(f)): is_int for cls, f, is_int in INT_FIELDS}
    assert kinds[("SendMessageRequestHeaderV2", "g")] is False  # bornTimestamp Long
    assert kinds[("SendMessageRequestHeaderV2", "e")] is True  # queueId Integer
    assert kinds[("SendMessageRequestHeaderV2", "d")] is True  # defaultTopicQueueNums Integer
    assert kinds[("UpdateConsumerOffsetRequestHeader", "commitOffset")] is False
    assert kinds[("UpdateConsumerOffsetRequestHeader", "queueId")] is True
    assert kinds[("PullMessageRequestHeader", "maxMsgNums")] is True
    assert kinds[("PullMessageRequestHeader", "sysFlag")] is True
    assert kinds[("PullMessageRequestHeader", "queueOffset")] is False
    assert kinds[("PullMessageRequestHeader", "suspendTimeoutMillis")] is False
    assert kinds[("RegisterBrokerRequestHeader", "bodyCrc32")] is True
    assert kinds[("RegisterBrokerRequestHeader", "brokerId")] is False
    assert kinds[("CreateTopicRequestHeader", "perm")] is True
    assert len(INT_FIELDS) > 60


def _valid_ext(cls: type, data: st.DataObject) -> dict[str, str]:
    return encode_header(data.draw(for_type(cls)))


@given(data=st.data())
def test_integers_past_the_java_range_are_refused_naming_the_field(data: st.DataObject) -> None:
    cls, field, is_int = data.draw(st.sampled_from(INT_FIELDS))
    low, high = (INT32_MIN, INT32_MAX) if is_int else (INT64_MIN, INT64_MAX)
    ext = _valid_ext(cls, data)
    key = _key(field)
    inside = data.draw(st.sampled_from([low, high, 0]) | st.integers(low, high))
    ext[key] = str(inside)
    assert getattr(decode_header(cls, ext), field.name) == inside
    outside = data.draw(
        st.sampled_from([low - 1, high + 1, 10**30, -(10**30)])
        | st.integers(max_value=low - 1)
        | st.integers(min_value=high + 1)
    )
    ext[key] = str(outside)
    with pytest.raises(HeaderFieldError) as info:
        decode_header(cls, ext)
    assert info.value.field == key
    assert f"out of the range of a Java {'int' if is_int else 'long'}" in str(info.value)


def _v2() -> dict[str, str]:
    return {
        "a": "pg",
        "b": "TopicTest",
        "c": "TBW102",
        "d": "4",
        "e": "0",
        "f": "0",
        "g": "1700000000000",
        "h": "0",
        "i": properties_to_string({"UNIQ_KEY": "0A", "KEYS": "k"}),
    }


@pytest.mark.parametrize(
    ("key", "value", "name"),
    [
        ("g", str(10**30), "bornTimestamp"),
        ("g", str(2**63), "bornTimestamp"),
        ("e", str(2**31), "queueId"),
        ("h", str(-(2**31) - 1), "flag"),
        ("d", "9" * 19, "defaultTopicQueueNums"),
        ("j", str(2**31), "reconsumeTimes"),
    ],
)
def test_send_hot_path_refuses_like_the_converter(key: str, value: str, name: str) -> None:
    ext = _v2() | {key: value}
    with pytest.raises(HeaderFieldError) as info:
        decode_send_v2(ext)
    assert info.value.field == key
    assert f"({name})" in str(info.value)
    assert "out of the range of a Java" in str(info.value)


def test_edges_of_the_range_pass_the_hot_path() -> None:
    ext = _v2() | {"g": str(INT64_MAX), "e": str(INT32_MAX), "h": str(INT32_MIN)}
    header = decode_send_v2(ext)
    assert (header.born_timestamp, header.queue_id, header.flag) == (
        INT64_MAX,
        INT32_MAX,
        INT32_MIN,
    )


def test_commit_offset_past_a_long_is_refused() -> None:
    ext = {"consumerGroup": "g", "topic": "t", "queueId": "0", "commitOffset": str(10**30)}
    with pytest.raises(HeaderFieldError, match="commitOffset"):
        decode_header(UpdateConsumerOffsetRequestHeader, ext)
    pull = {
        "consumerGroup": "g",
        "topic": "t",
        "queueId": "0",
        "queueOffset": "0",
        "maxMsgNums": "32",
        "sysFlag": "1",
        "commitOffset": str(10**30),
        "suspendTimeoutMillis": "0",
        "subVersion": "0",
    }
    with pytest.raises(HeaderFieldError, match="commitOffset"):
        decode_header(PullMessageRequestHeader, pull)


# ---------------------------------------------------------------- lone surrogates

_surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
_plain = st.text(st.characters(exclude_categories=("Cs",)), max_size=8)


@given(
    name=st.text(
        st.characters(exclude_categories=("Cs",), exclude_characters="\x01\x02"),
        min_size=1,
        max_size=8,
    ),
    before=_plain.filter(lambda t: "\x01" not in t and "\x02" not in t),
    after=_plain.filter(lambda t: "\x01" not in t and "\x02" not in t),
    bad=_surrogates,
)
def test_a_lone_surrogate_in_a_property_is_refused_naming_it(
    name: str, before: str, after: str, bad: str
) -> None:
    properties = properties_to_string({"UNIQ_KEY": "0A", name: before + bad + after})
    ext = _v2() | {"i": properties}
    for decode in (decode_send_v2, lambda e: decode_header(SendMessageRequestHeaderV2, e)):
        with pytest.raises(HeaderFieldError) as info:
            decode(ext)
        assert info.value.field == "i"
        assert f"property {name!r} has a lone surrogate U+{ord(bad):04X}" in str(info.value)


@given(data=st.data())
def test_a_lone_surrogate_in_any_text_field_is_refused(data: st.DataObject) -> None:
    cls = data.draw(st.sampled_from(HEADER_CLASSES))
    text_fields = [f for f in attrs.fields(cls) if f.type in (str, str | None)]
    if not text_fields:
        return
    field = data.draw(st.sampled_from(text_fields))
    ext = _valid_ext(cls, data)
    ext[_key(field)] = data.draw(_plain) + data.draw(_surrogates) + data.draw(_plain)
    with pytest.raises(HeaderFieldError) as info:
        decode_header(cls, ext)
    assert info.value.field == _key(field)
    assert "lone surrogate" in str(info.value)
