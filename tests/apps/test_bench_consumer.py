"""bench_consumer's Receiver: grouping a batch by timestamp records what per-message
recording would, and the receiver keeps its own time apart from the consumer's."""

from __future__ import annotations

from unittest import mock

from hypothesis import given
from hypothesis import strategies as st

from apps._bench import Histogram, Meter
from apps.bench_consumer import Receiver
from protocol.message import MessageExt

NOW_MS = 1_700_000_000_000.25


def _per_message(msgs: list[MessageExt]) -> tuple[Histogram, Histogram]:
    b2c, s2c = Histogram(), Histogram()
    for m in msgs:
        b2c.record(int(max(0.0, NOW_MS - m.born_timestamp) / 1000 * 1_000_000))
        s2c.record(int(max(0.0, NOW_MS - m.store_timestamp) * 1000))
    return b2c, s2c


@given(st.lists(st.tuples(st.integers(-5, 3000), st.integers(-5, 3000)), min_size=1, max_size=40))
def test_grouped_recording_equals_per_message_recording(ages: list[tuple[int, int]]) -> None:
    msgs = [
        MessageExt(
            topic="T",
            body=b"",
            born_timestamp=int(NOW_MS) - born_age,
            store_timestamp=int(NOW_MS) - store_age,
        )
        for born_age, store_age in ages
    ]
    receiver = Receiver(Meter())
    with mock.patch("time.time", return_value=NOW_MS / 1000):
        receiver.on_messages(msgs)
    b2c, s2c = _per_message(msgs)
    assert receiver.meter.total.counts == b2c.counts
    assert receiver.meter.total.total_us == b2c.total_us
    assert receiver.s2c.counts == s2c.counts
    assert receiver.s2c.total_us == s2c.total_us
    assert receiver.received == receiver.meter.ok == len(msgs)
    assert receiver.cpu_s > 0
    assert receiver.last_at > 0


def test_nothing_is_recorded_for_an_empty_poll() -> None:
    receiver = Receiver(Meter())
    receiver.on_messages([])
    assert receiver.received == 0
    assert receiver.cpu_s == 0
