"""Delay levels, the put-side rewrite and the rebuild on delivery (pure rules of delay.py)."""

from __future__ import annotations

import pytest

from actors.broker.delay import (
    TIMER_TOPIC,
    DelayLevels,
    DelayRejected,
    TimerConst,
    restore_delayed,
    restore_timed,
    rewrite_on_put,
)
from protocol.message import MessageConst, MessageExt, MessageSysFlag
from storage.config import MessageStoreConfig
from storage.message_store import MessageInner
from storage.timer_wheel import TimerConfig
from storage.topic_config import SCHEDULE_TOPIC, TRANS_HALF_TOPIC

LEVELS = DelayLevels.parse(MessageStoreConfig().messageDelayLevel)
NOW = 1_700_000_000_000
TIMER = TimerConfig()

EXPECTED_MS = [
    1_000, 5_000, 10_000, 30_000, 60_000, 120_000, 180_000, 240_000, 300_000,
    360_000, 420_000, 480_000, 540_000, 600_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000,
]  # fmt: skip


def inner(
    props: dict[str, str], *, topic: str = "T", queue_id: int = 3, sys_flag: int = 0
) -> MessageInner:
    return MessageInner(
        topic=topic,
        queue_id=queue_id,
        flag=7,
        body=b"payload",
        properties=dict(props),
        sys_flag=sys_flag,
        born_timestamp=NOW - 5,
        born_host="10.0.0.9:5555",
        reconsume_times=2,
    )


def test_default_table_is_the_18_levels_of_the_reference() -> None:
    assert LEVELS.max_level == 18
    assert [LEVELS.delay_ms(level) for level in LEVELS.levels()] == EXPECTED_MS


def test_custom_table_with_days_and_bad_entries() -> None:
    assert DelayLevels.parse("2s 1d").delays_ms == (2_000, 86_400_000)
    with pytest.raises(ValueError, match="3x"):
        DelayLevels.parse("1s 3x")
    with pytest.raises(ValueError, match="no levels"):
        DelayLevels.parse("   ")


def test_deliver_timestamp_and_clock_correction() -> None:
    assert LEVELS.deliver_timestamp(3, NOW) == NOW + 10_000
    assert LEVELS.deliver_timestamp(99, NOW) == NOW + 7_200_000  # clamped to the last level
    # a delivery time more than a whole level delay away: the clock went back, due now
    assert LEVELS.correct_deliver_timestamp(1, NOW + 5_000, NOW) == NOW
    assert LEVELS.correct_deliver_timestamp(1, NOW + 900, NOW) == NOW + 900


def test_delayed_message_is_parked_in_the_schedule_queue_of_its_level() -> None:
    msg = inner({MessageConst.DELAY: "3", MessageConst.TAGS: "TagA"})
    out = rewrite_on_put(msg, LEVELS, TIMER, NOW)
    assert (out.topic, out.queue_id) == (SCHEDULE_TOPIC, 2)
    assert out.properties == {
        MessageConst.DELAY: "3",
        MessageConst.TAGS: "TagA",
        MessageConst.REAL_TOPIC: "T",
        MessageConst.REAL_QID: "3",
    }
    assert (out.body, out.flag, out.reconsume_times) == (b"payload", 7, 2)
    assert msg.topic == "T"  # the caller's message is not modified


def test_parked_message_keeps_the_producers_wait_property() -> None:
    parked = rewrite_on_put(inner({MessageConst.DELAY: "1"}), LEVELS, TIMER, NOW, wait="false")
    assert parked.properties[MessageConst.WAIT] == "false"
    plain = rewrite_on_put(inner({}), LEVELS, TIMER, NOW, wait="true")
    assert MessageConst.WAIT not in plain.properties  # a normal send is stored without it


def test_level_beyond_the_table_is_clamped_and_zero_means_no_delay() -> None:
    out = rewrite_on_put(inner({MessageConst.DELAY: "40"}), LEVELS, TIMER, NOW)
    assert (out.queue_id, out.properties[MessageConst.DELAY]) == (17, "18")
    plain = inner({MessageConst.DELAY: "0"})
    assert rewrite_on_put(plain, LEVELS, TIMER, NOW) is plain


def test_bad_delay_property_is_rejected() -> None:
    with pytest.raises(DelayRejected, match="abc"):
        rewrite_on_put(inner({MessageConst.DELAY: "abc"}), LEVELS, TIMER, NOW)


@pytest.mark.parametrize(
    ("sys_flag", "delayed"),
    [
        (MessageSysFlag.TRANSACTION_NOT_TYPE, True),
        (MessageSysFlag.TRANSACTION_COMMIT, True),
        (MessageSysFlag.TRANSACTION_PREPARED, False),
        (MessageSysFlag.TRANSACTION_ROLLBACK, False),
    ],
)
def test_only_plain_and_committed_messages_are_delayed(sys_flag: int, delayed: bool) -> None:
    out = rewrite_on_put(inner({MessageConst.DELAY: "2"}, sys_flag=sys_flag), LEVELS, TIMER, NOW)
    assert (out.topic == SCHEDULE_TOPIC) is delayed


def stored(msg: MessageInner, *, store_timestamp: int = NOW) -> MessageExt:
    """The record the store would hand back for ``msg``."""
    return MessageExt(
        topic=msg.topic,
        body=msg.body,
        queue_id=msg.queue_id,
        flag=msg.flag,
        properties=dict(msg.properties),
        sys_flag=msg.sys_flag,
        born_timestamp=msg.born_timestamp,
        born_host=msg.born_host,
        store_timestamp=store_timestamp,
        store_host="10.0.0.1:10911",
        reconsume_times=msg.reconsume_times,
        commit_log_offset=4096,
    )


def test_due_message_is_rebuilt_for_its_real_topic() -> None:
    parked = rewrite_on_put(
        inner({MessageConst.DELAY: "2", MessageConst.KEYS: "k1", MessageConst.UNIQ_KEY: "U1"}),
        LEVELS,
        TIMER,
        NOW,
        wait="true",
    )
    back = restore_delayed(stored(parked))
    assert back is not None
    assert (back.topic, back.queue_id) == ("T", 3)
    # 4.9 stores the parked properties unchanged (Apache 4.9.7, checked by the differential test)
    assert back.properties == {
        MessageConst.KEYS: "k1",
        MessageConst.UNIQ_KEY: "U1",
        MessageConst.DELAY: "2",
        MessageConst.REAL_TOPIC: "T",
        MessageConst.REAL_QID: "3",
        MessageConst.WAIT: "true",
    }
    assert (back.body, back.flag, back.sys_flag) == (b"payload", 7, 0)
    assert (back.born_timestamp, back.born_host, back.reconsume_times) == (
        NOW - 5,
        "10.0.0.9:5555",
        2,
    )


def test_records_without_a_usable_real_topic_are_skipped() -> None:
    parked = rewrite_on_put(
        inner({MessageConst.DELAY: "2"}, topic=TRANS_HALF_TOPIC), LEVELS, TIMER, NOW
    )
    assert restore_delayed(stored(parked)) is None
    broken = stored(
        inner({MessageConst.REAL_TOPIC: "T", MessageConst.REAL_QID: "x"}, topic=SCHEDULE_TOPIC)
    )
    assert restore_delayed(broken) is None


@pytest.mark.parametrize(
    ("props", "deliver_ms"),
    [
        ({TimerConst.TIMER_DELIVER_MS: str(NOW + 3_500)}, NOW + 3_500),
        ({TimerConst.TIMER_DELAY_SEC: "90"}, NOW + 90_000),
        ({TimerConst.TIMER_DELAY_MS: "1234"}, NOW + 1_234),
        # RocketMQ 5's precedence when several are given: seconds, then ms, then absolute
        ({TimerConst.TIMER_DELAY_SEC: "2", TimerConst.TIMER_DELAY_MS: "9"}, NOW + 2_000),
    ],
)
def test_timer_message_is_parked_in_the_wheel_topic(props: dict[str, str], deliver_ms: int) -> None:
    out = rewrite_on_put(inner(props), LEVELS, TIMER, NOW)
    assert (out.topic, out.queue_id) == (TIMER_TOPIC, 0)
    assert out.properties[TimerConst.TIMER_OUT_MS] == str(deliver_ms)
    assert out.properties[MessageConst.REAL_TOPIC] == "T"
    assert out.properties[MessageConst.REAL_QID] == "3"


def test_timer_edge_cases() -> None:
    past = inner({TimerConst.TIMER_DELIVER_MS: str(NOW - 1)})
    assert rewrite_on_put(past, LEVELS, TIMER, NOW) is past  # already due: a plain message
    with pytest.raises(DelayRejected, match="timerMaxDelaySec"):
        rewrite_on_put(inner({TimerConst.TIMER_DELAY_SEC: str(4 * 86_400)}), LEVELS, TIMER, NOW)
    with pytest.raises(DelayRejected):
        rewrite_on_put(inner({TimerConst.TIMER_DELAY_MS: "soon"}), LEVELS, TIMER, NOW)
    with pytest.raises(DelayRejected, match="not enabled"):
        rewrite_on_put(
            inner({TimerConst.TIMER_DELAY_SEC: "5"}),
            LEVELS,
            TimerConfig(timerWheelEnable=False),
            NOW,
        )
    # a broker without exact-time delivery behaves like 4.9: the property is just carried
    plain = inner({TimerConst.TIMER_DELAY_SEC: "5"})
    assert rewrite_on_put(plain, LEVELS, None, NOW) is plain


def test_delay_level_wins_over_timer_properties() -> None:
    out = rewrite_on_put(
        inner({MessageConst.DELAY: "1", TimerConst.TIMER_DELAY_SEC: "100"}), LEVELS, TIMER, NOW
    )
    assert out.topic == SCHEDULE_TOPIC
    assert TimerConst.TIMER_DELAY_SEC not in out.properties


def test_message_that_went_through_the_wheel_is_not_timed_again() -> None:
    parked = rewrite_on_put(inner({TimerConst.TIMER_DELAY_SEC: "5"}), LEVELS, TIMER, NOW)
    back = restore_timed(stored(parked, store_timestamp=NOW + 1), NOW + 5_000)
    assert back is not None
    assert (back.topic, back.queue_id) == ("T", 3)
    assert MessageConst.REAL_TOPIC not in back.properties
    assert back.properties[TimerConst.TIMER_ENQUEUE_MS] == str(NOW + 1)
    assert back.properties[TimerConst.TIMER_DEQUEUE_MS] == str(NOW + 5_000)
    assert rewrite_on_put(back, LEVELS, TIMER, NOW + 5_000) is back
