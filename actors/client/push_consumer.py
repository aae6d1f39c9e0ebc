"""The push consumer (Java's DefaultMQPushConsumer).

    async with PushConsumer("group", namesrv="127.0.0.1:9876", listener=on_messages) as consumer:
        await consumer.subscribe("TopicTest", "TagA || TagB")
        ...  # messages arrive at ``on_messages`` until the block ends

(``subscribe`` before ``async with``, without ``await``, works too.)  Without a listener,
the messages come from ``async for msg in consumer`` instead (message_stream.py says when
a message counts as consumed).

Supervision tree:

    client instance ........ shared by the clients of one client id (manager.py, a system
                             task): connections, route refresh 30 s, heartbeat 30 s,
                             offset persist 5 s
    consumer nursery ....... inside the ``async with``
       ├─ consume service .. concurrent workers, or orderly per-queue workers
       ├─ lock renewer ..... orderly + clustering only, every 20 s
       ├─ rebalance ........ now, every 20 s, and on NOTIFY_CONSUMER_IDS_CHANGED
       └─ pull loops ....... one per assigned queue, each in its own cancel scope

Leaving the block cancels the consumer nursery, then (shielded, bounded) unlocks orderly
queues, commits offsets synchronously and unregisters from the brokers.
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path

import attrs
import trio

from actors.client.allocate import AllocateStrategy
from actors.client.consume_service import (
    ConcurrentConsumeService,
    ConsumeContext,
    ConsumeOrderlyStatus,
    ConsumeStatus,
    Listener,
    OrderlyConsumeService,
)
from actors.client.consumer import (
    AssignedQueue,
    ConsumerCore,
    ConsumerSettings,
    Pending,
    build_subscription,
)
from actors.client.errors import ClientError
from actors.client.instance import (
    CLIENT_INNER_PRODUCER_GROUP,
    LOOP_POLICY,
    ClientConfig,
    ClientInstance,
    parse_namesrv,
    unique_instance_name,
)
from actors.client.manager import shared_client_instance
from actors.client.message_stream import MessageStream
from actors.client.offset_store import LocalFileOffsetStore, OffsetStore, RemoteOffsetStore
from actors.client.producer import ProducerCore
from actors.client.pull_service import pull_loop
from actors.client.rebalance import lock_renewer, rebalance_service, unlock_queues
from actors.remoting.tls import tls_context
from actors.supervisor import supervise
from protocol.acl import SessionCredentials
from protocol.bodies.common import ConsumeFromWhere, MessageModel, MessageQueue

log = logging.getLogger(__name__)

SHUTDOWN_BUDGET = 5.0

__all__ = [
    "ConsumeContext",
    "ConsumeFromWhere",
    "ConsumeOrderlyStatus",
    "ConsumeStatus",
    "ConsumerSettings",
    "MessageModel",
    "PushConsumer",
]


class PushConsumer:
    """A push consumer (Java's DefaultMQPushConsumer): pull loops per assigned queue feed
    ``listener(msgs, ctx)`` (or ``async for``, when made without a listener).

    ``group``: the consumer group; queues are shared among its members (``strategy``,
    default averagely) in ``CLUSTERING``, every member gets every message in
    ``BROADCASTING`` (offsets then kept in a local file under ``offsets_dir``).
    ``listener``: async, returns ``ConsumeStatus`` (``ConsumeOrderlyStatus`` if
    ``orderly``: one queue at a time, in queue order, under a broker lock).
    ``consume_from_where``/``consume_timestamp``: where a group without a stored offset
    starts.  ``settings``: batch sizes, flow limits, workers, timeouts (a copy is kept).
    ``instance_name``/``client_ip``: the client id ``clientIP@instanceName``; clients of one
    process with the same id share one client instance (clustering default: unique per
    consumer; broadcasting: ``DEFAULT``, as Java).  ``credentials``/``tls``: as Producer.

    Lifecycle: configure, ``async with``, then ``await consumer.subscribe(...)`` (subscribing
    before ``async with`` works too).  Leaving the block commits offsets and unregisters.
    """

    def __init__(
        self,
        group: str,
        *,
        namesrv: str | Sequence[str],
        listener: Listener | None = None,
        orderly: bool = False,
        message_model: MessageModel = MessageModel.CLUSTERING,
        consume_from_where: ConsumeFromWhere = ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET,
        consume_timestamp: str | None = None,
        strategy: AllocateStrategy | None = None,
        settings: ConsumerSettings | None = None,
        instance_name: str | None = None,
        client_ip: str | None = None,
        offsets_dir: Path | None = None,
        credentials: SessionCredentials | None = None,
        tls: ssl.SSLContext | bool = False,
    ) -> None:
        if not group:
            raise ClientError("consumer group must not be empty")
        self.group = group
        self.listener = listener
        self.orderly = orderly
        # A copy: the options below must not leak into a settings object the caller shares.
        self.settings = attrs.evolve(settings) if settings is not None else ConsumerSettings()
        self.settings.message_model = message_model
        self.settings.consume_from_where = consume_from_where
        if consume_timestamp is not None:
            self.settings.consume_timestamp = consume_timestamp
        if strategy is not None:
            self.settings.strategy = strategy
        if instance_name is None:
            # Java: clustering consumers get a unique name; broadcasting keeps DEFAULT so a
            # restarted process finds its local offsets again.
            clustering = message_model is MessageModel.CLUSTERING
            instance_name = unique_instance_name() if clustering else "DEFAULT"
        self.client_config = ClientConfig(
            namesrv_addrs=parse_namesrv(namesrv), instance_name=instance_name
        )
        if client_ip is not None:
            self.client_config.client_ip = client_ip
        self.client_config.credentials = credentials
        self.client_config.tls = tls_context(tls)
        self.offsets_dir = offsets_dir
        self._expressions: dict[str, str] = {}
        self._core: ConsumerCore | None = None
        self._stack: AsyncExitStack | None = None
        self._stream: MessageStream | None = None  # without a listener: ``async for``
        self._nursery: trio.Nursery | None = None

    # ------------------------------------------------------------ configuration

    def subscribe(self, topic: str, expression: str = "*") -> Pending:
        """Consume ``topic`` (tags: ``"TagA || TagB"`` or ``*``), before or after ``async with``.

        On a running consumer ``await consumer.subscribe(...)`` returns once the route is
        known and the brokers have the new heartbeat, and raises what went wrong.  A bad
        expression raises ``InvalidSubscriptionError`` at once, as Java's subscribe.
        """
        build_subscription(topic, expression, 0)  # validates; the real one has the time
        self._expressions[topic] = expression
        if self._core is None:
            return Pending.finished()
        self._core.subscribe(topic, expression)
        return self._start_resync(topic)

    def unsubscribe(self, topic: str) -> Pending:
        """Stop consuming ``topic``; on a running consumer ``await`` it as ``subscribe``."""
        self._expressions.pop(topic, None)
        if self._core is None:
            return Pending.finished()
        self._core.unsubscribe(topic)
        return self._start_resync(None)

    def _start_resync(self, topic: str | None) -> Pending:
        pending = Pending()
        # In the consumer's own nursery, not the (shared) instance's: it ends with the consumer.
        assert self._nursery is not None
        self._nursery.start_soon(
            pending.run, functools.partial(self._resync, strict=topic, awaited=True)
        )
        return pending

    def register_listener(self, listener: Listener, *, orderly: bool = False) -> None:
        """Set the listener (Java's registerMessageListener); before ``async with`` only."""
        if self._core is not None:
            raise ClientError("register the listener before starting the consumer")
        self.listener = listener
        self.orderly = orderly

    async def _resync(self, strict: str | None = None, *, awaited: bool = False) -> None:
        """Routes of every topic, a heartbeat, a rebalance; a route error of ``strict`` (the
        topic just subscribed) is raised, the others' only logged.  ``awaited`` (a
        subscription change on a running consumer): a broker refusing the heartbeat is raised
        too, after the rebalance is woken."""
        core = self.core
        for topic in core.topics():
            try:
                await core.instance.update_route(topic)
            except ClientError as exc:
                if topic == strict:
                    raise
                log.info("route of %s: %s", topic, exc)
        try:
            await core.instance.heartbeat_all(raise_refusal=awaited)
        finally:
            core.rebalance_wake.set()

    @property
    def core(self) -> ConsumerCore:
        """The consumer's state over the running instance (ClientError if not started)."""
        if self._core is None:
            raise ClientError("the consumer is not started: use 'async with consumer'")
        return self._core

    @property
    def client_id(self) -> str:
        """``clientIP@instanceName``: producers and consumers with one id share a client."""
        return self.client_config.client_id

    def assigned_queues(self) -> set[MessageQueue]:
        """The queues this member holds now (after the last rebalance)."""
        return set(self.core.table)

    # ------------------------------------------------------------ lifetime

    def _offset_store(self, inst: ClientInstance) -> OffsetStore:
        if self.settings.message_model is MessageModel.BROADCASTING:
            return LocalFileOffsetStore.for_client(inst.client_id, self.group, self.offsets_dir)
        return RemoteOffsetStore(inst, self.group)

    async def __aenter__(self) -> PushConsumer:
        """Join (or start) the client instance, load offsets, start consuming."""
        listener = self.listener
        settings = self.settings
        if listener is None:
            self._stream = listener = MessageStream(self.orderly)
            # One worker: the loop takes one message at a time anyway, and a batch waiting
            # in a second worker for the loop would count that wait against its consume
            # timeout (and be sent back for it).
            settings = attrs.evolve(settings, consume_workers=1)
        async with AsyncExitStack() as stack:
            inst = await stack.enter_async_context(shared_client_instance(self.client_config))
            store = self._offset_store(inst)
            await store.load()
            core = ConsumerCore(inst, self.group, settings, store, orderly=self.orderly)
            for topic, expression in self._expressions.items():
                core.subscribe(topic, expression)
            inner = ProducerCore(inst, CLIENT_INNER_PRODUCER_GROUP)
            service_cls = OrderlyConsumeService if self.orderly else ConcurrentConsumeService
            service = service_cls(core, listener, inner)
            inst.register_consumer(core)
            stack.push_async_callback(self._final_cleanup, core)
            nursery = await stack.enter_async_context(trio.open_nursery())
            self._nursery = nursery
            stack.callback(nursery.cancel_scope.cancel, reason="consumer shutting down")

            def start_pull(aq: AssignedQueue) -> None:
                nursery.start_soon(pull_loop, core, aq, service.submit, name=f"pull {aq.mq}")

            core.start_pull = start_pull
            await nursery.start(service.run)
            self._core = core
            await self._resync()
            if self.orderly and core.clustering:
                await nursery.start(lock_renewer, core)
            await nursery.start(
                functools.partial(
                    supervise, "rebalance_service", rebalance_service, core, policy=LOOP_POLICY
                )
            )
            self._stack = stack.pop_all()
        return self

    async def _final_cleanup(self, core: ConsumerCore) -> None:
        inst = core.instance
        held = list(core.table)
        with trio.move_on_after(SHUTDOWN_BUDGET, shield=True):
            for aq in core.table.values():
                aq.pq.dropped = True
            if self.orderly and core.clustering and held:
                await unlock_queues(core, held, wait=True)
            await core.offset_store.persist_all(held, wait=True)
            inst.unregister_consumer(core)
            await inst.unregister(producer_group=None, consumer_group=self.group)

    async def __aexit__(self, *exc: object) -> bool | None:
        stack, self._stack = self._stack, None
        assert stack is not None
        stream, self._stream = self._stream, None
        try:
            if stream is not None:
                await stream.close(ok=exc[0] is None)
            return await stack.__aexit__(*exc)  # type: ignore[arg-type]
        finally:
            self._core = None
            self._nursery = None

    # ------------------------------------------------------------ async for

    def __aiter__(self) -> MessageStream:
        """``async for msg in consumer``, on a started consumer made without a listener.

        A message counts as consumed once the body finished with it: when the loop asks for
        the next one, or when the ``async with`` block ends without an exception; it comes
        again later after ``reconsume_later()``, or when the block ends with an exception
        while the body held it.  Details in actors/client/message_stream.py.
        """
        if self._core is None:
            raise ClientError("the consumer is not started: use 'async with consumer'")
        if self._stream is None:
            raise ClientError(
                "this consumer has a listener: 'async for' is for a consumer made without one"
            )
        return self._stream

    def reconsume_later(self, delay_level: int = 0, suspend_seconds: float | None = None) -> None:
        """In ``async for``: the message the body holds (and the rest of its batch) is not
        consumed and comes again later (RECONSUME_LATER with ``delay_level``, or for an
        orderly consumer SUSPEND_CURRENT_QUEUE_A_MOMENT for ``suspend_seconds``)."""
        if self._stream is None:
            raise ClientError("reconsume_later() is for a consumer read with 'async for'")
        self._stream.reconsume_later(delay_level, suspend_seconds)
