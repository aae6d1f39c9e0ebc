"""One fixed-size, preallocated, memory-mapped file named by its 20-digit start offset (§5.2).

Writes go through the shared mapping; durability comes from ``os.fdatasync`` on the file
descriptor, which releases the GIL (``mmap.flush``/msync does not) and on Linux writes back pages
dirtied through the mapping.  ``flush`` may run in a worker thread while the owner appends: it
captures the write position first, so everything below that position is durable afterwards.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import mmap
import os
import threading
from collections.abc import Callable

from storage.errors import StoreError

log = logging.getLogger(__name__)

OS_PAGE_SIZE = 4096


def offset_to_name(offset: int) -> str:
    return f"{offset:020d}"


def name_to_offset(name: str) -> int | None:
    if len(name) != 20 or not name.isdigit():
        return None
    return int(name)


TMP_SUFFIX = ".creating"

# Linux 5.14+; Python 3.11's mmap module lacks the constants
MADV_POPULATE_READ = 22
MADV_POPULATE_WRITE = 23


def _load_madvise() -> Callable[[int, int, int], int] | None:
    """libc madvise through ctypes, which releases the GIL for the call (``mmap.madvise`` holds
    it, stalling the event loop for the whole populate); None where libc has none."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


_madvise = _load_madvise()


def prefault_supported() -> bool:
    return _madvise is not None


def create_mapped(
    path: str,
    file_size: int,
    *,
    sync_dir: bool = True,
    reserve: int | None = None,
    sync_size: bool = True,
) -> tuple[int, mmap.mmap]:
    """A new file at ``path``, mapped shared, its first ``reserve`` bytes allocated (all of it
    when None; the rest is a hole that the writer reserves before it writes there).

    Built under a temporary name and renamed into place, so a crash mid-creation never leaves a
    short file under a real name (loading refuses files of the wrong size); the file is synced
    before the rename and the directory after it, so the name never outlives the size.

    ``sync_size=False`` (consume queues, with ``sync_dir=False``) skips that fsync, ~1.4 of the
    ~1.9 ms a queue file costs here: a power loss may then leave the name on an empty file,
    which their loader drops (MappedFileQueue.load); nothing flushed can have been in it, as a
    flush of its data is an fdatasync, which makes the size durable too.
    """
    tmp = path + TMP_SUFFIX
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        if reserve is None or reserve >= file_size:
            os.posix_fallocate(fd, 0, file_size)
        else:
            os.ftruncate(fd, file_size)
            if reserve > 0:
                os.posix_fallocate(fd, 0, reserve)
        # the size is the file's data as far as POSIX goes: without this fsync a power loss can
        # leave the durable name (after the directory fsync below) on an empty file, which
        # loading refuses (tests/powerloss/test_lazyfs.py::test_commit_log_mapped_file...)
        if sync_size:
            os.fsync(fd)
        if os.path.exists(path):
            raise FileExistsError(path)
        os.rename(tmp, path)
        if sync_dir:
            sync_directory(os.path.dirname(path))
        mm = mmap.mmap(fd, file_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    except BaseException:
        os.close(fd)
        for leftover in (tmp,):
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                pass
        raise
    return fd, mm


def open_mapped(path: str, file_size: int) -> tuple[int, mmap.mmap]:
    """An existing file mapped shared; StoreError unless it is exactly ``file_size`` bytes
    (§5.2: a short file is a crash mid-creation or a changed configuration, never data)."""
    actual = os.path.getsize(path)
    if actual != file_size:
        raise StoreError(f"{path}: size {actual} differs from the configured {file_size}")
    fd = os.open(path, os.O_RDWR)
    try:
        mm = mmap.mmap(fd, file_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    except BaseException:
        os.close(fd)
        raise
    return fd, mm


def sync_directory(directory: str) -> None:
    fd = os.open(directory or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_leftovers(directory: str) -> None:
    """Delete half-created files a crash left behind."""
    for name in os.listdir(directory):
        if name.endswith(TMP_SUFFIX):
            os.unlink(os.path.join(directory, name))


class MappedFile:
    """A mapped file with a write position (owner thread) and a flushed position (flusher)."""

    __slots__ = (
        "_fd",
        "_io_lock",
        "allocated_to",
        "deleted",
        "file_from_offset",
        "file_size",
        "flushed_position",
        "mm",
        "path",
        "prefaulted_to",
        "reserve_step",
        "wrote_position",
    )

    def __init__(
        self, path: str, file_size: int, fd: int, mm: mmap.mmap, reserve_step: int = 0
    ) -> None:
        self.path = path
        self.file_size = file_size
        # Bytes below ``allocated_to`` have disk blocks; ``append`` reserves ``reserve_step``
        # more (posix_fallocate) before writing past it, so a full disk is an OSError there and
        # never a SIGBUS on a hole.  0: the file was allocated whole at creation.
        self.reserve_step = reserve_step
        self.allocated_to = 0 if reserve_step else file_size
        base = name_to_offset(os.path.basename(path))
        if base is None:
            raise StoreError(f"{path}: file name is not a 20-digit offset")
        self.file_from_offset = base
        self._fd = fd
        self.mm = mm
        self.wrote_position = 0
        self.flushed_position = 0
        # pages below this have been populated ahead of the writer (see prefault)
        self.prefaulted_to = 0
        self.deleted = False
        # a flusher thread must never fdatasync a descriptor a cleaner thread has just closed
        self._io_lock = threading.Lock()

    @classmethod
    def create(
        cls,
        path: str,
        file_size: int,
        *,
        warm: bool = False,
        sync_dir: bool = True,
        reserve_step: int = 0,
        sync_size: bool = True,
    ) -> MappedFile:
        """Create and preallocate (whole, or the first ``reserve_step`` bytes); OSError (e.g.
        ENOSPC) here instead of SIGBUS on a later write."""
        reserve = min(reserve_step, file_size) if reserve_step and not warm else None
        fd, mm = create_mapped(
            path, file_size, sync_dir=sync_dir, reserve=reserve, sync_size=sync_size
        )
        mf = cls(path, file_size, fd, mm, reserve_step if reserve is not None else 0)
        if reserve is not None:
            mf.allocated_to = reserve
        if warm:
            mf.warm()
        return mf

    @classmethod
    def open(cls, path: str, file_size: int, *, reserve_step: int = 0) -> MappedFile:
        """Open an existing file; it must be exactly ``file_size`` bytes (§5.2).

        With ``reserve_step`` the file may have holes (it was created so): the first append
        reserves from the start of the file again, which costs one call for what is there."""
        fd, mm = open_mapped(path, file_size)
        mf = cls(path, file_size, fd, mm, reserve_step)
        # loaded files count as full and durable until recovery sets the real positions
        mf.wrote_position = mf.flushed_position = file_size
        return mf

    def warm(self) -> None:
        """Touch every page so the first appends do not fault (warmMappedFileEnable)."""
        mm = self.mm
        for pos in range(0, self.file_size, OS_PAGE_SIZE):
            mm[pos] = 0
        os.fdatasync(self._fd)

    def prefault(self, end: int) -> int:
        """Map the pages from ``prefaulted_to`` up to ``end`` ahead of the writer (run in a
        worker thread); returns the new ``prefaulted_to``.

        Packing a record into a fresh page is mostly the kernel's fault (allocate and zero a
        page-cache page; on a VM whose balloon reports free pages to the host, a host fault
        too): 1 KiB records packed at ~0.3M/s into such fresh pages, ~2M/s into populated
        ones.  MADV_POPULATE_READ takes that cost here, off the event loop and without the
        GIL: measured ~10 -> ~8 us of event-loop CPU per put when memory is cold (no gain when
        the kernel recycles pages still backed by the host).  Chosen over the alternatives:
        - POPULATE_WRITE (or touching pages, warmMapedFileEnable) dirties the zero pages, so the
          next fdatasync writes them and they are written again with data; and every fdatasync
          write-protects them again anyway, so a write-populate buys nothing a read-populate
          does not (measured: the same put rate).  POPULATE_READ leaves them clean: the
          writer's first store takes only a write-protect fault, about a tenth of a fresh one.
        - MADV_WILLNEED on a file mapping only fills the page cache; the writer still faults.
        - pwrite on the append path is a syscall per record on the event loop and would need
          a write buffer that readers see (Java's transientStorePool), a larger change.
        Only allocated pages are populated, so populating never allocates blocks (no SIGBUS,
        no ENOSPC).
        """
        global _madvise
        start = max(self.prefaulted_to, self.wrote_position)
        start -= start % OS_PAGE_SIZE
        end = min(end, self.allocated_to)  # never populate a hole (see reserve)
        if _madvise is None or end <= start or self.deleted:
            return self.prefaulted_to
        try:
            # the exported buffer pins the mapping: close() refuses (BufferError) until it
            # is released, so the address stays valid while madvise runs without the GIL
            pin = (ctypes.c_char * (end - start)).from_buffer(self.mm, start)
        except ValueError:  # closed meanwhile by the cleaner
            return self.prefaulted_to
        try:
            if _madvise(ctypes.addressof(pin), end - start, MADV_POPULATE_READ) != 0:
                err = ctypes.get_errno()
                if err == errno.EINVAL:  # a kernel before 5.14: the writer faults as before
                    log.info("madvise(MADV_POPULATE_READ) unsupported; no prefaulting")
                    _madvise = None
                return self.prefaulted_to
        finally:
            del pin
        self.prefaulted_to = end
        return end

    def advise_small_folios(self) -> None:
        """MADV_RANDOM: fault pages in one at a time, without readahead.

        With readahead the first write fault of a region brings in a large folio (this
        kernel: ~2 ms for a fresh file's first write, then nothing for the next pages; with
        MADV_RANDOM 0.02 ms, then ~8 us per 4 KiB page).  A consume queue's writer is the
        event loop, 20 bytes per message: a 2 ms stall per new queue cost more than all its
        later page faults together (204 units per page).  Readers lose readahead on cold
        files, which for 20-byte units is little.
        """
        try:
            self.mm.madvise(mmap.MADV_RANDOM)
        except (OSError, ValueError):  # closed meanwhile, or an old kernel: faults as before
            pass

    def take_first_write_fault(self) -> None:
        """Take the file's first write fault now, in the worker thread preparing the file.

        The first write through a fresh file's mapping costs ~2 ms here (readahead brings in a
        large folio; later pages ~6 us), and an mmap write holds the GIL meanwhile, stalling
        the event loop.  Consume queues avoid the large folio altogether
        (``advise_small_folios``); for a commit-log successor this takes the cost here instead:
        MADV_POPULATE_WRITE faults the first page in for writing inside a ctypes call, which
        releases the GIL; the page keeps its zeros.  Without it (a kernel before 5.14) the
        writer takes the fault as before.
        """
        if _madvise is None or self.deleted:
            return
        try:
            pin = (ctypes.c_char * OS_PAGE_SIZE).from_buffer(self.mm, 0)
        except ValueError:  # closed meanwhile
            return
        try:
            _madvise(ctypes.addressof(pin), OS_PAGE_SIZE, MADV_POPULATE_WRITE)
        finally:
            del pin

    @property
    def remaining(self) -> int:
        return self.file_size - self.wrote_position

    @property
    def is_full(self) -> bool:
        return self.wrote_position >= self.file_size

    def append(self, data: bytes | bytearray | memoryview) -> bool:
        pos = self.wrote_position
        end = pos + len(data)
        if end > self.file_size:
            return False
        if end > self.allocated_to:
            self.reserve(end)
        self.mm[pos:end] = data
        self.wrote_position = end
        return True

    def reserve(self, end: int) -> None:
        """Allocate disk blocks up to ``end`` and on to the next ``reserve_step`` boundary.

        OSError (ENOSPC) leaves the file as it was: the write that needed the room is refused
        instead of faulting on a hole it cannot fill."""
        step = self.reserve_step or self.file_size
        target = min(self.file_size, -(-end // step) * step)
        start = self.allocated_to
        if target > start:
            os.posix_fallocate(self._fd, start, target - start)
            self.allocated_to = target

    def read(self, pos: int, size: int) -> bytes:
        return self.mm[pos : pos + size]

    def dirty_pages(self) -> int:
        return self.wrote_position // OS_PAGE_SIZE - self.flushed_position // OS_PAGE_SIZE

    def flush(self, least_pages: int = 0) -> int:
        """fdatasync if at least ``least_pages`` pages are dirty (0: if anything is); new flushed pos."""
        target = self.wrote_position
        if target <= self.flushed_position:
            return self.flushed_position
        if least_pages > 0 and not (
            target // OS_PAGE_SIZE - self.flushed_position // OS_PAGE_SIZE >= least_pages
            or target >= self.file_size
        ):
            return self.flushed_position
        with self._io_lock:
            if self._fd >= 0 and not self.deleted:
                os.fdatasync(self._fd)
        self.flushed_position = max(self.flushed_position, target)
        return self.flushed_position

    def last_modified_ms(self) -> int:
        return os.stat(self._fd).st_mtime_ns // 1_000_000

    def close(self) -> bool:
        """Unmap and close; False while readers still hold views of the mapping (retry later)."""
        with self._io_lock:
            try:
                self.mm.close()
            except BufferError:
                return False
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
        return True

    def destroy(self) -> bool:
        """Unlink the file (the mapping stays valid for readers) and try to close it."""
        if not self.deleted:
            self.deleted = True
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        return self.close()

    def __repr__(self) -> str:
        return (
            f"<MappedFile {self.path} wrote={self.wrote_position} flushed={self.flushed_position}>"
        )
