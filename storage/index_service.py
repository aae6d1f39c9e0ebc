"""The index directory (§5.5): key extraction, file rotation, queries by key and time range."""

from __future__ import annotations

import datetime
import logging
import os
import threading

import attrs

from protocol.message import MessageConst, MessageSysFlag, transaction_type
from storage.dispatch import DispatchRequest
from storage.index_file import IndexFile
from storage.mapped_file import remove_leftovers

log = logging.getLogger(__name__)


def index_file_name(now_ms: int) -> str:
    """``yyyyMMddHHmmssSSS`` in local time, as ``UtilAll.timeMillisToHumanString`` writes it."""
    t = datetime.datetime.fromtimestamp(now_ms / 1000)
    return t.strftime("%Y%m%d%H%M%S") + f"{now_ms % 1000:03d}"


@attrs.frozen
class IndexQueryResult:
    phy_offsets: list[int]
    index_last_update_timestamp: int
    index_last_update_phyoffset: int


class IndexService:
    def __init__(self, directory: str, slot_num: int, index_num: int) -> None:
        self.directory = directory
        self.slot_num = slot_num
        self.index_num = index_num
        self.files: list[IndexFile] = []
        # reput appends files on the event loop while a cleaner thread drops old ones
        self._mutate = threading.Lock()
        # records starting below this commit-log offset are indexed (replay skips them)
        self.indexed_upto = 0
        # after a crash: the commit-log offset from which dropped index files must be rebuilt
        self.rebuild_from: int | None = None

    def load(self, *, last_exit_ok: bool) -> None:
        """Open the index files; after a crash, drop those whose header is not plausible.

        Java drops every file written after the checkpoint's index timestamp, i.e. nearly always
        the active one, and loses its keys.  The header is rewritten on every put, so after a
        process crash it is exact; only a torn header (power loss) is refused, and reput rebuilds
        that file's range.  Entries for records the recovery cut off are ignored at query time.
        """
        if not os.path.isdir(self.directory):
            return
        remove_leftovers(self.directory)
        for name in sorted(os.listdir(self.directory)):
            if not (len(name) == 17 and name.isdigit()):
                continue
            f = IndexFile.open(os.path.join(self.directory, name), self.slot_num, self.index_num)
            if not last_exit_ok and not f.plausible():
                log.warning("index file %s has a torn header: rebuilding its range", f.path)
                if self.rebuild_from is None:
                    self.rebuild_from = f.begin_phy_offset
                f.destroy()
                continue
            self.files.append(f)
        for i, f in enumerate(self.files):
            # a file's end record is indexed; a successor starts at its predecessor's end
            if f.index_count > 1 or i > 0:
                self.indexed_upto = max(self.indexed_upto, f.end_phy_offset + 1)

    def after_recovery(self, commit_log_end: int) -> None:
        """Records at or after the recovered end will be new ones: index them again."""
        self.indexed_upto = min(self.indexed_upto, commit_log_end)
        if self.rebuild_from is not None:
            self.indexed_upto = min(self.indexed_upto, self.rebuild_from)

    @property
    def max_phy_offset(self) -> int:
        return self.files[-1].end_phy_offset if self.files else 0

    def _writable(self, now_ms: int, need: int) -> tuple[IndexFile, IndexFile | None]:
        """The file to put ``need`` keys into, and the file it took over from (to flush): a
        record's keys go into one file where they fit, so one header write covers them all."""
        last = self.files[-1] if self.files else None
        if last is not None:
            if last.room() >= need or (last.index_count <= 1 and not last.is_full):
                return last, None
            last.write_header()  # its final state, before the next file takes over
        os.makedirs(self.directory, exist_ok=True)
        stamp = now_ms
        while True:
            path = os.path.join(self.directory, index_file_name(stamp))
            if not os.path.exists(path):
                break
            stamp += 1
        begin_ts = last.end_timestamp if last else 0
        begin_phy = last.end_phy_offset if last else 0
        f = IndexFile.create(
            path,
            self.slot_num,
            self.index_num,
            begin_timestamp=begin_ts,
            begin_phy_offset=begin_phy,
        )
        with self._mutate:
            self.files = [*self.files, f]
        return f, last

    def build(self, req: DispatchRequest, now_ms: int) -> IndexFile | None:
        """Index ``req``'s UNIQ_KEY and KEYS; returns a file that was just finished (to flush).

        The header is written once, after the record's last key: a crash between two keys
        leaves it covering only whole records, and replay indexes this one again.
        """
        if transaction_type(req.sys_flag) == MessageSysFlag.TRANSACTION_ROLLBACK:
            return None
        phy = req.commit_log_offset
        if phy < self.indexed_upto:
            return None  # already indexed (replay after recovery)
        uniq = req.uniq_key
        text = req.keys
        keys: list[str]
        if text:
            keys = [uniq] if uniq else []
            keys.extend(k for k in text.split(MessageConst.KEY_SEPARATOR) if k)
        elif uniq:
            keys = [uniq]  # the common case: a producer's message id only
        else:
            self.indexed_upto = phy + 1
            return None
        f, full = self._writable(now_ms, len(keys))
        topic = req.topic
        ts = req.store_timestamp
        for key in keys:
            full_key = f"{topic}#{key}"
            if not f.put(full_key, phy, ts):
                # more keys than a whole file holds: the rest go on in a new one
                f, full = self._writable(now_ms, 1)
                f.put(full_key, phy, ts)
        f.write_header()
        self.indexed_upto = phy + 1
        return full

    def query(self, topic: str, key: str, max_num: int, begin: int, end: int) -> IndexQueryResult:
        offsets: list[int] = []
        last_ts = last_phy = 0
        full_key = f"{topic}#{key}"
        for i, f in enumerate(reversed(self.files)):
            if i == 0:
                last_ts, last_phy = f.end_timestamp, f.end_phy_offset
            if len(offsets) >= max_num:
                break
            if f.overlaps(begin, end):
                try:
                    offsets.extend(f.select(full_key, max_num - len(offsets), begin, end))
                except ValueError:  # unmapped by the cleaner meanwhile
                    continue
        return IndexQueryResult(offsets, last_ts, last_phy)

    def delete_expired(self, phy_min_offset: int) -> int:
        """Delete files (never the last) whose entries all point below the commit log's start."""
        with self._mutate:
            doomed = [f for f in self.files[:-1] if f.end_phy_offset < phy_min_offset]
            self.files = [f for f in self.files if f not in doomed]
        for f in doomed:
            f.destroy()
        return len(doomed)

    def flush(self) -> None:
        for f in self.files[-2:]:
            f.flush()

    def destroy(self) -> None:
        for f in self.files:
            f.destroy()
        self.files = []

    def close(self) -> None:
        for f in self.files:
            f.close()
        self.files = []
