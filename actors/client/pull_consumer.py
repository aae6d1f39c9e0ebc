"""The lite pull consumer (Java's DefaultLitePullConsumer).

    async with LitePullConsumer("group", namesrv="127.0.0.1:9876") as consumer:
        consumer.subscribe("TopicTest", "*")          # or: consumer.assign([mq, ...])
        while True:
            msgs = await consumer.poll(timeout=1.0)
            ...
            await consumer.commit()                   # unless auto_commit

Pull loops (one per held queue, as for the push consumer but sending the subscription in
each pull) fill one bounded buffer; ``poll`` takes the next batch from it.  A message
counts as consumed once ``poll`` returned it: with ``auto_commit`` its offset is committed
by the 5 s persister, otherwise by ``commit()``.
"""

from __future__ import annotations

import collections
import functools
import logging
import ssl
from collections.abc import Sequence
from contextlib import AsyncExitStack

import attrs
import trio

from actors.client import api
from actors.client.consumer import (
    AssignedQueue,
    ConsumerCore,
    ConsumerSettings,
    Pending,
    build_subscription,
)
from actors.client.errors import ClientError
from actors.client.instance import (
    LOOP_POLICY,
    ClientConfig,
    parse_namesrv,
    unique_instance_name,
)
from actors.client.manager import shared_client_instance
from actors.client.offset_store import RemoteOffsetStore
from actors.client.pull_service import pull_loop
from actors.client.rebalance import rebalance_service
from actors.remoting.tls import tls_context
from actors.supervisor import supervise
from protocol.acl import SessionCredentials
from protocol.bodies.common import ConsumeFromWhere, ConsumeType, MessageModel, MessageQueue
from protocol.headers.offset import GetMaxOffsetRequestHeader, GetMinOffsetRequestHeader
from protocol.message import MessageExt

log = logging.getLogger(__name__)

SHUTDOWN_BUDGET = 5.0


@attrs.define(eq=False)
class _Batch:
    aq: AssignedQueue
    msgs: list[MessageExt]


class LitePullConsumer:
    """A lite pull consumer (Java's DefaultLitePullConsumer): ``poll()`` (or ``async for``)
    takes what the background pull loops buffered.

    ``group``: the consumer group (clustering only); ``auto_commit``: offsets of what
    ``poll`` returned are committed every 5 s, else by ``commit()``;
    ``consume_from_where``: where a group without a stored offset starts;
    ``pull_batch_size``: messages per pull; ``buffer_batches``: pulled batches held before
    the pull loops wait (the memory bound); ``settings``: the rest (a copy is kept).
    ``instance_name``/``client_ip``/``credentials``/``tls``: as Producer.

    Lifecycle: configure, ``async with``, then ``subscribe`` (queues rebalanced among the
    group) or ``assign`` (exactly these queues).
    """

    def __init__(
        self,
        group: str,
        *,
        namesrv: str | Sequence[str],
        auto_commit: bool = True,
        consume_from_where: ConsumeFromWhere = ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET,
        pull_batch_size: int = 10,
        buffer_batches: int = 64,
        settings: ConsumerSettings | None = None,
        instance_name: str | None = None,
        client_ip: str | None = None,
        credentials: SessionCredentials | None = None,
        tls: ssl.SSLContext | bool = False,
    ) -> None:
        if not group:
            raise ClientError("consumer group must not be empty")
        self.group = group
        self.auto_commit = auto_commit
        # A copy: the options below must not leak into a settings object the caller shares.
        self.settings = attrs.evolve(settings) if settings is not None else ConsumerSettings()
        self.settings.consume_from_where = consume_from_where
        self.settings.pull_batch_size = pull_batch_size
        self.settings.message_model = MessageModel.CLUSTERING
        self.client_config = ClientConfig(
            namesrv_addrs=parse_namesrv(namesrv),
            instance_name=instance_name or unique_instance_name(),
            credentials=credentials,
            tls=tls_context(tls),
        )
        if client_ip is not None:
            self.client_config.client_ip = client_ip
        self._buffer_batches = buffer_batches
        self._core: ConsumerCore | None = None
        self._stack: AsyncExitStack | None = None
        self._nursery: trio.Nursery | None = None
        self._send: trio.MemorySendChannel[_Batch] | None = None
        self._recv: trio.MemoryReceiveChannel[_Batch] | None = None
        self._assigned: set[MessageQueue] | None = None  # set in assign mode
        self._rebalancing = False
        # Next offset after what poll() returned, per queue (what commit() stores).
        self._consumed: dict[MessageQueue, int] = {}
        self._before_start: dict[str, str] = {}
        self._unread: collections.deque[MessageExt] = collections.deque()

    @property
    def client_id(self) -> str:
        """``clientIP@instanceName``: producers and consumers with one id share a client."""
        return self.client_config.client_id

    @property
    def core(self) -> ConsumerCore:
        """The consumer's state over the running instance (ClientError if not started)."""
        if self._core is None:
            raise ClientError("the consumer is not started: use 'async with consumer'")
        return self._core

    # ------------------------------------------------------------ lifetime

    async def __aenter__(self) -> LitePullConsumer:
        """Join (or start) the client instance; subscriptions made before start begin."""
        async with AsyncExitStack() as stack:
            inst = await stack.enter_async_context(shared_client_instance(self.client_config))
            core = ConsumerCore(
                inst,
                self.group,
                self.settings,
                RemoteOffsetStore(inst, self.group),
                consume_type=ConsumeType.CONSUME_ACTIVELY,
            )
            self._send, self._recv = trio.open_memory_channel[_Batch](self._buffer_batches)
            inst.register_consumer(core)
            stack.push_async_callback(self._final_cleanup, core)
            nursery = await stack.enter_async_context(trio.open_nursery())
            stack.callback(nursery.cancel_scope.cancel, reason="lite consumer closing")
            self._nursery = nursery
            core.start_pull = self._start_pull
            self._core = core
            for topic, expression in self._before_start.items():
                await self._subscribe(topic, expression)
            self._stack = stack.pop_all()
        return self

    def __aiter__(self) -> LitePullConsumer:
        """``async for msg in consumer``: the messages ``poll`` returns, one at a time.

        An iterator object, not an async generator (whose finalization after a ``break``
        would run outside trio).  What a broken-off loop left of a batch comes first from
        the next ``poll`` or loop; as with a batch ``poll`` returned, auto-commit counts it
        consumed.
        """
        return self

    async def __anext__(self) -> MessageExt:
        """The next message (waits for one); see ``__aiter__``."""
        while not self._unread:
            self._unread.extend(await self.poll())
        return self._unread.popleft()

    def _start_pull(self, aq: AssignedQueue) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(
            functools.partial(pull_loop, self.core, aq, self._deliver, lite=True),
            name=f"lite pull {aq.mq}",
        )

    async def _deliver(self, aq: AssignedQueue, msgs: list[MessageExt], dispatch: bool) -> None:
        assert self._send is not None
        await self._send.send(_Batch(aq, msgs))

    async def _final_cleanup(self, core: ConsumerCore) -> None:
        with trio.move_on_after(SHUTDOWN_BUDGET, shield=True):
            if self.auto_commit:
                self._commit_to_store()
            await core.offset_store.persist_all(list(core.table), wait=True)
            core.instance.unregister_consumer(core)
            await core.instance.unregister(producer_group=None, consumer_group=self.group)

    async def __aexit__(self, *exc: object) -> bool | None:
        stack, self._stack = self._stack, None
        assert stack is not None
        try:
            return await stack.__aexit__(*exc)  # type: ignore[arg-type]
        finally:
            self._core = None

    # ------------------------------------------------------------ what to consume

    def subscribe(self, topic: str, expression: str = "*") -> Pending:
        """Consume ``topic`` with queues allocated among the group (rebalanced), before or
        after ``async with``; ``await`` it on a running consumer to wait until the brokers
        know and to get the error (as PushConsumer.subscribe)."""
        if self._assigned is not None:
            raise ClientError("subscribe and assign are mutually exclusive")
        build_subscription(topic, expression, 0)  # a bad expression raises here, as in Java
        if self._core is None:
            self._before_start[topic] = expression
            return Pending.finished()
        assert self._nursery is not None
        pending = Pending()
        self._nursery.start_soon(pending.run, functools.partial(self._subscribe, topic, expression))
        return pending

    async def _subscribe(self, topic: str, expression: str) -> None:
        core = self.core
        core.subscribe(topic, expression)
        await core.instance.update_route(topic)
        try:
            # a broker refusing the heartbeat is raised, after the rebalance is under way
            await core.instance.heartbeat_all(raise_refusal=True)
        finally:
            if not self._rebalancing:
                assert self._nursery is not None
                self._rebalancing = True
                await self._nursery.start(
                    functools.partial(
                        supervise, "rebalance_service", rebalance_service, core, policy=LOOP_POLICY
                    )
                )
            else:
                core.rebalance_wake.set()

    async def assign(self, mqs: Sequence[MessageQueue]) -> None:
        """Consume exactly these queues (no rebalance)."""
        if self._rebalancing:
            raise ClientError("subscribe and assign are mutually exclusive")
        core = self.core
        wanted = set(mqs)
        self._assigned = wanted
        for topic in {mq.topic for mq in wanted}:
            if topic not in core.subscriptions:
                core.subscribe(topic, "*")
                await core.instance.update_route(topic)
        for mq, aq in list(core.table.items()):
            if mq not in wanted:
                await core.offset_store.persist(mq)
                core.drop(aq)
        for mq in sorted(wanted - set(core.table)):
            offset = await core.compute_pull_from_where(mq)
            if offset < 0:
                raise ClientError(f"cannot find the start offset of {mq}")
            core.offset_store.update(mq, offset, increase_only=False)
            core.assign(mq, offset)
        await core.instance.heartbeat_all()

    async def fetch_queues(self, topic: str) -> list[MessageQueue]:
        """All readable queues of ``topic`` (Java's fetchMessageQueues), e.g. for ``assign``."""
        return await self.core.instance.subscribe_queues(topic)

    def assignment(self) -> set[MessageQueue]:
        """The queues this consumer pulls now."""
        return set(self.core.table)

    # ------------------------------------------------------------ consuming

    async def poll(self, timeout: float = 5.0) -> list[MessageExt]:
        """The next batch of messages, or [] if none arrived within ``timeout``."""
        recv = self._recv
        assert recv is not None
        if self._unread:  # left by a broken-off ``async for``
            await trio.lowlevel.checkpoint()
            unread = list(self._unread)
            self._unread.clear()
            return unread
        # A batch already waiting is taken without a cancel scope, which would cost more
        # than the rest of the call; like a channel's receive, this still checkpoints.
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                batch = recv.receive_nowait()
            except trio.WouldBlock:
                break
            if self._take(batch):
                await trio.lowlevel.cancel_shielded_checkpoint()
                return batch.msgs
        with trio.move_on_after(timeout):
            while True:
                batch = await recv.receive()
                if self._take(batch):
                    return batch.msgs
        return []

    def _take(self, batch: _Batch) -> bool:
        """Count ``batch`` as consumed; False if it is stale (then it is dropped)."""
        aq = batch.aq
        if aq.pq.dropped or self.core.table.get(aq.mq) is not aq:
            return False  # from before a seek or a rebalance: pulled again from the new offset
        offset = aq.pq.remove(batch.msgs, self.core.now_ms())
        if offset >= 0:
            self._consumed[aq.mq] = offset
            if self.auto_commit:
                self.core.offset_store.update(aq.mq, offset, increase_only=True)
        return True

    def _commit_to_store(self) -> None:
        for mq, offset in self._consumed.items():
            if mq in self.core.table:
                self.core.offset_store.update(mq, offset, increase_only=False)

    async def commit(self) -> None:
        """Store the offsets of everything ``poll`` returned, synchronously on the broker."""
        core = self.core
        self._commit_to_store()
        await core.offset_store.persist_all(list(core.table), wait=True)

    def committed_offset(self, mq: MessageQueue) -> int | None:
        """The offset this consumer will commit (or has) for ``mq``; None if none yet."""
        return self.core.offset_store.table.get(mq)

    async def _min_max(self, mq: MessageQueue) -> tuple[int, int]:
        inst = self.core.instance
        addr = await inst.find_broker_addr(mq.broker_name, mq.topic)
        lo = await api.get_min_offset(
            inst.remoting,
            addr,
            GetMinOffsetRequestHeader(topic=mq.topic, queue_id=mq.queue_id, bname=mq.broker_name),
            inst.timeout,
        )
        hi = await api.get_max_offset(
            inst.remoting,
            addr,
            GetMaxOffsetRequestHeader(topic=mq.topic, queue_id=mq.queue_id, bname=mq.broker_name),
            inst.timeout,
        )
        return lo, hi

    async def seek(self, mq: MessageQueue, offset: int) -> None:
        """Consume ``mq`` from ``offset`` on (which must be within the queue's range)."""
        core = self.core
        aq = core.table.get(mq)
        if aq is None:
            raise ClientError(f"the message queue {mq} is not assigned to this consumer")
        lo, hi = await self._min_max(mq)
        if not lo <= offset <= hi:
            raise ClientError(f"seek offset {offset} is out of range [{lo}, {hi}] of {mq}")
        core.drop(aq)
        self._consumed.pop(mq, None)
        if self.auto_commit:
            core.offset_store.update(mq, offset, increase_only=False)
        # Without auto commit a seek alone commits nothing; the next commit() after a poll does.
        core.assign(mq, offset)

    async def seek_to_begin(self, mq: MessageQueue) -> None:
        """Consume ``mq`` from its first (minimum) offset on."""
        await self.seek(mq, (await self._min_max(mq))[0])

    async def seek_to_end(self, mq: MessageQueue) -> None:
        """Consume ``mq`` from its end (only messages that arrive from now on)."""
        await self.seek(mq, (await self._min_max(mq))[1])
