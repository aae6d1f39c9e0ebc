"""Transactional messages in the store (reference §7.6): half, op and committed messages, and
one check round over a half queue.

Synchronous and network-free like the rest of storage/: the broker's END_TRANSACTION handler
and its check service (actors/broker/transaction.py) call these between awaits.

Bounded memory: a check round pages through the half queue one message at a time and the op
queue 32 messages at a time.  The map of "half offset -> op offset" it builds is capped
(``CheckSettings.max_ops_in_memory``); ops beyond the cap are dropped and re-read from the op
queue when the walk reaches them, so a million pending half messages cost disk reads, never
heap.  Progress is kept as consumer offsets of group ``CID_RMQ_SYS_TRANS`` on the half and op
queues (consumerOffset.json), so a restart resumes where the last round ended.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable
from typing import Protocol

import attrs

from protocol.errors import RemoteProtocolError
from protocol.message import (
    MessageConst,
    MessageExt,
    MessageSysFlag,
    decode_record,
    reset_transaction,
)
from storage.consumer_offsets import ConsumerOffsetTable
from storage.results import GetResult, GetStatus, MessageInner, PutResult

log = logging.getLogger(__name__)

HALF_TOPIC = "RMQ_SYS_TRANS_HALF_TOPIC"
OP_TOPIC = "RMQ_SYS_TRANS_OP_HALF_TOPIC"
CHECK_MAX_TOPIC = "TRANS_CHECK_MAX_TIME_TOPIC"
CHECK_GROUP = "CID_RMQ_SYS_TRANS"
REMOVE_TAG = "d"
HALF_QUEUE_ID = 0
OP_PAGE = 32
# Java gives up on a queue after this many unreadable half offsets in one round
MAX_NULL_READS = 1


class Store(Protocol):
    """What a check round needs of storage.message_store.MessageStore."""

    def get_message(
        self, group: str, topic: str, queue_id: int, offset: int, max_msg_nums: int
    ) -> GetResult: ...

    def put_message(self, msg: MessageInner) -> PutResult: ...

    def min_offset_in_queue(self, topic: str, queue_id: int) -> int: ...


# ---------------------------------------------------------------- messages


def to_half(msg: MessageInner) -> MessageInner:
    """A prepared send as stored: REAL_TOPIC/REAL_QID kept, transaction type NOT, so it gets
    a consume-queue unit in the half topic (Java's parseHalfMessageInner)."""
    props = dict(msg.properties)
    props[MessageConst.REAL_TOPIC] = msg.topic
    props[MessageConst.REAL_QID] = str(msg.queue_id)
    return attrs.evolve(
        msg,
        topic=HALF_TOPIC,
        queue_id=HALF_QUEUE_ID,
        properties=props,
        sys_flag=reset_transaction(msg.sys_flag, MessageSysFlag.TRANSACTION_NOT_TYPE),
    )


class NotAHalfMessage(ValueError):
    pass


def committed(half: MessageExt, half_offset: int) -> MessageInner:
    """The message a commit writes (Java's endMessageTransaction): the real topic and queue,
    transaction type COMMIT, pointing back at the half message.

    REAL_TOPIC, REAL_QID and TRAN_MSG stay in the stored properties: Apache 4.9.7 removes them
    from its map only after serialising it (checked by the differential test), so consumers of
    its broker see them; we follow the broker, not the reference text.
    """
    props = dict(half.properties)
    topic = props.get(MessageConst.REAL_TOPIC)
    qid = props.get(MessageConst.REAL_QID)
    if topic is None or qid is None or not qid.lstrip("-").isdigit():
        raise NotAHalfMessage("the message at that offset is not a half message")
    return MessageInner(
        topic=topic,
        queue_id=int(qid),
        body=half.body,
        properties=props,
        flag=half.flag,
        sys_flag=reset_transaction(half.sys_flag, MessageSysFlag.TRANSACTION_COMMIT),
        born_timestamp=half.born_timestamp,
        born_host=half.born_host,
        reconsume_times=half.reconsume_times,
        prepared_transaction_offset=half_offset,
    )


def op_message(
    half_queue_offset: int, half_queue_id: int, broker_host: str, now_ms: int, uniq_id: str
) -> MessageInner:
    """The 'done' mark of a half message: body = its queue offset in decimal, tag ``d``."""
    return MessageInner(
        topic=OP_TOPIC,
        queue_id=half_queue_id,
        body=str(half_queue_offset).encode(),
        properties={
            MessageConst.TAGS: REMOVE_TAG,
            MessageConst.WAIT: "true",
            MessageConst.UNIQ_KEY: uniq_id,
        },
        sys_flag=0,
        born_timestamp=now_ms,
        born_host=broker_host,
    )


def _copy(half: MessageExt, *, topic: str, queue_id: int, props: dict[str, str]) -> MessageInner:
    return MessageInner(
        topic=topic,
        queue_id=queue_id,
        body=half.body,
        properties=props,
        # Java's renewHalfMessageInner drops the flag; a commit after a check-back would then
        # lose the user's flag.  We keep it.
        flag=half.flag,
        sys_flag=half.sys_flag,
        born_timestamp=half.born_timestamp,
        born_host=half.born_host,
        reconsume_times=half.reconsume_times,
    )


def check_copy(half: MessageExt) -> MessageInner:
    """The copy a check re-appends to the half queue (its check count already raised)."""
    return _copy(half, topic=HALF_TOPIC, queue_id=half.queue_id, props=dict(half.properties))


def immunity_copy(half: MessageExt) -> MessageInner:
    """A half message still within CHECK_IMMUNITY_TIME_IN_SECONDS, put back for a later
    round; TRAN_PREPARED_QUEUE_OFFSET remembers the original queue offset its op will name."""
    props = dict(half.properties)
    props.setdefault(MessageConst.TRAN_PREPARED_QUEUE_OFFSET, str(half.queue_offset))
    return _copy(half, topic=HALF_TOPIC, queue_id=half.queue_id, props=props)


def discard_copy(half: MessageExt) -> MessageInner:
    """A half message checked ``transactionCheckMax`` times, moved to TRANS_CHECK_MAX_TIME_TOPIC."""
    return _copy(half, topic=CHECK_MAX_TOPIC, queue_id=0, props=dict(half.properties))


def check_body_message(copy: MessageExt) -> MessageExt:
    """The message a CHECK_TRANSACTION_STATE carries: the re-appended copy, shown under its
    real topic and queue (Java's sendCheckMessage)."""
    props = copy.properties
    qid = props.get(MessageConst.REAL_QID, "0")
    return attrs.evolve(
        copy,
        # Java marks the copy it re-puts "don't wait for the store" in the same map it then
        # sends, so a check-back shows WAIT=false (seen from Apache 4.9.7)
        properties={**props, MessageConst.WAIT: "false"},
        topic=props.get(MessageConst.REAL_TOPIC, copy.topic),
        queue_id=int(qid) if qid.lstrip("-").isdigit() else 0,
        store_size=0,
    )


def _int(text: str | None, default: int = -1) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return -1


# ---------------------------------------------------------------- the check round


@attrs.frozen
class CheckSettings:
    timeout_ms: int = 6000  # transactionTimeOut
    check_max: int = 15  # transactionCheckMax
    file_reserved_ms: int = 72 * 3600 * 1000  # fileReservedTime
    round_limit_ms: int = 60_000  # Java's MAX_PROCESS_TIME_LIMIT per queue
    max_ops_in_memory: int = 4096  # half offsets remembered as done at once (heap bound)
    max_done_ops: int = 16384  # op offsets remembered past a gap (bound; see _mark_done)


@attrs.frozen
class Checked:
    """A half message re-appended for a check-back: what CHECK_TRANSACTION_STATE sends."""

    group: str | None
    message: MessageExt  # the copy as stored (half topic, its own offsets)


@attrs.define(eq=False)
class HalfQueueCheck:
    """One check round over one half queue (Java's TransactionalMessageServiceImpl.check).

    ``step(n)`` walks up to ``n`` half messages and returns the copies it re-appended for a
    check-back; ``finished`` turns true when the walk stops (end of queue, a message too young
    or stored after the round began, the round's time limit).  ``save()`` records the progress
    in the offset table; the caller saves after every step so a crash repeats little.
    """

    store: Store
    offsets: ConsumerOffsetTable
    settings: CheckSettings
    now_ms: Callable[[], int]
    queue_id: int = HALF_QUEUE_ID
    # Whether a producer of the group can be asked now.  When none can, the half message is
    # put back without counting a check: a producer group that is down (or, like the C++
    # client, sends its first heartbeat 30 s after start) does not see its transactions
    # discarded for checks nobody received.  Java counts them anyway.
    has_producer: Callable[[str | None], bool] = lambda _group: True
    parked: int = attrs.field(init=False, default=0)
    started_ms: int = attrs.field(init=False)
    finished: bool = attrs.field(init=False, default=False)
    discarded: int = attrs.field(init=False, default=0)
    half_start: int = attrs.field(init=False)
    op_start: int = attrs.field(init=False)
    _i: int = attrs.field(init=False)  # next half offset to look at
    _half_next: int = attrs.field(init=False)  # every half offset below is settled
    _op_read: int = attrs.field(init=False)  # next op offset to read
    _op_exhausted: bool = attrs.field(init=False, default=False)
    _op_next: int = attrs.field(init=False)  # every op offset below is done
    _done_ops: set[int] = attrs.field(init=False, factory=set)
    _done_overflow: bool = attrs.field(init=False, default=False)
    _remove: dict[int, int] = attrs.field(init=False, factory=dict)  # half offset -> op offset
    _far: list[int] = attrs.field(init=False, factory=list)  # -half offsets of _remove (heap)
    # ops dropped because _remove was full: halves from _horizon on need the op queue re-read
    # from _dropped_from before they may be checked
    _horizon: int | None = attrs.field(init=False, default=None)
    _dropped_from: int | None = attrs.field(init=False, default=None)
    _null_reads: int = attrs.field(init=False, default=0)
    _recent_done: dict[int, None] = attrs.field(init=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        self.started_ms = self.now_ms()
        self.half_start = self._offset(HALF_TOPIC)
        self.op_start = self._offset(OP_TOPIC)
        self._i = self._half_next = self.half_start
        self._op_read = self._op_next = self.op_start

    def _offset(self, topic: str) -> int:
        offset = self.offsets.query(CHECK_GROUP, topic, self.queue_id)
        if offset < 0:
            offset = self.store.min_offset_in_queue(topic, self.queue_id)
        return offset

    # ------------------------------------------------------------ ops

    def _read_ops(self) -> None:
        """One page of op messages into the map (Java's fillOpRemoveMap)."""
        result = self.store.get_message(
            CHECK_GROUP, OP_TOPIC, self.queue_id, self._op_read, OP_PAGE
        )
        status = result.status
        if status is not GetStatus.FOUND:
            if status in (
                GetStatus.NO_MESSAGE_IN_QUEUE,
                GetStatus.OFFSET_OVERFLOW_ONE,
                GetStatus.OFFSET_OVERFLOW_BADLY,
            ):
                self._op_exhausted = True
            if status in (GetStatus.OFFSET_TOO_SMALL, GetStatus.OFFSET_FOUND_NULL):
                # cleaned away under us: those ops named halves that are gone too
                if self._op_next == self._op_read:
                    self._op_next = result.next_begin_offset
                self._op_read = result.next_begin_offset
            elif not self._op_exhausted:
                self._op_exhausted = True
            return
        for raw in result.buffers:
            try:
                op = decode_record(raw)
            except RemoteProtocolError:
                log.error("unreadable op message at queue offset %d", self._op_read)
                continue
            half_offset = _int(op.body.decode(errors="replace"))
            if op.tags != REMOVE_TAG or half_offset < 0:
                log.error("illegal op message %s", op)
                self._mark_done(op.queue_offset)
            elif half_offset < self._i:
                self._mark_done(op.queue_offset)
                self._remember_done_half(half_offset)
            elif len(self._remove) < self.settings.max_ops_in_memory or half_offset in self._remove:
                self._remember(half_offset, op.queue_offset)
            else:
                # full: keep the halves nearest the walk, drop the farthest (and re-read later)
                farthest = self._farthest()
                if half_offset < farthest:
                    self._drop(farthest, self._remove.pop(farthest))
                    self._remember(half_offset, op.queue_offset)
                else:
                    self._drop(half_offset, op.queue_offset)
        self._op_read = result.next_begin_offset

    def _remember(self, half_offset: int, op_offset: int) -> None:
        if half_offset not in self._remove:
            heapq.heappush(self._far, -half_offset)
            if len(self._far) > 2 * self.settings.max_ops_in_memory:
                # entries the walk consumed linger in the heap: rebuild it from the map
                self._far = [-h for h in self._remove]
                heapq.heapify(self._far)
                heapq.heappush(self._far, -half_offset)
        self._remove[half_offset] = op_offset

    def _farthest(self) -> int:
        """The largest half offset in the map (a max-heap with lazy deletion)."""
        while -self._far[0] not in self._remove:
            heapq.heappop(self._far)
        return -self._far[0]

    def _drop(self, half_offset: int, op_offset: int) -> None:
        if self._horizon is None or half_offset < self._horizon:
            self._horizon = half_offset
        if self._dropped_from is None or op_offset < self._dropped_from:
            self._dropped_from = op_offset

    def _remember_done_half(self, half_offset: int) -> None:
        # Put-back copies name their original's offset (TRAN_PREPARED_QUEUE_OFFSET), which is
        # behind the walk; the ops of such originals seen this round settle their copies.
        recent = self._recent_done
        if len(recent) >= self.settings.max_ops_in_memory:
            del recent[next(iter(recent))]
        recent[half_offset] = None

    def _mark_done(self, op_offset: int) -> None:
        if op_offset < self._op_next:
            return
        if op_offset == self._op_next:
            self._op_next += 1
            while self._op_next in self._done_ops:
                self._done_ops.discard(self._op_next)
                self._op_next += 1
            return
        # Past a gap (an op whose half is still ahead).  Forgetting one only means it is read
        # again next round, so the set is capped.
        if len(self._done_ops) < self.settings.max_done_ops:
            self._done_ops.add(op_offset)
        else:
            self._done_overflow = True

    def _ops_complete_for(self, half_offset: int) -> bool:
        """True when every op written so far has been read for ``half_offset``."""
        if self._horizon is not None and half_offset >= self._horizon:
            assert self._dropped_from is not None
            # re-read the ops the full map dropped; those for passed halves become done
            self._op_read = self._dropped_from
            self._horizon = self._dropped_from = None
            self._op_exhausted = False
        return self._op_exhausted

    # ------------------------------------------------------------ halves

    def step(self, max_reads: int) -> tuple[list[Checked], list[MessageInner]]:
        """Walk on for at most ``max_reads`` reads (a half message or a page of ops):
        (copies to check back, discarded messages whose put failed - for the log)."""
        checks: list[Checked] = []
        failed: list[MessageInner] = []
        settings = self.settings
        budget = max_reads
        while not self.finished and budget > 0:
            now = self.now_ms()
            if now - self.started_ms > settings.round_limit_ms:
                self.finished = True
                break
            i = self._i
            if i in self._remove:
                self._mark_done(self._remove.pop(i))
                self._advance()
                continue
            half = self._half(i)
            if half is None:
                continue  # _half moved _i or finished the round
            budget -= 1
            # needDiscard: raises the check count as a side effect, as Java does
            times = _int(half.properties.get(MessageConst.TRANSACTION_CHECK_TIMES), 0)
            if times >= settings.check_max or (
                now - half.born_timestamp > settings.file_reserved_ms
            ):
                if not self.store.put_message(discard_copy(half)).ok:
                    failed.append(discard_copy(half))
                self.discarded += 1
                self._advance()
                continue
            times_before = half.properties.get(MessageConst.TRANSACTION_CHECK_TIMES)
            half.properties[MessageConst.TRANSACTION_CHECK_TIMES] = str(times + 1 if times else 1)
            if half.store_timestamp >= self.started_ms:
                self.finished = True  # stored during this round: the next round's
                break
            age = now - half.born_timestamp
            prepared = _int(half.properties.get(MessageConst.TRAN_PREPARED_QUEUE_OFFSET), -1)
            if prepared >= 0:
                # a put-back copy: settled if its original's op exists (read them all first)
                if not self._ops_complete_for(i):
                    self._read_ops()
                    continue
                if prepared in self._recent_done or prepared in self._remove:
                    if prepared in self._remove:
                        self._mark_done(self._remove.pop(prepared))
                    self._advance()
                    continue
            immunity = settings.timeout_ms
            immunity_text = half.properties.get(MessageConst.CHECK_IMMUNITY_TIME_IN_SECONDS)
            if immunity_text is not None:
                seconds = _int(immunity_text)
                immunity = settings.timeout_ms if seconds == -1 else seconds * 1000
                if age < immunity and self._immune(half):
                    self._advance()
                    continue
            elif 0 <= age < immunity:
                self.finished = True  # too young; everything after it is younger still
                break
            if not self._ops_complete_for(i):
                self._read_ops()  # one unit of the budget; the same half again after it
                continue
            if age <= immunity and age >= 0:
                # Java: no op found but still within immunity (=): wait for the next round
                self.finished = True
                break
            group = half.properties.get(MessageConst.PGROUP)
            asked = self.has_producer(group)
            if not asked:
                if times_before is None:
                    del half.properties[MessageConst.TRANSACTION_CHECK_TIMES]
                else:
                    half.properties[MessageConst.TRANSACTION_CHECK_TIMES] = times_before
            result = self.store.put_message(check_copy(half))
            append = result.append
            if not result.ok or append is None:
                log.error("re-appending half message %d for a check failed: %s", i, result.status)
                self.finished = True  # try again next round, nothing lost
                break
            copy = attrs.evolve(
                half,
                queue_offset=append.queue_offset,
                commit_log_offset=append.wrote_offset,
                store_timestamp=append.store_timestamp,
            )
            if asked:
                checks.append(Checked(group, copy))
            else:
                self.parked += 1
            self._advance()
        return checks, failed

    def _advance(self) -> None:
        self._i += 1
        self._half_next = self._i

    def _immune(self, half: MessageExt) -> bool:
        """Java's checkPrepareQueueOffset: True when the half is settled for this round."""
        prepared = _int(half.properties.get(MessageConst.TRAN_PREPARED_QUEUE_OFFSET), -2)
        if prepared == -1:
            return False
        if prepared >= 0 and prepared in self._remove:
            self._mark_done(self._remove.pop(prepared))
            return True
        return self.store.put_message(immunity_copy(half)).ok

    def _half(self, i: int) -> MessageExt | None:
        result = self.store.get_message(CHECK_GROUP, HALF_TOPIC, self.queue_id, i, 1)
        if result.status is GetStatus.FOUND and result.buffers:
            try:
                msg = decode_record(result.buffers[0])
            except RemoteProtocolError:
                log.error("unreadable half message at queue offset %d", i)
                self._advance()
                return None
            return msg
        if result.status in (
            GetStatus.NO_MESSAGE_IN_QUEUE,
            GetStatus.OFFSET_OVERFLOW_ONE,
            GetStatus.OFFSET_OVERFLOW_BADLY,
        ):
            self.finished = True
            return None
        self._null_reads += 1
        if self._null_reads > MAX_NULL_READS or result.next_begin_offset <= i:
            self.finished = True
            return None
        # cleaned away (too small) or a hole: continue where the store says
        self._i = self._half_next = result.next_begin_offset
        return None

    def save(self) -> None:
        """Record the progress: the half offset walked to and the first op not yet done."""
        if self._half_next != self.half_start:
            self.offsets.commit(CHECK_GROUP, HALF_TOPIC, self.queue_id, self._half_next)
        if self._op_next != self.op_start:
            self.offsets.commit(CHECK_GROUP, OP_TOPIC, self.queue_id, self._op_next)
