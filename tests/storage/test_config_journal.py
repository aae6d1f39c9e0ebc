"""The config journal (storage/config_journal.py): what was appended is what a restart replays."""

from __future__ import annotations

from pathlib import Path

import hypothesis.strategies as st
from hypothesis import given, settings

from protocol.bodies.config import SubscriptionGroupConfig
from protocol.bodies.topic import TopicConfig
from storage.config_journal import (
    JOURNAL,
    Change,
    append_changes,
    decode_change,
    encode_change,
    read_changes,
    remove_journal,
)
from storage.subscription_groups import SubscriptionGroupTable
from storage.topic_config import TopicConfigTable

names = st.text(st.sampled_from("abcXYZ019_-%|"), min_size=1, max_size=20)
topics = st.builds(
    TopicConfig,
    topic_name=names,
    read_queue_nums=st.integers(1, 64),
    write_queue_nums=st.integers(1, 64),
    perm=st.sampled_from([2, 4, 6]),
    order=st.booleans(),
)
groups = st.builds(SubscriptionGroupConfig, group_name=names, retry_max_times=st.integers(0, 32))
changes = st.one_of(
    topics.map(lambda c: Change("topic", c.topic_name or "", c)),
    groups.map(lambda c: Change("group", c.group_name, c)),
    names.map(lambda n: Change("topic", n, None)),
    names.map(lambda n: Change("group", n, None)),
)


@given(st.lists(changes, max_size=20))
def test_encode_decode_round_trip(batch: list[Change]) -> None:
    for change in batch:
        line = encode_change(change)
        assert line.endswith(b"\n")
        assert line.count(b"\n") == 1
        assert decode_change(line[:-1]) == change


@settings(max_examples=30, deadline=None)
@given(st.lists(changes, max_size=30), st.data())
def test_torn_tail_loses_only_the_torn_line(
    tmp_path_factory: object, batch: list[Change], data: st.DataObject
) -> None:
    directory = Path(tmp_path_factory.mktemp("journal"))  # type: ignore[attr-defined]
    append_changes(directory, [encode_change(c) for c in batch])
    whole = (directory / JOURNAL).read_bytes()
    cut = data.draw(st.integers(0, len(whole)))
    (directory / JOURNAL).write_bytes(whole[:cut])
    got = read_changes(directory)
    complete_lines = whole[:cut].count(b"\n")
    assert got == batch[:complete_lines]


def test_replay_applies_in_order_over_the_tables(tmp_path: Path) -> None:
    t = TopicConfigTable()
    g = SubscriptionGroupTable()
    t.put(TopicConfig(topic_name="A", read_queue_nums=4, write_queue_nums=4), 1)
    t.put(TopicConfig(topic_name="B"), 1)
    t.delete("A", 2)
    t.put(TopicConfig(topic_name="B", perm=4), 3)
    g.put(SubscriptionGroupConfig(group_name="G"), 1)
    append_changes(tmp_path, [encode_change(c) for c in t.take_changes() + g.take_changes()])
    assert not t.take_changes()  # taken once
    t2, g2 = TopicConfigTable(), SubscriptionGroupTable()
    for change in read_changes(tmp_path):
        (t2 if change.kind == "topic" else g2).apply(change, 5)
    assert t2.all() == t.all()
    assert g2.all() == g.all()
    assert not t2.take_changes()  # replay records nothing new
    remove_journal(tmp_path)
    assert read_changes(tmp_path) == []


def test_orphan_consume_queues_become_topics() -> None:
    t = TopicConfigTable()
    t.put(TopicConfig(topic_name="Known", read_queue_nums=2, write_queue_nums=2), 1)
    adopted = t.adopt_orphan_queues({"Known": [0, 1], "Lost": [0, 3], "%RETRY%cg": [0]}, 2)
    assert adopted == ["%RETRY%cg", "Lost"]
    lost = t.get("Lost")
    assert lost is not None
    assert (lost.read_queue_nums, lost.write_queue_nums, lost.perm) == (4, 4, 6)
    known = t.get("Known")
    assert known is not None
    assert known.read_queue_nums == 2


def test_a_line_without_its_newline_is_torn(tmp_path: Path) -> None:
    """The newline is an append's last byte: whole JSON before it is not enough (an append
    cut right before it was never acknowledged, and the next start must not build on it)."""
    first = Change("topic", "00", TopicConfig(topic_name="00"))
    second = Change("group", "g", SubscriptionGroupConfig(group_name="g"))
    append_changes(tmp_path, [encode_change(first), encode_change(second)])
    whole = (tmp_path / JOURNAL).read_bytes()
    (tmp_path / JOURNAL).write_bytes(whole[:-1])
    assert read_changes(tmp_path) == [first]
