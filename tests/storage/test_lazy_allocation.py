"""Consume-queue and index files get their disk blocks as they fill, not at creation, and a full
disk at that moment refuses messages instead of crashing reput or faulting on a hole.

Preallocating them whole cost 6 MB per queue (48 GB for 1,000 topics of 8 queues) and 420 MB
per index file at RocketMQ's defaults, where Apache's sparse files cost what is written.
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from protocol.message import decode_record
from storage.consume_queue import RESERVE_STEP, ConsumeQueue
from storage.index_file import ENTRY_RESERVE, HEADER_SIZE, SLOT_SIZE, IndexFile
from storage.message_store import PutStatus
from tests.storage.conftest import message

CQ_DEFAULT = 300_000 * 20  # mappedFileSizeConsumeQueue's default


def allocated(path: str | Path) -> int:
    return os.stat(path).st_blocks * 512


def test_a_queue_file_is_allocated_as_units_arrive(tmp_path: Path) -> None:
    cq = ConsumeQueue(str(tmp_path), "T", 0, CQ_DEFAULT)
    assert cq.put(0, 0, 100, 7)
    path = cq.queue.files[0].path
    assert os.stat(path).st_size == CQ_DEFAULT  # the layout is Apache's: full-size files
    assert allocated(path) <= RESERVE_STEP  # but only the first step has blocks
    units = RESERVE_STEP // 20 + 10
    for i in range(1, units):
        assert cq.put(i, i * 100, 100, 7)
    assert RESERVE_STEP < allocated(path) <= 2 * RESERVE_STEP
    assert cq.unit(units - 1) == (100 * (units - 1), 100, 7)
    cq.close()
    # reopened, the next units reserve again from where the file stands
    again = ConsumeQueue(str(tmp_path), "T", 0, CQ_DEFAULT)
    again.load()
    again.recover()
    assert again.max_offset == units
    for i in range(units, 2 * units):
        assert again.put(i, i * 100, 100, 7)
    assert again.unit(2 * units - 1) == (100 * (2 * units - 1), 100, 7)
    assert allocated(path) <= 3 * RESERVE_STEP
    again.close()


def test_an_index_file_allocates_its_entries_as_they_arrive(tmp_path: Path) -> None:
    slots, entries = 1000, 1_000_000  # a 20 MB file
    path = str(tmp_path / "idx")
    f = IndexFile.create(path, slots, entries)
    head = HEADER_SIZE + slots * SLOT_SIZE
    assert allocated(path) <= head + ENTRY_RESERVE + 4096
    many = ENTRY_RESERVE // 20 + 100
    for i in range(many):
        assert f.put(f"k{i}", i, 1_700_000_000_000 + i)
    assert head + ENTRY_RESERVE < allocated(path) <= head + 2 * ENTRY_RESERVE + 4096
    assert f.select("k5", 10, 0, 2**62) == [5]
    assert f.select(f"k{many - 1}", 10, 0, 2**62) == [many - 1]
    f.write_header()
    f.close()


def test_a_full_disk_at_a_queue_reserve_stops_reput_and_refuses_messages(
    open_store, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    store = open_store(mappedFileSizeConsumeQueue=CQ_DEFAULT, mappedFileSizeCommitLog=1 << 20)
    assert store.put_message(message(body=b"a")).status is PutStatus.PUT_OK
    store.reput()
    cq = store._queue("TopicTest", 0)
    # the next put of a unit past the reserved step needs blocks, and the disk has none
    cq.queue.files[0].allocated_to = cq.queue.files[0].wrote_position + 20
    real = os.posix_fallocate

    def no_space(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    for body in (b"b", b"c"):
        assert store.put_message(message(body=body)).status is PutStatus.PUT_OK
    store.reput()  # "b" fits, "c" does not: reput waits at "c" instead of raising
    assert store.max_offset_in_queue("TopicTest", 0) == 2
    assert store.flags.logics_error
    assert store.put_message(message(body=b"d")).status is PutStatus.DISK_FULL
    store.reput()  # still no room: still waiting, nothing lost or skipped
    assert store.max_offset_in_queue("TopicTest", 0) == 2

    monkeypatch.setattr(os, "posix_fallocate", real)
    store.reput()
    assert not store.flags.logics_error
    assert store.max_offset_in_queue("TopicTest", 0) == 3
    got = store.get_message("g", "TopicTest", 0, 0, 10)
    assert [decode_record(b).body for b in got.buffers] == [b"a", b"b", b"c"]
    assert store.put_message(message(body=b"e")).status is PutStatus.PUT_OK


@pytest.fixture
def tiny_fs(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A 4 MiB tmpfs: a real ENOSPC (the tests run as root, as CI does)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_real_full_disk_is_an_oserror_not_a_sigbus(tiny_fs: Path) -> None:
    cq = ConsumeQueue(str(tiny_fs), "T", 0, CQ_DEFAULT)  # 6 MB on a 4 MiB disk: only sparse
    assert cq.put(0, 0, 100, 7)
    assert _fill(tiny_fs / "filler") == errno.ENOSPC  # take every block that is left
    units = RESERVE_STEP // 20
    # into the step reserved at creation, then a reserve that fails
    written, error = _put_until_error(cq, 1, 4 * units)
    assert error is not None
    assert error.errno == errno.ENOSPC
    assert cq.max_offset == written
    assert units <= written < 4 * units
    assert cq.unit(written - 1) == (100 * (written - 1), 100, 7)
    (tiny_fs / "filler").unlink()
    assert cq.put(written, written * 100, 100, 7)  # room again: on from where it stopped
    cq.close()


def _fill(path: Path) -> int:
    """Write ``path`` until the file system refuses; the errno it refused with."""
    with open(path, "wb") as fh:
        try:
            while True:
                fh.write(b"\xff" * 65536)
                fh.flush()
        except OSError as exc:
            return exc.errno or 0


def _put_until_error(cq: ConsumeQueue, start: int, stop: int) -> tuple[int, OSError | None]:
    """Put units ``start``.. until one fails; (the first unit not written, the error)."""
    for i in range(start, stop):
        try:
            cq.put(i, i * 100, 100, 7)
        except OSError as exc:
            return i, exc
    return stop, None
