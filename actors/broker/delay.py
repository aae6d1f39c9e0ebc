"""Delayed and timed messages: the put-side rewrite and the rebuild on delivery (pure).

Two mechanisms park a message in a system topic until it is due, then put a copy into its
real topic:

* **Delay levels** (4.9, reference §7.3): property ``DELAY`` = level n; the message is stored
  in ``SCHEDULE_TOPIC_XXXX`` queue n-1 with ``REAL_TOPIC``/``REAL_QID``; the store writes
  store time + the level's delay as the consume-queue tags code (storage/dispatch.py), and
  the schedule actor (schedule.py) delivers each level's queue in order.
* **Exact-time timers** (RocketMQ 5): ``TIMER_DELIVER_MS`` (absolute ms), ``TIMER_DELAY_SEC``
  or ``TIMER_DELAY_MS`` (relative); the message is stored in ``rmq_sys_wheel_timer`` queue 0
  with ``TIMER_OUT_MS`` = its delivery time, and the timer actor (timer.py) files it in the
  on-disk wheel (storage/timer_wheel.py).

``rewrite_on_put`` is what the send path (and send-back) applies before ``store.put_message``;
``restore_delayed`` / ``restore_timed`` rebuild the message the actors put when it is due.
"""

from __future__ import annotations

import attrs

from protocol.message import MessageConst, MessageExt, MessageSysFlag, transaction_type
from storage.config import parse_delay_levels
from storage.message_store import MessageInner
from storage.timer_wheel import TimerConfig
from storage.topic_config import SCHEDULE_TOPIC, TRANS_HALF_TOPIC

TIMER_TOPIC = "rmq_sys_wheel_timer"


class TimerConst:
    """RocketMQ 5 MessageConst keys of timer messages."""

    TIMER_DELIVER_MS = "TIMER_DELIVER_MS"
    TIMER_DELAY_SEC = "TIMER_DELAY_SEC"
    TIMER_DELAY_MS = "TIMER_DELAY_MS"
    TIMER_OUT_MS = "TIMER_OUT_MS"
    TIMER_ENQUEUE_MS = "TIMER_ENQUEUE_MS"
    TIMER_DEQUEUE_MS = "TIMER_DEQUEUE_MS"

    REQUESTS = (TIMER_DELIVER_MS, TIMER_DELAY_SEC, TIMER_DELAY_MS)


class DelayRejected(Exception):
    """The message's delay or timer properties cannot be honoured (answered MESSAGE_ILLEGAL)."""


@attrs.frozen
class DelayLevels:
    """The ``messageDelayLevel`` table: level n (1-based) delays by ``delays_ms[n - 1]``."""

    delays_ms: tuple[int, ...]

    @classmethod
    def parse(cls, message_delay_level: str) -> DelayLevels:
        delays = tuple(parse_delay_levels(message_delay_level))
        if not delays:
            raise ValueError("messageDelayLevel has no levels")
        return cls(delays)

    @property
    def max_level(self) -> int:
        return len(self.delays_ms)

    def levels(self) -> range:
        return range(1, self.max_level + 1)

    def delay_ms(self, level: int) -> int:
        return self.delays_ms[min(max(level, 1), self.max_level) - 1]

    def deliver_timestamp(self, level: int, store_timestamp: int) -> int:
        """The tags code the store writes for a schedule unit (storage/dispatch.py agrees)."""
        return store_timestamp + self.delay_ms(level)

    def correct_deliver_timestamp(self, level: int, deliver_timestamp: int, now_ms: int) -> int:
        """A delivery time further away than the level's whole delay can only come from a
        clock that went backwards: treat it as due now, as 4.9 does."""
        if deliver_timestamp > now_ms + self.delay_ms(level):
            return now_ms
        return deliver_timestamp


def queue_id_for_level(level: int) -> int:
    return level - 1


def delay_level(properties: dict[str, str]) -> int:
    """The ``DELAY`` property as a level; 0 when absent (Java's ``getDelayTimeLevel``)."""
    text = properties.get(MessageConst.DELAY)
    if text is None:
        return 0
    try:
        return int(text)
    except ValueError:
        raise DelayRejected(f"DELAY property {text!r} is not a delay level") from None


def _delayable(msg: MessageInner) -> bool:
    # Half and rollback messages are never delayed; their commit is (§7.1 store-level rules).
    return transaction_type(msg.sys_flag) in (
        MessageSysFlag.TRANSACTION_NOT_TYPE,
        MessageSysFlag.TRANSACTION_COMMIT,
    )


def rewrite_on_put(
    msg: MessageInner,
    levels: DelayLevels,
    timer: TimerConfig | None,
    now_ms: int,
    *,
    wait: str | None = None,
) -> MessageInner:
    """The message as it must be stored: parked in the schedule or timer topic, or unchanged.

    A delay level wins over timer properties (which are then dropped, as RocketMQ 5 does).
    ``timer`` None means this broker does not offer exact-time delivery: timer properties are
    left alone and the message is delivered at once, as a 4.9 broker does.  ``wait`` is the
    producer's ``WAIT`` property, which the send path keeps out of stored messages; Java's store
    re-serialises a parked message's properties with it, so a parked message (and the copy
    delivered later) carries it, checked against Apache 4.9.7.
    """
    if not _delayable(msg) or msg.topic in (SCHEDULE_TOPIC, TIMER_TOPIC):
        return msg
    level = delay_level(msg.properties)
    if level > 0:
        parked = to_schedule(msg, levels, level)
    elif timer is not None and is_timer_request(msg.properties):
        parked = to_timer(msg, timer, now_ms)
    else:
        return msg
    if wait is not None and parked is not msg:
        parked.properties.setdefault(MessageConst.WAIT, wait)
    return parked


def to_schedule(msg: MessageInner, levels: DelayLevels, level: int) -> MessageInner:
    level = min(level, levels.max_level)
    props = {k: v for k, v in msg.properties.items() if k not in TimerConst.REQUESTS}
    props[MessageConst.DELAY] = str(level)
    props[MessageConst.REAL_TOPIC] = msg.topic
    props[MessageConst.REAL_QID] = str(msg.queue_id)
    return _moved(msg, SCHEDULE_TOPIC, queue_id_for_level(level), props)


def is_timer_request(properties: dict[str, str]) -> bool:
    # TIMER_OUT_MS marks a message that already went through the wheel (a retry of a timed
    # message keeps its properties): it is not timed again.
    return TimerConst.TIMER_OUT_MS not in properties and any(
        key in properties for key in TimerConst.REQUESTS
    )


def timer_deliver_ms(properties: dict[str, str], now_ms: int) -> int:
    """The absolute delivery time asked for; RocketMQ 5's precedence: SEC, then MS, then DELIVER."""
    try:
        if (sec := properties.get(TimerConst.TIMER_DELAY_SEC)) is not None:
            return now_ms + int(sec) * 1000
        if (ms := properties.get(TimerConst.TIMER_DELAY_MS)) is not None:
            return now_ms + int(ms)
        return int(properties[TimerConst.TIMER_DELIVER_MS])
    except (KeyError, ValueError):
        raise DelayRejected("timer property is not a number of seconds or milliseconds") from None


def to_timer(msg: MessageInner, timer: TimerConfig, now_ms: int) -> MessageInner:
    if not timer.timerWheelEnable:
        raise DelayRejected("exact-time delivery (timer wheel) is not enabled on this broker")
    deliver_ms = timer_deliver_ms(msg.properties, now_ms)
    if deliver_ms <= now_ms:
        return msg  # already due: an ordinary message
    if deliver_ms - now_ms > timer.timerMaxDelaySec * 1000:
        raise DelayRejected(
            f"delivery time {deliver_ms} is more than timerMaxDelaySec="
            f"{timer.timerMaxDelaySec} away"
        )
    props = dict(msg.properties)
    props[TimerConst.TIMER_OUT_MS] = str(deliver_ms)
    props[MessageConst.REAL_TOPIC] = msg.topic
    props[MessageConst.REAL_QID] = str(msg.queue_id)
    return _moved(msg, TIMER_TOPIC, 0, props)


def _moved(msg: MessageInner, topic: str, queue_id: int, props: dict[str, str]) -> MessageInner:
    # spelled out rather than attrs.evolve: this is on the send path of every parked message
    return MessageInner(
        topic=topic,
        queue_id=queue_id,
        body=msg.body,
        properties=props,
        flag=msg.flag,
        sys_flag=msg.sys_flag,
        born_timestamp=msg.born_timestamp,
        born_host=msg.born_host,
        reconsume_times=msg.reconsume_times,
        prepared_transaction_offset=msg.prepared_transaction_offset,
    )


def _real_destination(props: dict[str, str]) -> tuple[str, int] | None:
    topic = props.get(MessageConst.REAL_TOPIC)
    try:
        queue_id = int(props.get(MessageConst.REAL_QID, ""))
    except ValueError:
        return None
    if not topic or topic == TRANS_HALF_TOPIC:
        # 4.9 drops a "delayed" half message: delivering it would bypass the transaction.
        return None
    return topic, queue_id


def _rebuild(ext: MessageExt, topic: str, queue_id: int, props: dict[str, str]) -> MessageInner:
    return MessageInner(
        topic=topic,
        queue_id=queue_id,
        flag=ext.flag,
        body=ext.body,
        properties=props,
        sys_flag=ext.sys_flag,
        born_timestamp=ext.born_timestamp,
        born_host=ext.born_host,
        reconsume_times=ext.reconsume_times,
    )


def restore_delayed(ext: MessageExt) -> MessageInner | None:
    """4.9's ``messageTimeup``: the due schedule message as put into its real topic.

    The properties are stored exactly as parked, ``DELAY``, ``REAL_TOPIC`` and ``REAL_QID``
    included: 4.9 serialises them before it clears ``DELAY`` from its map (reference §7.3 says
    "minus DELAY"; Apache 4.9.7 keeps it, see tests/compat/test_send_back_differential.py).
    Nobody waits for this put.  None when the record names no usable real topic (it is
    skipped, as 4.9 does).
    """
    dest = _real_destination(ext.properties)
    if dest is None:
        return None
    return _rebuild(ext, dest[0], dest[1], dict(ext.properties))


def restore_timed(ext: MessageExt, now_ms: int) -> MessageInner | None:
    """RocketMQ 5's ``convertMessage``: ``REAL_TOPIC``/``REAL_QID`` removed, ``TIMER_OUT_MS``
    kept (so the put is not timed again), enqueue and dequeue times added."""
    dest = _real_destination(ext.properties)
    if dest is None:
        return None
    props = {
        k: v
        for k, v in ext.properties.items()
        if k not in (MessageConst.REAL_TOPIC, MessageConst.REAL_QID)
    }
    props[TimerConst.TIMER_ENQUEUE_MS] = str(ext.store_timestamp)
    props[TimerConst.TIMER_DEQUEUE_MS] = str(now_ms)
    return _rebuild(ext, dest[0], dest[1], props)
