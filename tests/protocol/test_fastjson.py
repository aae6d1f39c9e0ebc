"""The fastjson dialect reader and writer (reference §3.4, §5.8)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import fastjson
from protocol.errors import LocalProtocolError, ProtocolError
from protocol.fastjson import JsonDecodeError, ObjectKey
from tests.protocol import golden
from tests.protocol.strategies import text


def test_reads_bare_integer_keys() -> None:
    data = fastjson.loads(golden.ROUTE_DATA)
    assert data["brokerDatas"][0]["brokerAddrs"] == {0: "192.168.0.1:10911", 1: "192.168.0.2:10911"}


def test_reads_object_keys_as_hashable_object_keys() -> None:
    data = fastjson.loads(golden.CONSUME_STATS)
    (key,) = data["offsetTable"]
    assert isinstance(key, ObjectKey)
    assert key.to_dict() == {"brokerName": "broker-a", "queueId": 0, "topic": "TopicTest"}
    assert data["offsetTable"][key]["brokerOffset"] == 10


@pytest.mark.parametrize(
    "blob",
    [golden.CONSUMER_OFFSET_JSON, golden.DELAY_OFFSET_JSON, golden.TOPICS_JSON],
)
def test_reads_pretty_files_with_tabs(blob: bytes) -> None:
    assert isinstance(fastjson.loads(blob), dict)


def test_string_contents_that_look_like_keys_are_untouched() -> None:
    # A regex over the text would rewrite these; the tokenizer knows it is inside a string.
    blob = '{0:"a,5:b",1:"{2:\\"c\\"}"}'
    assert fastjson.loads(blob) == {0: "a,5:b", 1: '{2:"c"}'}


def test_plain_json_and_lenient_forms() -> None:
    assert fastjson.loads(b'{"a":[1,2.5,true,null]}') == {"a": [1, 2.5, True, None]}
    assert fastjson.loads("{name:1, -3:2, }") == {"name": 1, -3: 2}
    assert fastjson.loads("[1,2,]") == [1, 2]
    assert fastjson.loads(' { "a" :\t{ } , "b":[ ] } ') == {"a": {}, "b": []}


@pytest.mark.parametrize(
    "blob",
    [b"", b"{", b"{0:}", b'{"a" 1}', b"[1 2]", b"{}x", b"\xff", b'"abc', b"{[1]:2}", b"nul", b"-"],
)
def test_malformed_input_raises_json_decode_error(blob: bytes) -> None:
    with pytest.raises(JsonDecodeError):
        fastjson.loads(blob)


def test_deep_nesting_is_a_typed_error_not_a_recursion_error() -> None:
    with pytest.raises(JsonDecodeError, match="nested deeper"):
        fastjson.loads("{0:" * 5000)


@given(st.binary(max_size=64))
def test_random_bytes_only_raise_json_decode_error(blob: bytes) -> None:
    try:
        fastjson.loads(blob)
    except JsonDecodeError:
        pass


def test_writer_compact_forms() -> None:
    value = {"b": {1: "x", 0: "y"}, "a": True, "c": None, "d": [1.5, "\u0001"]}
    assert fastjson.dumps(value) == '{"a":true,"b":{"0":"y","1":"x"},"c":null,"d":[1.5,"\\u0001"]}'
    assert fastjson.dumps(value, bare_int_keys=True).startswith('{"a":true,"b":{0:"y",1:"x"}')
    assert fastjson.dumps({"b": 1, "a": 2}, sort_keys=False) == '{"b":1,"a":2}'


def test_writer_object_keys_stay_compact_in_pretty_mode() -> None:
    key = ObjectKey.of({"topic": "t", "queueId": 0})
    assert (
        fastjson.dumps({"m": {key: 1}}, pretty=True)
        == '{\n\t"m":{{"queueId":0,"topic":"t"}:1\n\t}\n}'
    )


def test_writer_pretty_arrays_and_empty_containers() -> None:
    assert fastjson.dumps([{}, {}], pretty=True) == "[\n\t{},\n\t{}\n]"
    assert fastjson.dumps({"a": [], "b": {}}, pretty=True) == '{\n\t"a":[],\n\t"b":{}\n}'


def test_writer_browser_compatible_mode() -> None:
    out = fastjson.dumps({"k": {0: "é"}, "big": 2**60}, bare_int_keys=True, browser_compatible=True)
    assert out == '{"big":"1152921504606846976","k":{"0":"\\u00e9"}}'


def test_writer_rejects_unserializable_values() -> None:
    with pytest.raises(LocalProtocolError):
        fastjson.dumps({"a": object()})
    with pytest.raises(LocalProtocolError):
        fastjson.dumps({(1, 2): 1})


# ---------------------------------------------------------------- round trips

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
object_keys = st.dictionaries(text, st.one_of(st.integers(), text), max_size=3).map(ObjectKey.of)


def _json_values(with_object_keys: bool) -> st.SearchStrategy[Any]:
    def containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        options = [
            st.lists(children, max_size=4),
            st.dictionaries(text, children, max_size=4),
            st.dictionaries(st.integers(-(2**40), 2**40), children, max_size=4),
        ]
        if with_object_keys:
            options.append(st.dictionaries(object_keys, children, max_size=3))
        return st.one_of(options)

    return st.recursive(scalars, containers, max_leaves=20)


def _quoted(value: Any) -> Any:
    """What a reader returns for text written with quoted int keys."""
    if isinstance(value, dict):
        return {(str(k) if isinstance(k, int) else k): _quoted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_quoted(v) for v in value]
    return value


@given(_json_values(with_object_keys=True), st.booleans(), st.booleans())
def test_round_trip_with_bare_keys(value: Any, pretty: bool, sort_keys: bool) -> None:
    out = fastjson.dumps(value, bare_int_keys=True, pretty=pretty, sort_keys=sort_keys)
    assert fastjson.loads(out) == value


@given(_json_values(with_object_keys=False), st.booleans())
def test_quoted_keys_give_standard_json(value: Any, pretty: bool) -> None:
    out = fastjson.dumps(value, pretty=pretty)
    assert json.loads(out) == _quoted(value)
    assert fastjson.loads(out) == _quoted(value)


def test_errors_are_protocol_errors() -> None:
    assert issubclass(JsonDecodeError, ProtocolError)


@given(st.text(alphabet='{}[]:,"\\0123-.eE+truflsn u\t', max_size=40))
def test_json_shaped_garbage_only_raises_json_decode_error(blob: str) -> None:
    try:
        fastjson.loads(blob)
    except JsonDecodeError:
        pass


def test_nested_object_keys_are_hashable_and_order_free() -> None:
    value = fastjson.loads("{{{1:2}:1,{3:4}:2}:5}")
    assert value == fastjson.loads("{{{3:4}:2,{1:2}:1}:5}")


def test_lone_surrogates_are_written_as_question_marks_like_java() -> None:
    assert fastjson.dumps_bytes(fastjson.loads('{"a":"\\ud800"}')) == b'{"a":"?"}'


@pytest.mark.parametrize(
    "blob", ["{0:" + "1" * 5000 + "}", "[" + "1" * 5000 + "]", "{" + "1" * 5000 + ":1,a:x}"]
)
def test_numbers_too_long_for_int_are_json_decode_errors(blob: str) -> None:
    with pytest.raises(JsonDecodeError, match="unreadable number"):
        fastjson.loads(blob)
