"""The store's HA hooks: a slave mirrors the master's commit log byte for byte and builds its own
consume queues and index from it (reference §6.5)."""

from __future__ import annotations

import pytest

from protocol.message import decode_record
from storage.config import BrokerRole
from storage.errors import StoreError
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


def _commit_log_bytes(store) -> bytes:  # type: ignore[no-untyped-def]
    out = b""
    offset = store.min_phy_offset
    while offset < store.max_phy_offset:
        chunk = store.read_replication(offset, 1 << 20)
        assert chunk
        out += chunk
        offset += len(chunk)
    return out


def test_set_role_switches_the_write_refusal(open_store) -> None:  # type: ignore[no-untyped-def]
    store = open_store()
    assert store.put_message(message()).status is PutStatus.PUT_OK
    store.set_role(BrokerRole.SLAVE)
    assert store.put_message(message()).status is PutStatus.SERVICE_NOT_AVAILABLE
    assert store.put_messages([message()]).status is PutStatus.SERVICE_NOT_AVAILABLE
    store.set_role(BrokerRole.SYNC_MASTER)
    assert store.put_message(message()).status is PutStatus.PUT_OK


def test_demoted_master_truncates_the_tail_the_new_master_lacks(open_store, store_config) -> None:  # type: ignore[no-untyped-def]
    old = open_store()
    new = open_store(
        storePathRootDir=store_config.storePathRootDir + "-new", brokerRole=BrokerRole.SLAVE
    )
    for i in range(40):  # crosses several 4 KiB files
        assert old.put_message(message(queue_id=i % 2)).status is PutStatus.PUT_OK
    _replicate(old, new, 0)
    common = old.max_phy_offset
    for i in range(30):  # acknowledged by nobody: the old master dies with these
        assert (
            old.put_message(message(queue_id=i % 2, body=b"lost" * 20)).status is PutStatus.PUT_OK
        )
    old.reput()
    assert old.max_offset_in_queue("TopicTest", 0) == 35
    new.reput()
    new.set_role(BrokerRole.SYNC_MASTER)  # promoted: continues from its own log
    for _ in range(7):
        assert new.put_message(message(queue_id=1, body=b"new")).status is PutStatus.PUT_OK
    new.reput()

    with pytest.raises(StoreError):
        old.truncate_replicated(common)  # a master never truncates
    old.set_role(BrokerRole.SLAVE)
    assert old.truncate_replicated(old.max_phy_offset) == 0
    assert old.truncate_replicated(common) > 0
    assert old.max_phy_offset == common
    assert old.max_offset_in_queue("TopicTest", 0) == 20
    assert old.max_offset_in_queue("TopicTest", 1) == 20
    _replicate(new, old, common)
    old.reput()
    assert _commit_log_bytes(old) == _commit_log_bytes(new)
    assert old.max_offset_in_queue("TopicTest", 1) == 27
    got = old.get_message("g", "TopicTest", 1, 20, 32)
    assert got.status is GetStatus.FOUND
    assert [decode_record(raw).body for raw in got.buffers] == [b"new"] * 7


def test_truncation_waits_for_a_flush_in_progress(open_store, store_config, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A demoted master truncates on the event loop while the flush thread may be inside an
    fdatasync of the old tail: that flush must not record the old end as flushed (the bytes
    appended again below it would count as synced, and SYNC_FLUSH sends be acknowledged
    before their fdatasync)."""
    import os
    import threading

    import storage.mapped_file as mapped_file

    store = open_store()
    for i in range(3):
        assert store.put_message(message(queue_id=i % 2)).status is PutStatus.PUT_OK
    store.flush_commit_log()
    common = store.max_phy_offset
    for _ in range(2):
        assert store.put_message(message(body=b"tail" * 20)).status is PutStatus.PUT_OK
    store.set_role(BrokerRole.SLAVE)
    entered, release = threading.Event(), threading.Event()
    real_fdatasync = os.fdatasync

    def slow_fdatasync(fd: int) -> None:
        entered.set()
        assert release.wait(10)
        real_fdatasync(fd)

    monkeypatch.setattr(mapped_file.os, "fdatasync", slow_fdatasync)
    flusher = threading.Thread(target=store.flush_commit_log)
    flusher.start()
    assert entered.wait(10)  # the flush read the old end and is syncing
    truncator = threading.Thread(target=store.truncate_replicated, args=(common,))
    truncator.start()
    truncator.join(0.5)  # with the fix it waits for the flush; without, it is done by now
    release.set()
    flusher.join(10)
    truncator.join(10)
    monkeypatch.setattr(mapped_file.os, "fdatasync", real_fdatasync)
    assert store.max_phy_offset == common
    assert store.commit_log.queue.flushed_where <= common
    # bytes written again below the old end are flushed by the next flush, not taken as synced
    store.append_replicated(common, b"\x00" * 8)
    synced: list[int] = []
    monkeypatch.setattr(mapped_file.os, "fdatasync", lambda fd: synced.append(fd))
    assert store.flush_commit_log() == common + 8
    assert synced


@pytest.mark.parametrize(
    ("lost", "new_bytes"),
    [(30, 7), (3, 40), (30, 0), (0, 5)],
    ids=["old-tail-longer", "new-master-wrote-more", "new-master-wrote-nothing", "nothing-lost"],
)
async def test_agreed_prefix_finds_where_the_logs_diverge(  # type: ignore[no-untyped-def]
    open_store, store_config, lost, new_bytes
) -> None:
    """Both brokers wrote after the promotion at the same offsets: the comparison by record
    finds the promotion point, in whichever file it lies, whichever log is longer."""
    from actors.ha.divergence import agreed_prefix

    old = open_store()
    new = open_store(
        storePathRootDir=store_config.storePathRootDir + "-new", brokerRole=BrokerRole.SLAVE
    )
    for i in range(40):  # crosses several 4 KiB files
        assert old.put_message(message(queue_id=i % 2)).status is PutStatus.PUT_OK
    _replicate(old, new, 0)
    promoted_at = old.max_phy_offset
    for i in range(lost):
        old.put_message(message(queue_id=i % 2, body=b"lost" * 20))
    new.set_role(BrokerRole.SYNC_MASTER)
    for _ in range(new_bytes):
        assert new.put_message(message(queue_id=1, body=b"new")).status is PutStatus.PUT_OK
    probes: list[int] = []

    async def probe(offset: int) -> bytes | None:
        probes.append(offset)
        record = new.select_one_message_by_offset(offset)
        return None if record is None else bytes(record)

    keep = await agreed_prefix(old, probe)
    assert keep == promoted_at
    assert len(probes) <= 12  # a binary search, not a walk of 40 records
    old.set_role(BrokerRole.SLAVE)
    old.truncate_replicated(keep)
    _replicate(new, old, keep)
    assert _commit_log_bytes(old) == _commit_log_bytes(new)


async def test_agreed_prefix_compares_only_what_the_master_still_has(  # type: ignore[no-untyped-def]
    open_store, store_config
) -> None:
    from actors.ha.divergence import agreed_prefix

    old = open_store()
    for i in range(40):
        old.put_message(message(queue_id=i % 2))
    files = [mf.file_from_offset for mf in old.commit_log.queue.files]
    assert len(files) >= 2

    async def probe(offset: int) -> bytes | None:  # a master that deleted its first file
        record = old.select_one_message_by_offset(offset)
        return None if offset < files[1] or record is None else bytes(record)

    assert await agreed_prefix(old, probe, master_min=files[1]) == old.max_phy_offset
    # everything it has is older than the master's log: nothing to compare, nothing cut
    assert (
        await agreed_prefix(old, probe, master_min=old.max_phy_offset + 4096) == old.max_phy_offset
    )
