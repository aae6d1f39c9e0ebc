"""The store's HA hooks: a slave mirrors the master's commit log byte for byte and builds its own
consume queues and index from it (reference §6.5)."""

from __future__ import annotations

import pytest

from protocol.message import decode_record
from storage.config import BrokerRole
from storage.message_store import GetStatus, PutStatus
from tests.storage.conftest import message


def _replicate(master, slave, start: int) -> None:  # type: ignore[no-untyped-def]
    offset = start
    while offset < master.max_phy_offset:
        chunk = master.read_replication(offset, 1000)
        assert chunk
        slave.append_replicated(offset, chunk)
        offset += len(chunk)


def test_slave_mirrors_master_from_its_last_file(open_store, store_config) -> None:  # type: ignore[no-untyped-def]
    master = open_store()
    for i in range(120):
        assert master.put_message(message(queue_id=i % 2, keys=f"k{i}")).status is PutStatus.PUT_OK
    master.reput()
    size = store_config.mappedFileSizeCommitLog
    start = master.max_phy_offset - master.max_phy_offset % size  # a new slave starts here
    slave = open_store(
        storePathRootDir=store_config.storePathRootDir + "-slave", brokerRole=BrokerRole.SLAVE
    )
    _replicate(master, slave, start)
    assert slave.max_phy_offset == master.max_phy_offset
    arrived = slave.reput()
    assert arrived
    assert slave.min_phy_offset == start
    for qid in (0, 1):
        assert slave.max_offset_in_queue("TopicTest", qid) == 60
        lo = slave.min_offset_in_queue("TopicTest", qid)
        assert lo > 0  # the units before the first replicated record are blank
        got = slave.get_message("g", "TopicTest", qid, lo, 32)
        assert got.status is GetStatus.FOUND
        for raw in got.buffers:
            m = decode_record(raw)
            assert master.select_one_message_by_offset(m.commit_log_offset) == raw
    first = decode_record(master.select_one_message_by_offset(start))
    hits = slave.query_message("TopicTest", first.keys[0], 4, 0, 2**62).records
    assert [decode_record(h).commit_log_offset for h in hits] == [start]
    assert slave.put_message(message()).status is PutStatus.SERVICE_NOT_AVAILABLE


def test_replicated_append_must_continue_the_log(open_store) -> None:  # type: ignore[no-untyped-def]
    slave = open_store(brokerRole=BrokerRole.SLAVE)
    with pytest.raises(ValueError, match="file boundary"):
        slave.append_replicated(10, b"x")
    slave.append_replicated(0, b"\x00" * 8)
    with pytest.raises(ValueError, match="ends at 8"):
        slave.append_replicated(100, b"x")
