"""MessageStore: the store facade (commit log, consume queues, index, checkpoint, recovery).

Synchronous and single-writer: the broker calls ``put_*``/``get_message`` from its event loop
(an append is a memcpy into a mapping, so no await can split it); background actors run
``reput``, ``flush_*``, ``write_checkpoint`` and ``clean_expired`` — the blocking ones in worker
threads.  Nothing per message is kept in memory: per queue there is one counter.
"""

from __future__ import annotations

import collections
import errno
import functools
import logging
import mmap
import os
import time
from collections.abc import Callable, Sequence

from mypy_extensions import mypyc_attr

from protocol.errors import LocalProtocolError, RemoteProtocolError
from protocol.message import (
    MAX_PROPERTIES_LENGTH,
    MAX_TOPIC_LENGTH,
    NAME_VALUE_SEPARATOR,
    PROPERTY_SEPARATOR,
    MessageExt,
    MessageSysFlag,
    decode_record,
    properties_to_string,
    transaction_type,
)
from protocol.msgid import parse_host
from storage.checkpoint import StoreCheckpoint
from storage.cleanup import disk_used_ratio, file_expired, is_delete_hour, judge_disk
from storage.commitlog import CommitLog, Host, Pending
from storage.config import BrokerRole, MessageStoreConfig
from storage.consume_queue import INT_MAX, UNIT_SIZE, ConsumeQueue
from storage.dispatch import (
    CORRUPT,
    SCHEDULE_TOPIC,
    DispatchRequest,
    Hint,
    record_key,
    request_from_hint,
)
from storage.errors import StoreError
from storage.index_service import IndexService
from storage.lock import StoreLock, abort_exists, create_abort, remove_abort
from storage.mapped_file import MappedFile
from storage.pull import TransferLimits, select_batch
from storage.recovery import recover_commit_log
from storage.results import (
    AppendResult,
    Arrived,
    BatchInner,
    GetResult,
    GetStatus,
    MessageInner,
    PutResult,
    PutStatus,
    QueryResult,
    RunningFlags,
)

log = logging.getLogger(__name__)

CATCH_UP_STEP = 8 << 20  # bytes dispatched per reput() call while loading / shutting down
# commit-log bytes kept populated ahead of the writer, refilled when a quarter is used up:
# the flusher checks at least every flushIntervalCommitLog (500 ms), so a writer of up to
# 384 MB/s (~350k appends/s of 1 KiB, more than one core packs) never meets a fresh page
PREFAULT_WINDOW = 256 << 20
# records reput may fall behind by and still take from hints rather than parse (~150 B each)
HINTS_MAX = 16384


def _carries_key(raw: bytes, topic: str, key: str) -> bool:
    try:
        msg = decode_record(raw)
    except RemoteProtocolError:
        return False
    return msg.topic == topic and (msg.uniq_key == key or key in msg.keys)


def _deletable(immediately: bool, now_ms: int, reserved: int, mf: MappedFile) -> bool:
    return immediately or file_expired(mf.last_modified_ms(), now_ms, reserved)


_TX_MASK = MessageSysFlag.TRANSACTION_MASK
_TX_NONE = MessageSysFlag.TRANSACTION_NOT_TYPE
_TX_COMMIT = MessageSysFlag.TRANSACTION_COMMIT


def _enters_queue(sys_flag: int) -> bool:
    """Whether a record gets a consume-queue unit: not a half or rolled-back message."""
    tx = sys_flag & _TX_MASK
    return tx in (_TX_NONE, _TX_COMMIT)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _read_physical_memory() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 8 << 30


# A module variable rather than a direct call: tests replace it (monkeypatch), and code compiled
# by mypyc (scripts/build-mypyc.sh) calls module functions directly, past any replacement.
_physical_memory: Callable[[], int] = _read_physical_memory


# Not a native class under mypyc (scripts/build-mypyc.sh): tests replace its methods on an
# instance (slow or failing flushes), which a native class refuses; its methods still compile.
@mypyc_attr(native_class=False)
class MessageStore:
    def __init__(
        self,
        config: MessageStoreConfig,
        *,
        store_host: str,
        now_ms: Callable[[], int] = _wall_ms,
        disk_ratio: Callable[[str], float] = disk_used_ratio,
    ) -> None:
        config.validate()
        self.config = config
        self.store_host = store_host
        self.now_ms = now_ms
        # the role is the broker's run-time value (set_role); the config's is where it starts
        self._role = config.brokerRole
        self._slave = config.brokerRole is BrokerRole.SLAVE
        self._max_body = config.maxMessageSize
        self._disk_ratio = disk_ratio
        ip, port = parse_host(store_host)
        self.commit_log = CommitLog(
            config.commit_log_dir,
            config.mappedFileSizeCommitLog,
            Host(ip, port),
            warm=config.warmMappedFileEnable,
        )
        self.index = IndexService(config.index_dir, config.maxHashSlotNum, config.maxIndexNum)
        self.checkpoint = StoreCheckpoint(config.checkpoint_path)
        self.flags = RunningFlags()
        self.delay_levels_ms = config.delay_levels_ms
        self._lock = StoreLock(config.lock_path)
        self._queues: dict[tuple[str, int], ConsumeQueue] = {}
        self._next_offsets: dict[tuple[str, int], int] = {}  # topicQueueTable
        self._topic_bytes: dict[str, bytes] = {}
        self._hosts: dict[str, Host] = {}
        self.reput_from = 0
        self.last_exit_ok = True
        self._loaded = False
        self._limits = TransferLimits.from_config(
            config, _physical_memory() * config.accessMessageInMemoryMaxRatio // 100
        )
        self._logics_ts = 0
        self._replay_until = 0
        self._replay_next = 0
        self._index_covered = 0
        # what puts keep for reput, in commit-log order: dispatching a record we just wrote
        # need not parse it back (a hint that does not match reput's offset is not used)
        self._hints: collections.deque[Hint] = collections.deque(maxlen=HINTS_MAX)
        # (topic, queue id, queue offset) of the record reput stopped at for want of a file
        self._file_wanted: tuple[str, int, int] | None = None
        self._store_bit = self.commit_log.store_host.store_bit
        # Called with the commit log's new end after every append, whichever path wrote it
        # (Java's putMessage -> handleDiskFlush/handleHA): the flusher, reput and replication
        # learn of new bytes here, so no caller can forget to ring them.
        self._append_hooks: tuple[Callable[[int], None], ...] = ()

    @property
    def role(self) -> BrokerRole:
        return self._role

    def set_role(self, role: BrokerRole) -> None:
        """The broker switched roles: a SLAVE store refuses puts and keeps requested offsets
        (§6.7); the hot path reads one bool, as before."""
        promoted = self._slave and role is not BrokerRole.SLAVE
        self._role = role
        self._slave = role is BrokerRole.SLAVE
        if promoted:
            # A slave's queues were built by reput from replicated records, but only puts
            # advance the next queue offsets: catch reput up and take them from the queues,
            # or the first puts would reuse queue offsets replicated records already hold
            # (Java's changeToMaster waits for dispatch and recovers the topic queue table).
            self._catch_up()
            if self.reput_from < self.commit_log.max_offset:
                # a replicated record whose rest never came (HA frames are not record-aligned):
                # nobody acknowledged it, and a master appends after whole records only
                self._slave = True
                self.truncate_replicated(self.reput_from)
                self._slave = False
            self._rebuild_topic_queue_table()

    def add_append_hook(self, hook: Callable[[int], None]) -> None:
        """Call ``hook(end_offset)`` after every append, put or replicated."""
        self._append_hooks = (*self._append_hooks, hook)

    def remove_append_hook(self, hook: Callable[[int], None]) -> None:
        self._append_hooks = tuple(h for h in self._append_hooks if h is not hook)

    def _appended(self, end: int) -> None:
        for hook in self._append_hooks:
            hook(end)

    # ================================================================ lifecycle

    def load(self) -> None:
        """Lock, load every file, recover (normal or abnormal), catch up reput, mark running."""
        cfg = self.config
        os.makedirs(cfg.storePathRootDir, exist_ok=True)
        self._lock.acquire()
        try:
            self.last_exit_ok = not abort_exists(cfg.abort_path)
            self.commit_log.queue.load()
            self._load_consume_queues()
            self.checkpoint = StoreCheckpoint.load(cfg.checkpoint_path)
            if cfg.messageIndexEnable:
                self.index.load(last_exit_ok=self.last_exit_ok)
            self._recover()
            self._catch_up()
            self._rebuild_topic_queue_table()
            create_abort(cfg.abort_path)
        except BaseException:
            self._close_files()
            self._lock.release()
            raise
        self._loaded = True

    def _load_consume_queues(self) -> None:
        root = self.config.consume_queue_dir
        if not os.path.isdir(root):
            return
        for topic in sorted(os.listdir(root)):
            topic_dir = os.path.join(root, topic)
            if not os.path.isdir(topic_dir):
                continue
            for name in sorted(os.listdir(topic_dir)):
                if not name.isdigit():
                    continue
                cq = ConsumeQueue(root, topic, int(name), self.config.mappedFileSizeConsumeQueue)
                cq.load(names_durable=self.last_exit_ok)
                self._queues[(topic, int(name))] = cq

    def _recover(self) -> None:
        abnormal = not self.last_exit_ok
        for cq in self._queues.values():
            cq.recover()
        result = recover_commit_log(
            self.commit_log,
            abnormal=abnormal,
            checkpoint=self.checkpoint,
            check_crc=self.config.checkCRCOnRecover,
            index_safe=self.config.messageIndexEnable and self.config.messageIndexSafe,
            missing=self._not_dispatched if abnormal else None,
        )
        end = result.end_offset
        if not self.commit_log.queue.files:
            for cq in self._queues.values():
                cq.destroy()
            self._queues.clear()
        else:
            for cq in self._queues.values():
                cq.truncate_by_physical(end)
                if abnormal:
                    # units for records from the scan's start on may be pages the killed
                    # process never synced: flush them again before a checkpoint covers them
                    cq.resync_from(result.scan_from)
        cq_max = max((cq.max_physic_offset for cq in self._queues.values()), default=0)
        start = max(cq_max, self.commit_log.min_offset)
        if abnormal and result.first_missing is not None:
            start = min(start, result.first_missing)
        if self.config.messageIndexEnable:
            self.index.after_recovery(end)
            if self.index.rebuild_from is not None:  # a record boundary: a file's begin offset
                start = min(start, max(self.index.rebuild_from, self.commit_log.min_offset))
        self.reput_from = min(start, end)
        # below this, records are re-dispatched only where something is missing
        self._replay_until = min(cq_max, end)
        self._index_covered = self.index.indexed_upto
        self._rebuild_topic_queue_table()

    def _not_dispatched(self, mm: mmap.mmap, pos: int, offset: int) -> bool:
        """Recovery scan: whether a valid record lacks its consume-queue unit or index entry."""
        if self.config.messageIndexEnable and offset >= self.index.indexed_upto:
            return True
        topic, queue_id, queue_offset, sys_flag = record_key(mm, pos)
        if _enters_queue(sys_flag):
            cq = self._queues.get((topic, queue_id))
            return cq is None or queue_offset >= cq.max_offset
        return False

    def _catch_up(self) -> None:
        """Dispatch everything there is, in bounded steps (the arrivals lists are dropped);
        stops at a replicated record whose rest has not arrived."""
        while self.dispatch_behind_bytes() > 0:
            before = self.reput_from
            self.reput(CATCH_UP_STEP)
            if self.reput_from == before:
                return

    def _rebuild_topic_queue_table(self) -> None:
        phy_min = self.commit_log.min_offset
        self._next_offsets = {}
        for key, cq in self._queues.items():
            self._next_offsets[key] = cq.max_offset
            cq.correct_min_offset(phy_min)

    def shutdown(self) -> None:
        """Dispatch and flush everything, checkpoint, remove the abort file, unlock (idempotent)."""
        if not self._loaded:
            return
        self._loaded = False
        try:
            self._catch_up()
            self.flush_commit_log()
            self.flush_consume_queues()
            self.write_checkpoint()
            if self.flags.writeable and self.dispatch_behind_bytes() == 0:
                remove_abort(self.config.abort_path)
        finally:
            self._close_files()
            self._lock.release()

    def abandon(self) -> None:
        """Stop as a crash would: unmap and unlock, but no flush, no checkpoint, abort file kept.

        Data already written through the mappings stays in the page cache, exactly as after a
        SIGKILL; used by recovery tests and by a broker that must stop without touching disk.
        """
        if self._loaded:
            self._loaded = False
            self._close_files(as_crash=True)
            self._lock.release()

    def _close_files(self, *, as_crash: bool = False) -> None:
        self.commit_log.close(as_crash=as_crash)
        for cq in self._queues.values():
            cq.close(as_crash=as_crash)
        self.index.close()

    def destroy(self) -> None:
        """Delete every store file (tests and admin tools)."""
        self.commit_log.destroy()
        for cq in self._queues.values():
            cq.destroy()
        self._queues.clear()
        self._next_offsets.clear()
        self._hints.clear()
        self._file_wanted = None
        self.index.destroy()

    # ================================================================ put

    def _host(self, host: str) -> Host:
        h = self._hosts.get(host)
        if h is None:
            if len(self._hosts) > 4096:
                self._hosts.clear()
            ip, port = parse_host(host)
            h = self._hosts[host] = Host(ip, port)
        return h

    def _topic(self, topic: str) -> bytes | None:
        """The topic's bytes, or None if no record may carry it."""
        b = self._topic_bytes.get(topic)
        if b is None:
            b = topic.encode()
            # a trailing NUL would be indistinguishable from an unwritten tail at recovery
            if len(b) > MAX_TOPIC_LENGTH or not b or b[-1] == 0:
                return None
            if len(self._topic_bytes) > 65536:
                self._topic_bytes.clear()
            self._topic_bytes[topic] = b
        return b

    def _refusal(self) -> PutStatus | None:
        if self._slave or not self._loaded:
            return PutStatus.SERVICE_NOT_AVAILABLE
        if self.flags.disk_full:
            return PutStatus.DISK_FULL
        if self.flags.logics_error:  # reput cannot write a consume queue (see reput)
            return PutStatus.DISK_FULL
        if not self.flags.writeable:
            return PutStatus.SERVICE_NOT_AVAILABLE
        return None

    def _encode(self, msg: MessageInner) -> tuple[bytes, bytes, Host] | PutStatus:
        """(topic, properties, born host) ready for the record, or why the message is refused."""
        topic = self._topic(msg.topic)
        if topic is None or len(msg.body) > self.config.maxMessageSize:
            return PutStatus.MESSAGE_ILLEGAL
        props = properties_to_string(msg.properties).encode() if msg.properties else b""
        if len(props) > MAX_PROPERTIES_LENGTH:
            return PutStatus.PROPERTIES_SIZE_EXCEEDED
        if props and props[-1] == 0:
            return PutStatus.MESSAGE_ILLEGAL
        try:
            born = self._host(msg.born_host)
        except LocalProtocolError:
            return PutStatus.MESSAGE_ILLEGAL
        return topic, props, born

    def put_message(self, msg: MessageInner) -> PutResult:
        # The hot path: every check and lookup inline; anything unusual takes _encode/_refusal.
        flags = self.flags
        if (
            self._slave
            or not self._loaded
            or flags.disk_full
            or flags.logics_error
            or not flags.writeable
        ):
            return PutResult(self._refusal() or PutStatus.UNKNOWN_ERROR)
        topic = self._topic_bytes.get(msg.topic)
        born = self._hosts.get(msg.born_host)
        properties = msg.properties
        props = (
            PROPERTY_SEPARATOR.join(map(NAME_VALUE_SEPARATOR.join, properties.items())).encode()
            if properties
            else b""
        )
        body = msg.body
        if (
            topic is None
            or born is None
            or len(body) > self._max_body
            or len(props) > MAX_PROPERTIES_LENGTH
            or (props and props[-1] == 0)
        ):
            encoded = self._encode(msg)
            if isinstance(encoded, PutStatus):
                return PutResult(encoded)
            topic, props, born = encoded
        key = (msg.topic, msg.queue_id)
        sys_flag = msg.sys_flag
        tx = sys_flag & 0xC  # MessageSysFlag.TRANSACTION_MASK
        # half and rollback messages never reach a consume queue, so they take no queue offset
        counts = tx == 0 or tx == 0x8  # NOT_TYPE / COMMIT
        queue_offset = self._next_offsets.get(key, 0) if counts else 0
        now = self.now_ms()
        try:
            offset, size = self.commit_log.append_one(
                topic, msg.queue_id, msg.flag, body, props, sys_flag, msg.born_timestamp, born,
                msg.reconsume_times, msg.prepared_transaction_offset, queue_offset, now,
            )  # fmt: skip
        except ValueError:
            return PutResult(PutStatus.MESSAGE_ILLEGAL)
        except OSError as exc:
            return PutResult(self._create_failed(exc))
        if counts:
            self._next_offsets[key] = queue_offset + 1
        # The dictionary's TAGS/KEYS/UNIQ_KEY are what parsing the record back gives: properties
        # come from a parsed string (a value cannot hold \x02, a name neither separator).
        if msg.topic != SCHEDULE_TOPIC:
            self._hints.append(
                (
                    offset, size, msg.topic, msg.queue_id, queue_offset, now,
                    (sys_flag & ~0x30) | born.born_bit | self._store_bit,
                    msg.prepared_transaction_offset, properties.get("TAGS"),
                    properties.get("KEYS"), properties.get("UNIQ_KEY"), None,
                )
            )  # fmt: skip
        for hook in self._append_hooks:
            hook(offset + size)
        return PutResult(
            PutStatus.PUT_OK, AppendResult(offset, size, queue_offset, 1, now, self.store_host)
        )

    def _create_failed(self, exc: OSError) -> PutStatus:
        log.error("cannot create a commit-log file: %s", exc)
        if exc.errno == errno.ENOSPC:
            self.flags.disk_full = True
            return PutStatus.DISK_FULL
        return PutStatus.CREATE_MAPPED_FILE_FAILED

    def put_messages(self, msgs: Sequence[MessageInner]) -> PutResult:
        """One batch: same topic and queue, consecutive queue offsets, one contiguous write."""
        refused = self._refusal()
        if refused is not None:
            return PutResult(refused)
        if not msgs:
            return PutResult(PutStatus.MESSAGE_ILLEGAL)
        key = (msgs[0].topic, msgs[0].queue_id)
        if any((m.topic, m.queue_id) != key or transaction_type(m.sys_flag) for m in msgs):
            return PutResult(PutStatus.MESSAGE_ILLEGAL)
        if sum(len(m.body) for m in msgs) > self.config.maxMessageSize:
            return PutResult(PutStatus.MESSAGE_ILLEGAL)
        first = self._next_offsets.get(key, 0)
        pendings: list[Pending] = []
        for i, m in enumerate(msgs):
            encoded = self._encode(m)
            if isinstance(encoded, PutStatus):
                return PutResult(encoded)
            topic, props, born = encoded
            pendings.append(
                Pending(
                    topic,
                    m.queue_id,
                    m.flag,
                    m.body,
                    props,
                    m.sys_flag,
                    m.born_timestamp,
                    born,
                    m.reconsume_times,
                    m.prepared_transaction_offset,
                    first + i,
                )
            )
        return self._append_batch(key, pendings, first)

    def put_batch(self, batch: BatchInner) -> PutResult:
        """A batch whose entries carry their stored properties already encoded (the broker's
        SEND_BATCH_MESSAGE path): no per-message dictionary, parse or re-encode."""
        refused = self._refusal()
        if refused is not None:
            return PutResult(refused)
        entries = batch.entries
        topic = self._topic(batch.topic)
        if topic is None or not entries or transaction_type(batch.sys_flag):
            return PutResult(PutStatus.MESSAGE_ILLEGAL)
        try:
            born = self._host(batch.born_host)
        except LocalProtocolError:
            return PutResult(PutStatus.MESSAGE_ILLEGAL)
        total_body = 0
        for _, body, props in entries:
            total_body += len(body)
            if len(props) > MAX_PROPERTIES_LENGTH:
                return PutResult(PutStatus.PROPERTIES_SIZE_EXCEEDED)
            if props and props[-1] == 0:
                return PutResult(PutStatus.MESSAGE_ILLEGAL)
        if total_body > self.config.maxMessageSize:
            return PutResult(PutStatus.MESSAGE_ILLEGAL)
        queue_id = batch.queue_id
        key = (batch.topic, queue_id)
        first = self._next_offsets.get(key, 0)
        sys_flag = batch.sys_flag
        born_ts = batch.born_timestamp
        times = batch.reconsume_times
        pendings = [
            Pending(
                topic, queue_id, flag, body, props, sys_flag, born_ts, born, times, 0, first + i
            )
            for i, (flag, body, props) in enumerate(entries)
        ]
        return self._append_batch(key, pendings, first)

    def _append_batch(self, key: tuple[str, int], pendings: list[Pending], first: int) -> PutResult:
        now = self.now_ms()
        try:
            wrote_offset, wrote_bytes, offsets = self.commit_log.append(pendings, now)
        except ValueError:
            return PutResult(PutStatus.MESSAGE_ILLEGAL)
        except OSError as exc:
            return PutResult(self._create_failed(exc))
        self._next_offsets[key] = first + len(pendings)
        if key[0] != SCHEDULE_TOPIC:
            topic, queue_id = key
            hints = self._hints
            ends = (*offsets[1:], wrote_offset + wrote_bytes)
            store_bit = self._store_bit
            for p, at, end in zip(pendings, offsets, ends, strict=True):
                hints.append(
                    (
                        at, end - at, topic, queue_id, p.queue_offset, now,
                        (p.sys_flag & ~0x30) | p.born_host.born_bit | store_bit,
                        p.prepared_transaction_offset, None, None, None, p.properties,
                    )
                )  # fmt: skip
        self._appended(wrote_offset + wrote_bytes)
        return PutResult(
            PutStatus.PUT_OK,
            AppendResult(
                wrote_offset, wrote_bytes, first, len(pendings), now, self.store_host, offsets
            ),
        )

    # ================================================================ reput / dispatch

    def reput(self, max_bytes: int | None = None, *, create_files: bool = True) -> list[Arrived]:
        """Dispatch commit-log records after ``reput_from`` into consume queues and the index.

        Returns the arrivals, the newest per (topic, queue, tags code): long polling only needs
        a queue's new max offset, and one per tag lets held pulls with a tag filter match.

        ``create_files=False`` (the reput actor) stops before a record whose queue has no file
        yet, leaving its creation to ``queue_file_preparers`` in a worker thread: creating one
        here, on the event loop, costs every connection a few hundred µs per new queue.
        """
        # (topic, queue id, tags code) -> (max offset, store timestamp), in first-seen order
        latest: dict[tuple[str, int, int], tuple[int, int]] = {}
        off = self.reput_from
        end = self.commit_log.max_offset
        limit = end if max_bytes is None else min(end, off + max_bytes)
        cl = self.commit_log
        index_on = self.config.messageIndexEnable
        hints = self._hints
        while off < limit:
            if off < self._replay_until and self._already_dispatched(off, index_on):
                off = self._replay_next
                continue
            got: DispatchRequest | int | None = None
            while hints:
                at = hints[0][0]
                if at > off:
                    break
                hint = hints.popleft()
                if at == off:
                    got = request_from_hint(hint)
                    if isinstance(got, DispatchRequest):
                        nxt = off + hint[1]
                    else:
                        got = None  # let the parse below say what is there
                    break
            if got is None:
                got, nxt = cl.next_dispatch(off, delay_levels_ms=self.delay_levels_ms)
            if isinstance(got, DispatchRequest):
                try:
                    queued = self._dispatch(got, index_on, create_files)
                except OSError as exc:
                    # a full disk (no blocks for a consume-queue file): stop at this record, so
                    # the next call retries it, and refuse new messages until one succeeds
                    if not self.flags.logics_error:
                        log.error(
                            "cannot write consume queue %s-%d (%s): dispatch waits at %d and "
                            "the store refuses messages until it can",
                            got.topic,
                            got.queue_id,
                            exc,
                            off,
                        )
                    self.flags.logics_error = True
                    break
                if queued is None:
                    break  # its queue has no file yet: noted for queue_file_preparers
                if self.flags.logics_error:
                    log.info("consume queues writable again at %d", off)
                    self.flags.logics_error = False
                if queued:
                    latest[(got.topic, got.queue_id, got.tags_code)] = (
                        got.queue_offset + 1,
                        got.store_timestamp,
                    )
            elif nxt == off and self._slave and self._partial_tail(off, end):
                # a replicated record whose rest has not arrived yet (HA frames are cut at any
                # byte, not at record ends): dispatch it once it is whole
                break
            elif nxt == off:
                what = "corrupt" if got == CORRUPT else "missing"
                log.error(
                    "reput: %s record at %d (commit log ends at %d); skipping the rest",
                    what,
                    off,
                    end,
                )
                self.flags.corrupt_log = True
                nxt = end
            off = nxt
        self.reput_from = off
        return [Arrived(t, q, m, ts, code) for (t, q, code), (m, ts) in latest.items()]

    def _partial_tail(self, off: int, end: int) -> bool:
        """Whether the bytes from ``off`` to the log's ``end`` are the start of a record whose
        rest has not been replicated yet (its size field says it ends beyond ``end``)."""
        head = self.commit_log.read_range(off, 8)
        if len(head) < 8:
            return True
        total = int.from_bytes(head[:4], "big", signed=True)
        return total > 0 and off + total > end

    def _already_dispatched(self, off: int, index_on: bool) -> bool:
        """Replay after a crash: whether the record at ``off`` is in its queue and the index.

        Sets ``_replay_next``; a light parse, so replaying a whole commit-log file whose
        consume-queue units survived costs a fraction of dispatching it.
        """
        if index_on and off >= self._index_covered:
            return False
        key, nxt = self.commit_log.next_key(off)
        if key is None:
            return False
        topic, queue_id, queue_offset, sys_flag = key
        if _enters_queue(sys_flag):
            cq = self._queues.get((topic, queue_id))
            if cq is None or queue_offset >= cq.max_offset:
                return False
        self._replay_next = nxt
        return True

    def _dispatch(self, req: DispatchRequest, index_on: bool, create_files: bool) -> bool | None:
        """Write ``req``'s consume-queue unit and index entries; whether it entered a queue.
        None, having written nothing, when its queue has no file and ``create_files`` is
        False: the queue is noted for ``queue_file_preparers``."""
        queued = _enters_queue(req.sys_flag)
        if queued:
            cq = self._queue(req.topic, req.queue_id)
            if not create_files and cq.queue.first_file_needed():
                self._file_wanted = (req.topic, req.queue_id, req.queue_offset)
                return None
            cq.put(req.queue_offset, req.commit_log_offset, req.size, req.tags_code)
            self._logics_ts = req.store_timestamp
            # a slave learns queue offsets only from the replicated records
            nxt = self._next_offsets.get((req.topic, req.queue_id), 0)
            if req.queue_offset + 1 > nxt:
                self._next_offsets[(req.topic, req.queue_id)] = req.queue_offset + 1
        if index_on:
            try:
                full = self.index.build(req, self.now_ms())
            except OSError as exc:
                log.error("cannot write index: %s", exc)
                self.flags.index_error = True
            else:
                if full is not None:
                    full.flush()
                    self.checkpoint.index_msg_timestamp = full.end_timestamp
        return queued

    def queue_file_preparers(self, limit: int = 512) -> list[Callable[[], None]]:
        """What creates the first file of the queue ``reput(create_files=False)`` stopped for and
        of up to ``limit`` - 1 other new queues among the records put but not dispatched yet,
        each to be run in a worker thread; empty when reput is not waiting for a file.

        Looking ahead lets one thread call create a burst of new topics' files (a sender
        round robin over a thousand new topics) instead of one per stop of reput.  The send
        path waits for none of this: SEND_OK says the message is in the commit log, as in
        Java, where reput creates consume-queue files in its own thread.
        """
        wanted = self._file_wanted
        if wanted is None:
            return []
        self._file_wanted = None
        starts = {(wanted[0], wanted[1]): wanted[2]}
        for hint in self._hints:
            if len(starts) >= limit:
                break
            key = (hint[2], hint[3])
            if key not in starts and _enters_queue(hint[6]):
                starts[key] = hint[4]
        preparers: list[Callable[[], None]] = []
        for (topic, queue_id), queue_offset in starts.items():
            queue = self._queue(topic, queue_id).queue
            if queue.first_file_needed():
                preparers.append(
                    functools.partial(queue.prepare_first_file, queue_offset * UNIT_SIZE)
                )
        return preparers

    def queue_file_failed(self, exc: OSError) -> None:
        """A preparer failed (a full disk): refuse messages until dispatch writes again, as a
        failed write of a unit does."""
        if not self.flags.logics_error:
            log.error(
                "cannot create a consume-queue file (%s): dispatch waits and the store refuses "
                "messages until it can",
                exc,
            )
        self.flags.logics_error = True

    def _queue(self, topic: str, queue_id: int) -> ConsumeQueue:
        key = (topic, queue_id)
        cq = self._queues.get(key)
        if cq is None:
            cq = ConsumeQueue(
                self.config.consume_queue_dir,
                topic,
                queue_id,
                self.config.mappedFileSizeConsumeQueue,
            )
            self._queues[key] = cq
        return cq

    def dispatch_behind_bytes(self) -> int:
        return max(0, self.commit_log.max_offset - self.reput_from)

    # ================================================================ flush / checkpoint

    def flush_commit_log(self, least_pages: int = 0) -> int:
        """fdatasync the commit log up to its write position (blocking: run in a thread)."""
        # read the time before the offset: every record stored by ``ts`` ends below ``target``
        ts = self.commit_log.last_store_timestamp
        target = self.commit_log.max_offset
        flushed = self.commit_log.queue.flush(least_pages)
        if ts and flushed >= target:
            self.checkpoint.physic_msg_timestamp = ts
        return flushed

    def next_file_needed(self) -> bool:
        """Whether the commit log's next file should be created ahead of need now."""
        return self.commit_log.queue.next_file_needed()

    def prepare_next_file(self) -> None:
        """Create the next commit-log file ahead of need (blocking: run in a thread)."""
        try:
            self.commit_log.queue.prepare_next_file()
        except OSError as exc:
            # the writer retries when it needs the file and reports DISK_FULL if it must
            log.warning("cannot create the next commit-log file ahead of need: %s", exc)

    def prefault_needed(self) -> bool:
        """Whether the commit log's pages ahead of the writer should be populated now."""
        return self.commit_log.queue.prefault_needed(PREFAULT_WINDOW)

    def prefault_commit_log(self) -> None:
        """Populate the commit-log pages ahead of the writer (blocking: run in a thread)."""
        self.commit_log.queue.prefault(PREFAULT_WINDOW)

    def flush_consume_queues(self, least_pages: int = 0) -> None:
        """fdatasync the queues (those with ``least_pages`` dirty pages; 0: all) and the index;
        the checkpoint's consume-queue time moves only when every queue was flushed whole."""
        ts = self._logics_ts
        whole = True
        for cq in list(self._queues.values()):
            # read after ``ts``: every unit dispatched by then lies below it
            target = cq.queue.max_offset
            if cq.flush(least_pages) < target:
                # a queue left dirty (too few pages): a time covering its units would let
                # abnormal recovery start past them, and a power loss take them for good
                whole = False
        if self.config.messageIndexEnable:
            self.index.flush()
        if ts and whole:
            self.checkpoint.logics_msg_timestamp = ts

    def write_checkpoint(self) -> None:
        self.checkpoint.flush()

    # ================================================================ cleanup

    def clean_expired(self, now_ms: int, force: bool = False) -> int:
        """One cleanup round (§6.4); returns the number of commit-log files deleted."""
        cfg = self.config
        try:
            ratio = self._disk_ratio(
                cfg.commit_log_dir if os.path.isdir(cfg.commit_log_dir) else cfg.storePathRootDir
            )
        except OSError:
            ratio = 0.0
        verdict = judge_disk(ratio, cfg)
        if verdict.disk_full != self.flags.disk_full:
            log.warning(
                "disk %.0f%% used: writes %s",
                ratio * 100,
                "refused" if verdict.disk_full else "accepted again",
            )
            self.flags.disk_full = verdict.disk_full
        deleted: list[MappedFile] = []
        if (
            force
            or verdict.space_to_delete
            or verdict.clean_immediately
            or is_delete_hour(now_ms, cfg.delete_hours)
        ):
            # a module function, not a closure: mypyc cannot compile a closure in a method of a
            # non-native class
            deletable = functools.partial(
                _deletable, verdict.clean_immediately, now_ms, cfg.fileReservedTime
            )
            deleted = self.commit_log.queue.delete_first_files(deletable, max_files=10)
            for mf in deleted:
                log.info("deleted commit-log file %s", mf.path)
        self._clean_logics()
        return len(deleted)

    def _clean_logics(self) -> None:
        phy_min = self.commit_log.min_offset
        for cq in list(self._queues.values()):
            cq.delete_expired(phy_min)
        if self.config.messageIndexEnable:
            self.index.delete_expired(phy_min)

    def delete_topics(self, topics: set[str]) -> None:
        for key in [k for k in self._queues if k[0] in topics]:
            self._queues.pop(key).destroy()
            self._next_offsets.pop(key, None)
        for topic in topics:
            try:
                os.rmdir(os.path.join(self.config.consume_queue_dir, topic))
            except OSError:
                pass

    # ================================================================ read

    @property
    def running_flags(self) -> RunningFlags:
        return self.flags

    @property
    def max_phy_offset(self) -> int:
        return self.commit_log.max_offset

    @property
    def min_phy_offset(self) -> int:
        return self.commit_log.min_offset

    @property
    def flushed_offset(self) -> int:
        return self.commit_log.flushed_offset

    @property
    def dispatched_offset(self) -> int:
        return self.reput_from

    def topic_queue_ids(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for topic, qid in sorted(self._queues):
            out.setdefault(topic, []).append(qid)
        return out

    def max_offset_in_queue(self, topic: str, queue_id: int) -> int:
        cq = self._queues.get((topic, queue_id))
        return cq.max_offset if cq is not None else 0

    def min_offset_in_queue(self, topic: str, queue_id: int) -> int:
        cq = self._queues.get((topic, queue_id))
        return cq.min_offset if cq is not None else 0

    def commit_log_offset_in_queue(self, topic: str, queue_id: int, cq_offset: int) -> int:
        cq = self._queues.get((topic, queue_id))
        unit = cq.unit(cq_offset) if cq is not None else None
        return unit[0] if unit is not None else 0

    def message_store_timestamp(self, topic: str, queue_id: int, cq_offset: int) -> int:
        cq = self._queues.get((topic, queue_id))
        unit = cq.unit(cq_offset) if cq is not None else None
        if unit is None or unit[1] == INT_MAX:
            return -1
        ts = self.commit_log.store_timestamp_at(unit[0], unit[1])
        return ts if ts else -1

    def earliest_message_time(self, topic: str, queue_id: int) -> int:
        cq = self._queues.get((topic, queue_id))
        if cq is None or cq.max_offset <= cq.min_offset:
            return -1
        return self.message_store_timestamp(topic, queue_id, cq.min_offset)

    def offset_in_queue_by_time(self, topic: str, queue_id: int, timestamp_ms: int) -> int:
        cq = self._queues.get((topic, queue_id))
        if cq is None:
            return 0
        return cq.offset_by_time(
            timestamp_ms, self.commit_log.store_timestamp_at, self.commit_log.min_offset
        )

    def select_one_message_by_offset(
        self, phys_offset: int, size: int | None = None
    ) -> bytes | None:
        if size is None:
            return self.commit_log.read_record(phys_offset)
        return self.commit_log.read(phys_offset, size)

    def look_message_by_offset(
        self, phys_offset: int, size: int | None = None
    ) -> MessageExt | None:
        raw = self.select_one_message_by_offset(phys_offset, size)
        if raw is None:
            return None
        try:
            return decode_record(raw)
        except RemoteProtocolError:
            return None

    def query_message(
        self, topic: str, key: str, max_num: int, begin_ts: int, end_ts: int
    ) -> QueryResult:
        cap = min(max_num, self.config.maxMsgsNumBatch)
        found = self.index.query(topic, key, cap, begin_ts, end_ts)
        records: list[bytes] = []
        for off in found.phy_offsets:
            raw = self.commit_log.read_record(off)
            # the index hashes keys, and after a crash may point at offsets reused by newer
            # records: keep only records that really carry the key
            if raw is not None and _carries_key(raw, topic, key):
                records.append(raw)
        return QueryResult(
            records, found.index_last_update_timestamp, found.index_last_update_phyoffset
        )

    def get_message(
        self,
        group: str,
        topic: str,
        queue_id: int,
        offset: int,
        max_msg_nums: int,
        *,
        tag_codes: set[int] | None = None,
        max_total_bytes: int | None = None,
    ) -> GetResult:
        """Read up to ``max_msg_nums`` messages from a queue (§6.7 statuses and offsets)."""
        cq = self._queues.get((topic, queue_id))
        if cq is None:
            return GetResult(GetStatus.NO_MESSAGE_IN_QUEUE, self._correct(offset, 0), 0, 0)
        lo, hi = cq.min_offset, cq.max_offset
        if hi == 0:
            return GetResult(GetStatus.NO_MESSAGE_IN_QUEUE, self._correct(offset, 0), lo, hi)
        if offset < lo:
            return GetResult(GetStatus.OFFSET_TOO_SMALL, self._correct(offset, lo), lo, hi)
        if offset == hi:
            return GetResult(GetStatus.OFFSET_OVERFLOW_ONE, offset, lo, hi)
        if offset > hi:
            return GetResult(
                GetStatus.OFFSET_OVERFLOW_BADLY,
                self._correct(offset, hi),  # 4.9.8; older releases used min when it was 0
                lo,
                hi,
            )
        scan_bytes = max(16000, max_msg_nums * 20)
        units = cq.units_from(offset, scan_bytes // UNIT_SIZE)
        if units is None:
            next_file = (offset * UNIT_SIZE // cq.file_size + 1) * cq.file_size // UNIT_SIZE
            return GetResult(GetStatus.OFFSET_FOUND_NULL, self._correct(offset, next_file), lo, hi)
        batch = select_batch(
            units, self.commit_log, self._limits, max_msg_nums, tag_codes, max_total_bytes
        )
        return GetResult(
            batch.status,
            offset + batch.scanned,
            lo,
            hi,
            batch.buffers,
            batch.suggest_pulling_from_slave,
        )

    def _correct(self, old: int, new: int) -> int:
        """Slaves keep the requested offset unless offsetCheckInSlave (§6.7)."""
        if not self._slave or self.config.offsetCheckInSlave:
            return new
        return old

    # ================================================================ HA

    def append_replicated(self, offset: int, data: bytes | memoryview) -> None:
        """Slave: append master commit-log bytes at ``offset`` (reput builds the rest)."""
        if self.commit_log.queue.last() is None:
            self.reput_from = offset
        self.commit_log.append_raw(offset, data)
        self._appended(offset + len(data))

    def read_replication(self, offset: int, max_bytes: int) -> bytes:
        """Commit-log bytes from ``offset``, at most ``max_bytes`` and never past the end of
        the file holding it (Java's getCommitLogData): what one HA frame carries."""
        return self.commit_log.read_range(offset, max_bytes)

    def truncate_replicated(self, offset: int) -> int:
        """A demoted master following a new master: drop the commit log beyond ``offset``
        (a tail the new master never had), with the consume-queue units and queue offsets
        built from it.  Returns the bytes dropped.  Refused on a master: a master's log is
        only ever appended to."""
        if not self._slave:
            raise StoreError("only a slave truncates its commit log")
        end = self.commit_log.max_offset
        if offset >= end:
            return 0
        if offset < self.commit_log.min_offset:
            raise StoreError(
                f"truncate to {offset}: the commit log starts at {self.commit_log.min_offset}"
            )
        self.commit_log.queue.truncate_dirty(offset)
        for cq in self._queues.values():
            cq.truncate_by_physical(offset)
        self._hints.clear()
        self._file_wanted = None
        self.reput_from = min(self.reput_from, offset)
        self._replay_until = min(self._replay_until, offset)
        # records written again at these offsets need index entries of their own
        self.index.indexed_upto = min(self.index.indexed_upto, offset)
        self._index_covered = min(self._index_covered, offset)
        self._rebuild_topic_queue_table()
        log.warning("truncated the commit log from %d to %d", end, offset)
        return end - offset


__all__ = [
    "AppendResult",
    "Arrived",
    "BatchInner",
    "GetResult",
    "GetStatus",
    "MessageInner",
    "MessageStore",
    "PutResult",
    "PutStatus",
    "QueryResult",
    "RunningFlags",
    "StoreError",
]
