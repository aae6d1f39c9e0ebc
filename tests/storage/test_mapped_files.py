"""MappedFile / MappedFileQueue / CommitLog: preallocation, rollover, flush, truncation, deletion;
and a hypothesis state machine of the commit log against a list model."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from protocol.message import decode_record
from storage.checkpoint import StoreCheckpoint
from storage.commitlog import CommitLog, Host, Pending
from storage.errors import StoreError
from storage.mapped_file import MappedFile
from storage.mapped_file_queue import MappedFileQueue
from storage.recovery import recover_commit_log

FILE = 4096


def test_create_preallocates_and_names_by_offset(tmp_path) -> None:  # type: ignore[no-untyped-def]
    q = MappedFileQueue(str(tmp_path / "q"), FILE)
    mf = q.file_for_write(5 * FILE + 7)
    assert os.path.basename(mf.path) == f"{5 * FILE:020d}"
    st_ = os.stat(mf.path)
    assert st_.st_size == FILE
    assert st_.st_blocks * 512 >= FILE  # really allocated, not sparse
    assert mf.append(b"a" * 4000)
    assert not mf.append(b"b" * 200)
    assert mf.dirty_pages() == 0
    assert mf.flush(least_pages=1) == 0
    assert mf.flush() == 4000
    nxt = q.file_for_write()
    assert nxt is mf  # not full yet
    mf.wrote_position = FILE
    assert q.file_for_write().file_from_offset == 6 * FILE
    assert q.find(6 * FILE + 1) is q.files[1]
    assert q.find(4 * FILE) is None
    q.close()


def test_open_checks_size_and_queue_flush_crosses_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "q"
    q = MappedFileQueue(str(d), FILE)
    q.file_for_write().append(b"x" * FILE)
    q.file_for_write().append(b"y" * 10)
    assert q.max_offset == FILE + 10
    assert q.flush() == FILE + 10
    q.close()
    again = MappedFileQueue(str(d), FILE)
    again.load()
    assert [m.file_from_offset for m in again.files] == [0, FILE]
    again.set_positions(FILE + 10)
    assert again.max_offset == FILE + 10
    assert again.files[1].read(0, 10) == b"y" * 10
    again.close()
    with pytest.raises(StoreError, match="differs"):
        MappedFile.open(str(d / f"{0:020d}"), FILE * 2)


def test_flush_steps_over_a_gap_between_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A file lost to a crash leaves a gap: the flush goes on with the files after it (a
    flushed end stuck at the gap would hold the checkpoint's consume-queue time forever)."""
    d = tmp_path / "q"
    q = MappedFileQueue(str(d), FILE)
    q.file_for_write().append(b"x" * FILE)
    q.file_for_write().append(b"y" * FILE)
    q.file_for_write().append(b"z" * 10)
    q.close()
    os.unlink(d / f"{FILE:020d}")
    again = MappedFileQueue(str(d), FILE, sync_dir=False)
    again.load(names_durable=False)
    assert again.names_pending
    again.set_positions(2 * FILE + 10)
    for mf in again.files:  # unflushed, as after an abnormal start (ConsumeQueue.resync_from)
        mf.flushed_position = 0
    again.flushed_where = 0
    assert again.flush() == 2 * FILE + 10
    assert not again.names_pending
    again.close()


def test_truncate_zeroes_stale_tail_and_drops_later_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    q = MappedFileQueue(str(tmp_path / "q"), FILE)
    q.file_for_write().append(b"x" * FILE)
    q.file_for_write().append(b"y" * 100)
    q.truncate_dirty(50)
    assert len(q.files) == 1
    assert q.max_offset == 50
    assert q.files[0].read(0, 60) == b"x" * 50 + bytes(10)
    q.close()


def test_delete_first_files_and_readers_keep_their_view(tmp_path) -> None:  # type: ignore[no-untyped-def]
    q = MappedFileQueue(str(tmp_path / "q"), FILE)
    for _ in range(4):
        q.file_for_write().append(b"z" * FILE)
    view = memoryview(q.files[0].mm)[:4]  # a reader still holding the oldest file
    deleted = q.delete_first_files(lambda mf: True, max_files=10)
    assert len(deleted) == 3  # never the last file
    assert not os.path.exists(deleted[0].path)
    assert bytes(view) == b"zzzz"  # unlinked, still mapped
    view.release()
    q.sweep()
    assert q.min_offset == 3 * FILE
    q.close()


# ---------------------------------------------------------------- state machine

HOST = Host(bytes([10, 0, 0, 1]), 10911)


class CommitLogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp()
        self.log = CommitLog(os.path.join(self.dir, "commitlog"), FILE, HOST)
        self.model: list[tuple[int, bytes]] = []  # (offset, body) of every record
        self.n = 0

    def teardown(self) -> None:
        self.log.close()
        shutil.rmtree(self.dir)

    def _pending(self, body: bytes) -> Pending:
        self.n += 1
        props = f"UNIQ_KEY\x01{self.n}".encode()
        return Pending(b"T", 0, 0, body, props, 0, 1, HOST, 0, 0, self.n)

    @rule(bodies=st.lists(st.binary(max_size=1500), min_size=1, max_size=3))
    def append(self, bodies: list[bytes]) -> None:
        pendings = [self._pending(b) for b in bodies]
        total = sum(p.size(False) for p in pendings)
        if total + 8 > FILE:
            with pytest.raises(ValueError, match="never fit"):
                self.log.append(pendings, 5)
            return
        before = self.log.max_offset
        offset, wrote, _ = self.log.append(pendings, 5)
        assert wrote == total
        if before % FILE and (before % FILE) + total + 8 > FILE:
            assert offset == before + FILE - before % FILE  # moved whole to the next file
        assert offset // FILE == (offset + wrote - 1) // FILE
        for p in pendings:
            self.model.append((offset, p.body))
            offset += p.size(False)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def truncate(self, data: st.DataObject) -> None:
        keep = data.draw(st.integers(0, len(self.model)))
        end = self.model[keep][0] if keep < len(self.model) else self.log.max_offset
        self.log.queue.truncate_dirty(end)
        del self.model[keep:]

    @rule()
    def flush(self) -> None:
        assert self.log.queue.flush() == self.log.max_offset

    @rule()
    def reopen_and_recover(self) -> None:
        self.log.close()
        self.log = CommitLog(os.path.join(self.dir, "commitlog"), FILE, HOST)
        self.log.queue.load()
        result = recover_commit_log(
            self.log, abnormal=True, checkpoint=StoreCheckpoint("x"), check_crc=True
        )
        if self.model:
            last_off, _last_body = self.model[-1]
            raw = self.log.read_record(last_off)
            assert raw is not None
            assert result.end_offset in (
                last_off + len(raw),
                last_off + len(raw) + (-(last_off + len(raw)) % FILE),
            )

    @invariant()
    def every_record_reads_back(self) -> None:
        for offset, body in self.model:
            raw = self.log.read_record(offset)
            assert raw is not None
            msg = decode_record(raw, check_crc=True)
            assert (msg.body, msg.commit_log_offset) == (body, offset)
        if self.model:
            last_off = self.model[-1][0]
            raw = self.log.read_record(last_off)
            assert raw is not None
            end = last_off + len(raw)
            assert self.log.max_offset in (end, end + (-end % FILE))
        else:
            assert self.log.max_offset % FILE == 0


TestCommitLogMachine = CommitLogMachine.TestCase
TestCommitLogMachine.settings = settings(max_examples=30, stateful_step_count=25, deadline=None)


def test_cleaner_thread_never_loses_a_file_the_writer_just_added(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The event loop rolls to new files while a cleaner thread drops old ones."""
    import threading

    q = MappedFileQueue(str(tmp_path / "q"), FILE)
    stop = threading.Event()

    def cleaner() -> None:
        while not stop.is_set():
            q.delete_first_files(lambda mf: True, max_files=10)
            for mf in q.files:  # a flusher would do this concurrently too
                mf.flush()

    t = threading.Thread(target=cleaner)
    t.start()
    try:
        for _ in range(300):
            q.file_for_write().append(b"w" * FILE)
    finally:
        stop.set()
        t.join()
    on_disk = sorted(int(n) for n in os.listdir(tmp_path / "q"))
    assert on_disk == [mf.file_from_offset for mf in q.files]
    assert on_disk[-1] == 299 * FILE
    q.close()


def test_next_file_prepared_ahead_is_used_and_never_duplicated(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import threading

    q = MappedFileQueue(str(tmp_path / "q"), FILE)
    mf = q.file_for_write()
    assert not q.next_file_needed()
    mf.append(b"a" * (FILE // 2))
    assert q.next_file_needed()
    q.prepare_next_file()
    ready = q._ready
    assert ready is not None
    assert ready.file_from_offset == FILE
    assert not q.next_file_needed()
    assert q.max_offset == FILE // 2  # a prepared file is not part of the log yet
    mf.append(b"b" * (FILE // 2))
    assert q.file_for_write() is ready
    # a preparer thread racing the writer: every file is created once, in order
    stop = threading.Event()

    def preparer() -> None:
        while not stop.is_set():
            if q.next_file_needed(0.0):
                q.prepare_next_file()

    t = threading.Thread(target=preparer)
    t.start()
    try:
        for _ in range(100):
            q.file_for_write().append(b"c" * FILE)
    finally:
        stop.set()
        t.join()
    offsets = [m.file_from_offset for m in q.files]
    assert offsets == [i * FILE for i in range(len(offsets))]
    q.close()
    assert sorted(int(n) for n in os.listdir(tmp_path / "q")) == offsets  # the spare is gone


def _minor_faults_reading(mf: MappedFile, start: int, end: int) -> int:
    import resource

    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    for pos in range(start, end, 4096):
        mf.mm[pos]
    return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before


@pytest.mark.skipif(
    not hasattr(os, "posix_fallocate") or os.uname().sysname != "Linux", reason="Linux madvise"
)
def test_prefault_maps_pages_ahead_of_the_writer_and_never_pins_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    size = 256 * 4096
    mf = MappedFile.create(str(tmp_path / f"{0:020d}"), size)
    mf.append(b"x" * 5000)
    assert mf.prefault(64 * 4096) == 64 * 4096
    # populated from the write position's page on: reading them takes no page fault of the
    # mapping (at most 2 of the interpreter's own: its heap, seen in xdist workers; unpopulated,
    # the same 63 pages take at least 4 with the kernel's 16-page fault-around)
    assert _minor_faults_reading(mf, 4096, 64 * 4096) <= 2
    # the control: pages past the window still fault (once per 16 pages: the kernel maps
    # read faults around the faulting page), so the check above can fail
    assert _minor_faults_reading(mf, 128 * 4096, 192 * 4096) >= 3
    assert mf.prefault(10 * size) == size  # clamped to the file
    assert mf.prefault(size) == size  # nothing left: no call
    assert mf.close()  # the buffer pinning the mapping during madvise was released
    assert mf.prefault(size) == size


def test_queue_prefaults_the_window_and_a_prepared_successor(tmp_path) -> None:  # type: ignore[no-untyped-def]
    window = 8 * 4096
    q = MappedFileQueue(str(tmp_path / "q"), 64 * 4096)
    assert not q.prefault_needed(window)  # no file yet
    mf = q.file_for_write()
    assert q.prefault_needed(window)
    q.prefault(window)
    assert mf.prefaulted_to == window
    assert not q.prefault_needed(window)
    mf.append(b"a" * (window // 4 + 1))  # less than 3/4 of a window populated ahead now
    assert q.prefault_needed(window)
    q.prefault(window)
    assert mf.prefaulted_to == window // 4 + 1 + window
    mf.append(b"b" * mf.remaining)
    q.prepare_next_file()
    assert q._ready is not None
    assert q._ready.prefaulted_to == 0
    assert q.prefault_needed(window)
    q.prefault(window)
    assert q._ready.prefaulted_to == window
    assert q.file_for_write().prefaulted_to == window  # the writer's next file starts populated
    q.close()
