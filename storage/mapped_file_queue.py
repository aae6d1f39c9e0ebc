"""An ordered run of equally sized MappedFiles covering one logical byte space (§5.2).

Knows nothing about messages.  The file list is copy-on-write: mutations replace ``_files`` with
a new list, so a flusher or cleaner thread that took a snapshot never sees it change under it.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Callable

from storage.mapped_file import (
    OS_PAGE_SIZE,
    MappedFile,
    name_to_offset,
    offset_to_name,
    prefault_supported,
    remove_leftovers,
    sync_directory,
)

log = logging.getLogger(__name__)


class MappedFileQueue:
    def __init__(
        self,
        directory: str,
        file_size: int,
        *,
        warm: bool = False,
        sync_dir: bool = True,
        small_folios: bool = False,
        reserve_step: int = 0,
    ) -> None:
        self.directory = directory
        self.file_size = file_size
        self.warm = warm
        # allocate files' blocks this many bytes at a time as they fill (MappedFile.reserve),
        # instead of the whole file at creation; 0: whole files
        self.reserve_step = reserve_step
        # map page by page (MADV_RANDOM), for files whose writer appends 20 bytes at a time on
        # the event loop: see MappedFile.advise_small_folios
        self.small_folios = small_folios
        # a new file's name is made durable at creation, or (False: consume queues, whose
        # writer creates files on the event loop) by the first flush after it: see _flush
        self.sync_dir = sync_dir
        # a file was created (or loaded after a crash) whose name no directory fsync has
        # covered yet; set after the rename, cleared by the flush that fsyncs the directory
        self.names_pending = False
        self._files: list[MappedFile] = []
        # serialises list changes: the event loop adds files, a cleaner thread drops old ones
        self._mutate = threading.Lock()
        # a successor file created ahead of need by a worker thread; _creating is held while a
        # file is being created, so the writer and the preparer never both create one
        self._ready: MappedFile | None = None
        self._creating = threading.Lock()
        self.flushed_where = 0
        # held by a flush (a flusher thread) and by a truncation (a demoted master, on the event
        # loop): a flush that read the old write position must not store it as flushed after
        # a truncation cut the data below it (the new bytes there would count as synced)
        self._flushing = threading.Lock()
        # files unlinked while readers still held views of them; closed on a later sweep
        self._zombies: list[MappedFile] = []

    # ------------------------------------------------------------ load / create

    def load(self, *, names_durable: bool = True) -> None:
        """Open every 20-digit-named file in the directory; each must have the configured size.

        ``names_durable=False``: the files may have been created by a process that crashed
        before any directory fsync covered their names; the next flush makes them durable."""
        if not os.path.isdir(self.directory):
            return
        remove_leftovers(self.directory)
        names = sorted(n for n in os.listdir(self.directory) if name_to_offset(n) is not None)
        if not self.sync_dir:
            names = [n for n in names if not self._drop_if_empty(n)]
        files = [
            MappedFile.open(
                os.path.join(self.directory, n), self.file_size, reserve_step=self.reserve_step
            )
            for n in names
        ]
        if self.small_folios:
            for mf in files:
                mf.advise_small_folios()
        for prev, cur in itertools.pairwise(files):
            if cur.file_from_offset != prev.file_from_offset + self.file_size:
                log.warning("%s: gap before %s", self.directory, cur.path)
        self._files = files
        if files and not names_durable and not self.sync_dir:
            self.names_pending = True

    def _drop_if_empty(self, name: str) -> bool:
        """A file created without an fsync of its size (``sync_dir=False``) that a power loss
        left empty: its size never reached the disk, so neither did any data flushed into it
        (an fdatasync would have made the size durable first).  Dropped; what it held is after
        the checkpoint and replayed from the commit log."""
        path = os.path.join(self.directory, name)
        if os.path.getsize(path) != 0:
            return False
        log.warning("%s: empty file left by a crash while it was being created: dropped", path)
        os.unlink(path)
        return True

    @property
    def files(self) -> list[MappedFile]:
        return self._files

    def first(self) -> MappedFile | None:
        files = self._files
        return files[0] if files else None

    def last(self) -> MappedFile | None:
        files = self._files
        return files[-1] if files else None

    def create_file(self, start_offset: int) -> MappedFile:
        with self._creating:
            ready, self._ready = self._ready, None
            if ready is not None and ready.file_from_offset == start_offset:
                mf = ready
            else:
                if ready is not None:
                    self._destroy(ready)
                mf = self._new_file(start_offset)
            # still under _creating: a preparer must see this file as the last one
            with self._mutate:
                self._files = [*self._files, mf]
        return mf

    def _new_file(self, start_offset: int) -> MappedFile:
        os.makedirs(self.directory, exist_ok=True)
        path = os.path.join(self.directory, offset_to_name(start_offset))
        mf = MappedFile.create(
            path,
            self.file_size,
            warm=self.warm,
            sync_dir=self.sync_dir,
            reserve_step=self.reserve_step,
            # no name made durable here, so no size to make durable before it (see create_mapped)
            sync_size=self.sync_dir,
        )
        if not self.sync_dir:
            self.names_pending = True
        if self.small_folios:
            mf.advise_small_folios()
        return mf

    def next_file_needed(self, ahead: float = 0.5) -> bool:
        """Whether the last file is over ``ahead`` full and its successor is not prepared yet."""
        last = self.last()
        if last is None or self._ready is not None:
            return False
        return last.wrote_position >= last.file_size * ahead

    def prepare_next_file(self) -> None:
        """Create the successor of the last file ahead of need (run in a worker thread), so
        the writer never waits for fallocate and a directory fsync (AllocateMappedFileService)."""
        with self._creating:
            last = self.last()
            if last is None or self._ready is not None:
                return
            ready = self._new_file(last.file_from_offset + self.file_size)
            ready.take_first_write_fault()
            self._ready = ready

    def first_file_needed(self) -> bool:
        """Whether the queue has no file at all and none is prepared."""
        return not self._files and self._ready is None

    def prepare_first_file(self, start_offset: int = 0) -> None:
        """Create the first file, for ``start_offset``, ahead of the first write (run in a worker
        thread): a new topic's consume queues would otherwise each cost the writer a fallocate
        and an fsync on the event loop."""
        with self._creating:
            if self._files or self._ready is not None:
                return
            ready = self._new_file(start_offset - start_offset % self.file_size)
            ready.take_first_write_fault()
            self._ready = ready

    def prefault_needed(self, window: int) -> bool:
        """Whether less than 3/4 of ``window`` bytes past the write position is populated."""
        if not prefault_supported():
            return False
        last = self.last()
        if last is None or last.prefaulted_to >= last.file_size:
            return self._ready is not None and self._ready.prefaulted_to == 0
        return last.prefaulted_to < last.wrote_position + window * 3 // 4

    def prefault(self, window: int) -> None:
        """Populate ``window`` bytes past the write position, and the first ``window`` bytes
        of a prepared successor, so the writer rarely meets a fresh page (worker thread)."""
        last = self.last()
        if last is not None and last.prefaulted_to < last.wrote_position + window * 3 // 4:
            last.prefault(last.wrote_position + window)
        ready = self._ready
        if ready is not None and ready.prefaulted_to == 0:
            ready.prefault(window)

    def file_for_write(self, start_offset: int = 0) -> MappedFile:
        """The last file if it has room, else a new one (the first at ``start_offset``'s file)."""
        last = self.last()
        if last is not None and not last.is_full:
            return last
        if last is None:
            base = start_offset - start_offset % self.file_size
        else:
            base = last.file_from_offset + self.file_size
        return self.create_file(base)

    # ------------------------------------------------------------ offsets

    @property
    def min_offset(self) -> int:
        first = self.first()
        return first.file_from_offset if first is not None else 0

    @property
    def max_offset(self) -> int:
        last = self.last()
        return last.file_from_offset + last.wrote_position if last is not None else 0

    def find(self, offset: int) -> MappedFile | None:
        files = self._files
        if not files:
            return None
        index = (offset - files[0].file_from_offset) // self.file_size
        if 0 <= index < len(files):
            mf = files[index]
            if mf.file_from_offset <= offset < mf.file_from_offset + self.file_size:
                return mf
        for mf in files:  # a gap in the names; rare, linear is fine
            if mf.file_from_offset <= offset < mf.file_from_offset + self.file_size:
                return mf
        return None

    # ------------------------------------------------------------ flush

    def dirty_pages(self) -> int:
        return (self.max_offset - self.flushed_where) // OS_PAGE_SIZE

    def flush(self, least_pages: int = 0) -> int:
        """Flush from ``flushed_where`` on (across a file boundary if needed); new flushed_where.

        Without ``sync_dir``, also fsyncs the directory once after files were created: data
        fdatasynced into a file whose name a power loss can take is not durable, and whoever
        records this flush (the checkpoint's consume-queue time) would cover lost units."""
        with self._flushing:
            flushed = self._flush(least_pages)
            if self.names_pending:
                # cleared first: a file created from here on sets it again, and one created
                # before (renamed into place already) is covered by the fsync below
                self.names_pending = False
                try:
                    sync_directory(self.directory)
                except FileNotFoundError:
                    pass  # destroyed meanwhile (topic deleted): no name left to keep
                except BaseException:
                    self.names_pending = True
                    raise
            return flushed

    def _flush(self, least_pages: int) -> int:
        while True:
            mf = self.find(self.flushed_where)
            if mf is None:
                # in a gap between files (one lost to a crash, see load): nothing to flush
                # there, and a flushed end stuck before it would hold callers' marks back
                later = [f for f in self._files if f.file_from_offset > self.flushed_where]
                if not later:
                    return self.flushed_where
                mf = later[0]
                self.flushed_where = mf.file_from_offset
            pos = mf.flush(least_pages)
            self.flushed_where = mf.file_from_offset + pos
            if pos < mf.file_size:
                return self.flushed_where

    # ------------------------------------------------------------ truncate / delete

    def truncate_dirty(self, offset: int) -> None:
        """Make ``offset`` the end of data: later files go, the file holding it is cut there.
        Waits for a flush in progress (one fdatasync at most)."""
        with self._flushing:
            self._truncate_dirty(offset)

    def _truncate_dirty(self, offset: int) -> None:
        self._drop_ready()
        keep: list[MappedFile] = []
        for mf in self._files:
            end = mf.file_from_offset + self.file_size
            if end <= offset:
                keep.append(mf)
            elif mf.file_from_offset <= offset:
                pos = offset - mf.file_from_offset
                zero_stale_tail(mf, pos)
                mf.wrote_position = mf.flushed_position = pos
                keep.append(mf)
            else:
                self._destroy(mf)
        with self._mutate:
            self._files = keep
        self.flushed_where = min(self.flushed_where, offset) if keep else 0

    def set_positions(self, offset: int) -> None:
        """After recovery: files before ``offset`` are full, the one holding it ends there."""
        for mf in self._files:
            if mf.file_from_offset + self.file_size <= offset:
                mf.wrote_position = mf.flushed_position = self.file_size
        self.truncate_dirty(offset)
        self.flushed_where = offset

    def delete_first_files(
        self, should_delete: Callable[[MappedFile], bool], *, max_files: int, keep_last: bool = True
    ) -> list[MappedFile]:
        """Delete files from the front while ``should_delete`` says so; stop at the first refusal."""
        files = self._files
        limit = len(files) - 1 if keep_last else len(files)
        deleted: list[MappedFile] = []
        for mf in files[:limit]:
            if len(deleted) >= max_files or not should_delete(mf):
                break
            deleted.append(mf)
        if deleted:
            with self._mutate:
                # files are only ever added at the end, so the front is still what we examined
                self._files = self._files[len(deleted) :]
            for mf in deleted:
                self._destroy(mf)
        self.sweep()
        return deleted

    def _destroy(self, mf: MappedFile) -> None:
        if not mf.destroy():
            self._zombies.append(mf)

    def sweep(self) -> None:
        """Close unlinked files whose readers have finished."""
        self._zombies = [mf for mf in self._zombies if not mf.close()]

    def _drop_ready(self) -> None:
        with self._creating:
            ready, self._ready = self._ready, None
        if ready is not None:
            self._destroy(ready)

    def destroy(self) -> None:
        self._drop_ready()
        for mf in self._files:
            self._destroy(mf)
        self._files = []
        self.flushed_where = 0
        self.names_pending = False
        try:
            os.rmdir(self.directory)
        except OSError:
            pass

    def close(self, *, as_crash: bool = False) -> None:
        """Close every file; ``as_crash``: delete nothing, as a killed process would not."""
        if as_crash:
            with self._creating:
                ready, self._ready = self._ready, None
            if ready is not None:
                ready.close()
        else:
            self._drop_ready()  # an empty successor; loading would only delete it again
        for mf in self._files:
            if not mf.close():
                log.warning("%s still has readers at close", mf.path)
        self._files = []
        self.sweep()


def zero_stale_tail(mf: MappedFile, pos: int) -> None:
    """Zero bytes a crash left after ``pos`` so a later recovery cannot mistake them for data.

    Preallocated files are zero past anything ever written, so zeroing stops at the first page
    that is already all zero: the work is bounded by the garbage, not by the file size.
    """
    mm = mf.mm
    size = mf.file_size
    page_end = min(size, (pos // OS_PAGE_SIZE + 1) * OS_PAGE_SIZE)
    zero_page = bytes(OS_PAGE_SIZE)
    while pos < size:
        chunk = page_end - pos
        if mm[pos:page_end] == zero_page[:chunk]:
            return
        mm[pos:page_end] = zero_page[:chunk]
        pos = page_end
        page_end = min(size, pos + OS_PAGE_SIZE)
