"""A promoted slave store continues every queue where the replicated records left it."""

from __future__ import annotations

from storage.config import BrokerRole
from storage.message_store import PutStatus
from tests.storage.conftest import message
from tests.storage.test_replication import _replicate


def test_promoted_slave_continues_queue_offsets_of_replicated_records(
    open_store, store_config
) -> None:  # type: ignore[no-untyped-def]
    master = open_store()
    for i in range(40):
        assert master.put_message(message(queue_id=i % 2)).status is PutStatus.PUT_OK
    slave = open_store(
        storePathRootDir=store_config.storePathRootDir + "-slave", brokerRole=BrokerRole.SLAVE
    )
    _replicate(master, slave, 0)
    # promoted before its reput dispatched anything: set_role must catch up first
    slave.set_role(BrokerRole.SYNC_MASTER)
    result = slave.put_message(message(queue_id=1))
    assert result.status is PutStatus.PUT_OK
    assert result.append is not None
    assert result.append.queue_offset == 20
    slave.reput()
    assert slave.max_offset_in_queue("TopicTest", 1) == 21


def test_slave_reput_waits_for_the_rest_of_a_replicated_record(open_store, store_config) -> None:  # type: ignore[no-untyped-def]
    """HA frames cut the commit log at any byte: a record split across two frames is
    dispatched once whole, and the records after it too (no hole in the queue)."""
    master = open_store()
    for i in range(6):
        assert master.put_message(message(queue_id=0, body=b"m%d" % i)).ok
    slave = open_store(
        storePathRootDir=store_config.storePathRootDir + "-slave", brokerRole=BrokerRole.SLAVE
    )
    data = master.read_replication(0, 1 << 20)
    size = len(data) // 6
    # cut inside a record's first 8 bytes, inside its header, inside its body
    cuts = [size + 3, 2 * size + 20, 4 * size - 10, len(data)]
    at = 0
    for cut in cuts:
        slave.append_replicated(at, data[at:cut])
        at = cut
        slave.reput()
        assert slave.reput_from == cut - cut % size  # stopped before the partial record
    assert slave.max_offset_in_queue("TopicTest", 0) == 6
    for k in range(6):
        assert slave.get_message("cg", "TopicTest", 0, k, 1).status.name == "FOUND"


def test_promotion_drops_a_partial_replicated_record(open_store, store_config) -> None:  # type: ignore[no-untyped-def]
    master = open_store()
    for _ in range(4):
        assert master.put_message(message(queue_id=0)).ok
    slave = open_store(
        storePathRootDir=store_config.storePathRootDir + "-slave", brokerRole=BrokerRole.SLAVE
    )
    data = master.read_replication(0, 1 << 20)
    slave.append_replicated(0, data[:-7])  # the master died mid-frame
    slave.set_role(BrokerRole.SYNC_MASTER)
    assert slave.max_phy_offset == slave.reput_from < len(data)
    result = slave.put_message(message(queue_id=0))
    assert result.ok
    assert result.append is not None
    assert result.append.queue_offset == 3
