"""File cleanup (§6.4) and the disk-full refusal."""

from __future__ import annotations

import datetime
import os

from storage.cleanup import file_expired, is_delete_hour, judge_disk
from storage.config import MessageStoreConfig
from storage.message_store import GetStatus, PutStatus
from tests.storage.conftest import message

HOUR = 3_600_000


def _local_ms(hour: int) -> int:
    return int(datetime.datetime(2026, 11, 27, hour, 30).timestamp() * 1000)


def test_pure_decisions() -> None:
    c = MessageStoreConfig()
    assert judge_disk(0.5, c) == judge_disk(0.0, c)
    v = judge_disk(0.80, c)
    assert (v.space_to_delete, v.clean_immediately, v.disk_full) == (True, False, False)
    v = judge_disk(0.87, c)
    assert (v.clean_immediately, v.disk_full) == (True, False)
    v = judge_disk(0.95, c)
    assert (v.clean_immediately, v.disk_full) == (True, True)
    assert is_delete_hour(_local_ms(4), {4})
    assert not is_delete_hour(_local_ms(5), {4})
    assert file_expired(0, 72 * HOUR, 72)
    assert not file_expired(1, 72 * HOUR, 72)


def _age_files(directory: str, now_ms: int, hours: int) -> None:
    for name in os.listdir(directory):
        t = (now_ms - hours * HOUR) / 1000
        os.utime(os.path.join(directory, name), (t, t))


def test_expired_files_deleted_at_delete_hour_only(open_store, store_config) -> None:  # type: ignore[no-untyped-def]
    store = open_store()
    for _ in range(100):
        store.put_message(message(queue_id=0, body=b"x" * 200))
    store.reput()
    files = sorted(os.listdir(store_config.commit_log_dir))
    assert len(files) >= 5
    _age_files(store_config.commit_log_dir, _local_ms(4), 73)
    assert store.clean_expired(_local_ms(5)) == 0  # expired, but not the deleteWhen hour
    deleted = store.clean_expired(_local_ms(4))
    assert deleted == len(files) - 1  # never the file being written
    assert sorted(os.listdir(store_config.commit_log_dir)) == files[-1:]
    # consume queue follows: offsets pointing at deleted files are gone
    lo = store.min_offset_in_queue("TopicTest", 0)
    assert lo > 0
    r = store.get_message("g", "TopicTest", 0, 0, 1)
    assert (r.status, r.next_begin_offset) == (GetStatus.OFFSET_TOO_SMALL, lo)
    found = store.get_message("g", "TopicTest", 0, lo, 32)
    assert found.status is GetStatus.FOUND
    assert store.min_phy_offset == int(files[-1])


def test_fresh_files_survive_unless_disk_critical(open_store, store_config) -> None:  # type: ignore[no-untyped-def]
    ratio = {"value": 0.5}
    store = open_store()
    store._disk_ratio = lambda path: ratio["value"]
    for _ in range(60):
        store.put_message(message(body=b"x" * 200))
    store.reput()
    now = _local_ms(4)
    _age_files(store_config.commit_log_dir, now, 1)
    assert store.clean_expired(now) == 0  # young files, disk fine
    ratio["value"] = 0.80  # above diskMaxUsedSpaceRatio: expired files go at any hour
    assert store.clean_expired(_local_ms(12)) == 0  # ... but none is expired
    ratio["value"] = 0.87  # above the clean-forcibly ratio: even young files go
    assert store.clean_expired(_local_ms(12)) > 0
    assert store.put_message(message()).status is PutStatus.PUT_OK
    ratio["value"] = 0.95  # above the warning ratio: writes refused with a clear status
    store.clean_expired(_local_ms(12))
    assert store.flags.disk_full
    assert store.put_message(message()).status is PutStatus.DISK_FULL
    ratio["value"] = 0.5
    store.clean_expired(_local_ms(12))
    assert store.put_message(message()).status is PutStatus.PUT_OK


def test_no_space_for_a_new_file_is_disk_full(open_store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import errno

    store = open_store()
    store.put_message(message())

    def no_space(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    statuses = {store.put_message(message(body=b"x" * 500)).status for _ in range(20)}
    assert statuses == {PutStatus.PUT_OK, PutStatus.DISK_FULL}
    assert store.put_message(message()).status is PutStatus.DISK_FULL
