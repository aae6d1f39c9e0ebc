"""Reput takes what the put path kept (hints) instead of parsing the record back: both must agree."""

from __future__ import annotations

import tempfile

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.config import MessageStoreConfig
from storage.dispatch import DispatchRequest, request_from_hint
from storage.message_store import BatchInner, MessageInner, MessageStore, PutStatus
from tests.storage.conftest import STORE_HOST, FakeClock

words = st.text(alphabet="abcXYZ019 _-", min_size=1, max_size=12)
props = st.fixed_dictionaries(
    {"UNIQ_KEY": st.text(alphabet="0123456789ABCDEF", min_size=32, max_size=32)},
    optional={"TAGS": words, "KEYS": words, "DELAY": st.sampled_from(["1", "3", "x"])},
)
single = st.builds(
    MessageInner,
    topic=st.sampled_from(["TopicA", "TopicB", "SCHEDULE_TOPIC_XXXX"]),
    queue_id=st.integers(0, 2),
    body=st.binary(max_size=300),
    properties=props,
    sys_flag=st.sampled_from([0, 0x4, 0x8, 0xC]),  # transaction types: half, commit, rollback
    born_host=st.sampled_from(["10.0.0.7:50000", "[::1]:50000"]),
)
batch = st.builds(
    BatchInner,
    topic=st.sampled_from(["TopicA", "SCHEDULE_TOPIC_XXXX"]),
    queue_id=st.integers(0, 2),
    entries=st.lists(
        st.tuples(
            st.integers(0, 9),
            st.binary(max_size=200),
            st.sampled_from(
                [
                    b"TAGS\x01t\x02UNIQ_KEY\x01AB\x02CLUSTER\x01C",
                    b"KEYS\x01k1 k2\x02CLUSTER\x01C",
                    b"CLUSTER\x01C",
                ]
            ),
        ),
        min_size=1,
        max_size=5,
    ),
    born_host=st.sampled_from(["10.0.0.7:50000", "[::1]:50000"]),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(single | batch, min_size=1, max_size=25))
def test_hints_say_what_parsing_the_record_says(puts: list[MessageInner | BatchInner]) -> None:
    with tempfile.TemporaryDirectory() as root:
        config = MessageStoreConfig(
            storePathRootDir=root,
            mappedFileSizeCommitLog=4096,
            mappedFileSizeConsumeQueue=200,
            maxHashSlotNum=64,
            maxIndexNum=32,
        )
        store = MessageStore(config, store_host=STORE_HOST, now_ms=FakeClock())
        store.load()
        try:
            for p in puts:
                if isinstance(p, BatchInner):
                    result = store.put_batch(attrs.evolve(p))
                else:
                    result = store.put_message(attrs.evolve(p))
                assert result.status is PutStatus.PUT_OK
            hints = list(store._hints)
            assert len(hints) == sum(
                0 if p.topic == "SCHEDULE_TOPIC_XXXX"
                else len(p.entries) if isinstance(p, BatchInner) else 1
                for p in puts
            )  # fmt: skip
            for h in hints:
                got = request_from_hint(h)
                parsed, nxt = store.commit_log.next_dispatch(
                    h[0], delay_levels_ms=store.delay_levels_ms
                )
                assert isinstance(parsed, DispatchRequest)
                assert got == parsed
                assert nxt == h[0] + h[1]
            store.reput()
            assert not store._hints
            assert store.dispatch_behind_bytes() == 0
        finally:
            store.shutdown()


def test_a_stale_or_missing_hint_falls_back_to_parsing(open_store) -> None:  # type: ignore[no-untyped-def]
    store = open_store()
    for i in range(6):
        store.put_message(MessageInner("T", 0, b"x" * 100, {"TAGS": f"t{i}", "UNIQ_KEY": f"U{i}"}))
    hints = list(store._hints)
    store._hints.clear()
    store._hints.extend(hints[3:])  # the first three were dropped (reput fell far behind)
    store._hints.appendleft((hints[0][0] - 1, *hints[0][1:]))  # and one that matches nothing
    store.reput()
    assert store.max_offset_in_queue("T", 0) == 6
    assert [store.get_message("g", "T", 0, i, 1).message_count for i in range(6)] == [1] * 6
    assert not store._hints
