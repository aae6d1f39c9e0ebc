"""A promoted slave store continues every queue where the replicated records left it."""

from __future__ import annotations

from storage.config import BrokerRole
from storage.message_store import PutStatus
from tests.storage.conftest import message
from tests.storage.test_replication import _replicate


def test_promoted_slave_continues_queue_offsets_of_replicated_records(open_store, store_config) -> None:  # type: ignore[no-untyped-def]
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
