"""Retry / dead-letter rules (retry.py): naming, targets, the message a send-back stores."""

from __future__ import annotations

import pytest

from actors.broker.retry import (
    SendBackTarget,
    build_send_back,
    group_of_retry_topic,
    is_dlq_topic,
    is_retry_topic,
    max_reconsume_times,
    retry_send_redirect,
    send_back_target,
)
from protocol.message import MessageConst, MessageExt


def test_topic_names() -> None:
    assert is_retry_topic("%RETRY%cg")
    assert group_of_retry_topic("%RETRY%cg") == "cg"
    assert is_dlq_topic("%DLQ%cg")
    assert not is_retry_topic("cg")
    with pytest.raises(ValueError, match="not a retry topic"):
        group_of_retry_topic("%DLQ%cg")


@pytest.mark.parametrize(
    ("group_max", "header", "version", "expected"),
    [(16, None, 333, 16), (16, 3, 333, 3), (16, 3, 120, 16), (5, None, 121, 5)],
)
def test_max_reconsume_times(
    group_max: int, header: int | None, version: int, expected: int
) -> None:
    assert max_reconsume_times(group_max, header, version) == expected


@pytest.mark.parametrize(
    ("reconsume", "requested", "expected"),
    [
        (0, 0, SendBackTarget("%RETRY%cg", 1, 3)),  # first retry: level 3 (10 s)
        (1, 0, SendBackTarget("%RETRY%cg", 1, 4)),
        (15, 0, SendBackTarget("%RETRY%cg", 1, 18)),
        (2, 7, SendBackTarget("%RETRY%cg", 1, 7)),  # the client's own level wins
        (16, 0, SendBackTarget("%DLQ%cg", 0, 0)),  # used up
        (0, -1, SendBackTarget("%DLQ%cg", 0, 0)),  # the client asks for the DLQ
    ],
)
def test_send_back_target(reconsume: int, requested: int, expected: SendBackTarget) -> None:
    target = send_back_target(
        "cg",
        reconsume_times=reconsume,
        requested_delay_level=requested,
        max_times=16,
        retry_queue_nums=2,
        rand=7,
    )
    assert target == expected
    assert target.dead_letter is expected.topic.startswith("%DLQ%")


def delivered(props: dict[str, str], *, topic: str = "T", reconsume: int = 0) -> MessageExt:
    return MessageExt(
        topic=topic,
        body=b"x",
        queue_id=1,
        flag=3,
        properties=props,
        sys_flag=0x1,
        born_timestamp=111,
        born_host="10.0.0.9:5555",
        store_timestamp=222,
        store_host="192.168.0.1:10911",
        reconsume_times=reconsume,
        commit_log_offset=1234,
    )


def test_first_send_back_records_origin_and_counts_a_failure() -> None:
    original = delivered({MessageConst.TAGS: "TagA", MessageConst.UNIQ_KEY: "U"})
    msg = build_send_back(original, SendBackTarget("%RETRY%cg", 0, 3))
    assert (msg.topic, msg.queue_id, msg.reconsume_times) == ("%RETRY%cg", 0, 1)
    assert msg.properties == {
        MessageConst.TAGS: "TagA",
        MessageConst.UNIQ_KEY: "U",
        MessageConst.RETRY_TOPIC: "T",
        MessageConst.WAIT: "false",
        MessageConst.DELAY: "3",
        # the offset message id of the original: store host + commit-log offset (§4.6)
        MessageConst.ORIGIN_MESSAGE_ID: "C0A8000100002A9F00000000000004D2",
    }
    assert (msg.body, msg.flag, msg.sys_flag, msg.born_timestamp) == (b"x", 3, 0x1, 111)
    assert original.properties == {MessageConst.TAGS: "TagA", MessageConst.UNIQ_KEY: "U"}


def test_later_send_backs_keep_the_first_topic_and_message_id() -> None:
    again = delivered(
        {MessageConst.RETRY_TOPIC: "T", MessageConst.ORIGIN_MESSAGE_ID: "FIRST"},
        topic="%RETRY%cg",
        reconsume=4,
    )
    msg = build_send_back(again, SendBackTarget("%DLQ%cg", 0, 0))
    assert msg.properties[MessageConst.RETRY_TOPIC] == "T"
    assert msg.properties[MessageConst.ORIGIN_MESSAGE_ID] == "FIRST"
    assert msg.properties[MessageConst.DELAY] == "0"
    assert msg.reconsume_times == 5


def test_direct_send_to_retry_topic_redirects_when_used_up() -> None:
    assert retry_send_redirect("%RETRY%cg", 16, 16) == "%DLQ%cg"
    assert retry_send_redirect("%RETRY%cg", 15, 16) is None
    assert retry_send_redirect("T", 99, 16) is None
