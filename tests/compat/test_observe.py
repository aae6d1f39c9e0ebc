"""The differential test's comparison rules, without any server."""

from __future__ import annotations

from pathlib import Path

from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.fastjson import loads
from protocol.msgid import create_offset_msg_id
from tests.compat.observe import differences, json_shape, observe
from tests.compat.servers import Target

TARGET = Target(
    name="t",
    namesrv_addr="127.0.0.1:9876",
    broker_addr="127.0.0.1:10911",
    cluster="c",
    broker_name="b",
    log_dir=Path("/tmp/work"),
    processes=(),
)


def test_maps_collapse_their_keys_but_keep_value_shapes() -> None:
    a = loads('{"brokerAddrs":{0:"x",1:"y"},"name":"b"}')
    b = loads('{"brokerAddrs":{"0":"x"},"name":"b"}')
    maps = frozenset({"$.brokerAddrs"})
    assert json_shape(a, maps) == {
        "$:object",
        "$.name:str",
        "$.brokerAddrs:map",
        "$.brokerAddrs{}:key-int",
        "$.brokerAddrs{}:str",
    }
    # A bare-number key and a string key are different wire forms: that must show.
    assert differences(
        {"body": sorted(json_shape(a, maps))}, {"body": sorted(json_shape(b, maps))}
    ) == ["body: missing $.brokerAddrs{}:key-int", "body: unexpected $.brokerAddrs{}:key-str"]


def test_object_keys_and_lists() -> None:
    value = loads('{"offsetTable":{{"topic":"t","queueId":0}:{"maxOffset":3}},"l":[1,2]}')
    shape = json_shape(value, frozenset({"$.offsetTable"}))
    assert "$.offsetTable{}:key-object" in shape
    assert "$.offsetTable{}.maxOffset:int" in shape
    assert {"$.l:list", "$.l[]:int"} <= shape


def test_observation_keeps_exact_values_only_where_asked() -> None:
    msg_id = create_offset_msg_id(TARGET.broker_addr, 1234)
    request = RemotingCommand.request(RequestCode.SEND_MESSAGE_V2, {"b": "T"})
    reply = request.reply(
        ResponseCode.SUCCESS,
        ext_fields={"msgId": msg_id, "queueId": "1", "queueOffset": "7", "MSG_REGION": "R"},
    )
    observation, raw_request, raw_reply, _ = observe(
        request, reply, TARGET, exact_ext=("queueId", "MSG_REGION")
    )
    assert observation["extFields"] == {
        "MSG_REGION": "R",
        "msgId": "<offset-msg-ids@broker>",
        "queueId": "1",
        "queueOffset": "<int>",
    }
    assert observation["remark"] is None
    assert raw_request["codeName"] == "SEND_MESSAGE_V2"
    assert raw_reply is not None
    assert raw_reply["extFields"]["msgId"] == msg_id


def test_a_msg_id_of_another_broker_is_a_difference() -> None:
    request = RemotingCommand.request(RequestCode.SEND_MESSAGE_V2)
    ours = request.reply(0, ext_fields={"msgId": create_offset_msg_id(TARGET.broker_addr, 1)})
    wrong = request.reply(0, ext_fields={"msgId": create_offset_msg_id("10.0.0.1:10911", 1)})
    expected = observe(request, ours, TARGET)[0]
    assert differences(expected, observe(request, wrong, TARGET)[0]) == [
        "extFields.msgId: expected '<offset-msg-ids@broker>', got '<offset-msg-ids>'"
    ]


def test_differences_name_missing_and_unexpected_keys() -> None:
    assert differences({"a": 1, "b": {"c": 2}}, {"b": {"c": 3}, "d": 4}) == [
        "a: missing (expected 1)",
        "b.c: expected 2, got 3",
        "d: unexpected 4",
    ]
    assert differences({"x": [1, 2]}, {"x": [1, 2, 3]}) == ["x: expected [1, 2], got [1, 2, 3]"]


def test_ignored_keys_leave_the_shape() -> None:
    request = RemotingCommand.request(RequestCode.GET_BROKER_RUNTIME_INFO)
    reply = request.reply(0, body=b'{"table":{"scheduleMessageOffset_2":"1,1","putTps":"0"}}')
    observation = observe(request, reply, TARGET, body="json", ignore=r"scheduleMessageOffset_\d+")[
        0
    ]
    assert observation["body"] == ["$.table.putTps:str", "$.table:object", "$:object"]
