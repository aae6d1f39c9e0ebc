"""The producer (Java's DefaultMQProducer): sync, oneway, async, batch and orderly sends.

``ProducerCore`` is the send logic over a client instance (the push consumer reuses it as
its internal producer for the retry fallback); ``Producer`` is the user's ``async with``
that owns an instance.  Sends follow §8.3: route lookup on first use, round robin over the
writeable queues, latency fault tolerance, 2 retries on another broker for sync sends, one
deadline (``send_timeout``) for the whole send, bodies of 4 KiB and more compressed.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any

import attrs
import trio

from actors.client import api
from actors.client.errors import BrokerError, ClientError, ClientTimeoutError, InvalidMessageError
from actors.client.fault import LatencyFaultTolerance
from actors.client.instance import (
    AUTO_CREATE_TOPIC,
    DEFAULT_TOPIC_QUEUE_NUMS,
    ClientConfig,
    ClientInstance,
    parse_namesrv,
    unique_instance_name,
)
from actors.client.manager import shared_client_instance
from actors.client.message import Message, MessageQueue, SendResult, SendStatus
from actors.client.route import TopicPublishInfo, select_queue
from actors.remoting.tls import tls_context
from protocol.acl import SessionCredentials
from protocol.codes import ResponseCode
from protocol.headers.send import SendMessageRequestHeaderV2
from protocol.message import (
    BatchEntry,
    MessageConst,
    MessageSysFlag,
    compress,
    encode_batch,
    java_hash,
    properties_to_string,
)
from protocol.msgid import UniqIdGenerator

log = logging.getLogger(__name__)

RETRY_GROUP_TOPIC_PREFIX = "%RETRY%"
# A failed attempt is retried on these broker codes only (§8.3); others fail at once.
RETRY_RESPONSE_CODES = frozenset(
    {
        ResponseCode.TOPIC_NOT_EXIST,
        ResponseCode.SERVICE_NOT_AVAILABLE,
        ResponseCode.SYSTEM_ERROR,
        ResponseCode.NO_PERMISSION,
        ResponseCode.NO_BUYER_ID,
        ResponseCode.NOT_IN_CURRENT_UNIT,
    }
)
_STATUS = {
    api.SendCode.SUCCESS: SendStatus.SEND_OK,
    api.SendCode.FLUSH_DISK_TIMEOUT: SendStatus.FLUSH_DISK_TIMEOUT,
    api.SendCode.FLUSH_SLAVE_TIMEOUT: SendStatus.FLUSH_SLAVE_TIMEOUT,
    api.SendCode.SLAVE_NOT_AVAILABLE: SendStatus.SLAVE_NOT_AVAILABLE,
}

QueueSelector = Callable[[Sequence[MessageQueue], Message, Any], MessageQueue]
SendCallback = Callable[[SendResult | Exception], object]


def select_by_hash(queues: Sequence[MessageQueue], msg: Message, arg: Any) -> MessageQueue:
    """Java's SelectMessageQueueByHash: ``abs(arg.hashCode() % n)``; strings hash as Java."""
    h = java_hash(arg) if isinstance(arg, str) else hash(arg)
    return queues[abs(h) % len(queues)]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _clock_ms() -> int:
    return int(trio.current_time() * 1000)


@attrs.frozen
class ProducerConfig:
    """A producer's settings, Java's defaults (DefaultMQProducer, in seconds): the deadline
    of a whole send, retries on another broker, the compression threshold, the size limit,
    latency fault tolerance, and the bound on async sends in flight."""

    send_timeout: float = 3.0
    retry_times: int = 2  # sync and async: up to 3 attempts
    compress_over: int = 4096
    max_message_size: int = 4 * 1024 * 1024
    # Apache's sendLatencyFaultEnable, off by default there too (fault.py says why).
    latency_fault_enable: bool = False
    retry_another_broker_when_not_store_ok: bool = False
    max_async_in_flight: int = 1024


@attrs.frozen
class _Prepared:
    """A message as it goes on the wire."""

    topic: str
    body: bytes
    flag: int
    sys_flag: int
    properties: dict[str, str]
    msg_id: str
    batch: bool = False
    reconsume_times: int | None = None
    max_reconsume_times: int | None = None


@attrs.define(eq=False)
class ProducerCore:
    instance: ClientInstance
    group: str
    config: ProducerConfig = ProducerConfig()
    fault: LatencyFaultTolerance = attrs.Factory(LatencyFaultTolerance)
    _ids: UniqIdGenerator = attrs.Factory(UniqIdGenerator)
    _async_limit: trio.Semaphore = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._async_limit = trio.Semaphore(self.config.max_async_in_flight)

    @property
    def _attempts(self) -> int:
        """Attempts of a send that may move to another queue (sync, async, batch)."""
        return 1 + self.config.retry_times

    # ------------------------------------------------------------ preparing

    def _new_id(self) -> str:
        return self._ids.next(_now_ms())

    def _prepare(self, msg: Message) -> _Prepared:
        msg.validate(self.config.max_message_size)
        props = msg.wire_properties()
        msg_id = props.get(MessageConst.UNIQ_KEY) or self._new_id()
        props[MessageConst.UNIQ_KEY] = msg_id
        body = bytes(msg.body)
        sys_flag = 0
        if len(body) >= self.config.compress_over:
            # 0x1 alone (4.9.1 style): every client decodes it as zlib.
            body = compress(body)
            sys_flag |= MessageSysFlag.COMPRESSED
        if props.get(MessageConst.TRAN_MSG) == "true":
            sys_flag |= MessageSysFlag.TRANSACTION_PREPARED
        reconsume = max_reconsume = None
        if msg.topic.startswith(RETRY_GROUP_TOPIC_PREFIX):
            # The consumer's fallback path moves these two into the header (§8.4).
            if MessageConst.RECONSUME_TIME in props:
                reconsume = int(props.pop(MessageConst.RECONSUME_TIME))
            if MessageConst.MAX_RECONSUME_TIMES in props:
                max_reconsume = int(props.pop(MessageConst.MAX_RECONSUME_TIMES))
        return _Prepared(
            msg.topic, body, msg.flag, sys_flag, props, msg_id, False, reconsume, max_reconsume
        )

    def _prepare_batch(self, msgs: Sequence[Message]) -> _Prepared:
        if not msgs:
            raise InvalidMessageError("a batch needs at least one message")
        topic = msgs[0].topic
        entries = []
        ids = []
        for msg in msgs:
            msg.validate(self.config.max_message_size)
            if msg.topic != topic:
                raise InvalidMessageError(
                    "the topic of the messages in one batch should be the same"
                )
            if msg.delay_level > 0:
                raise InvalidMessageError("TimeDelayLevel is not supported for batching")
            if msg.topic.startswith(RETRY_GROUP_TOPIC_PREFIX):
                raise InvalidMessageError("retry group topic is not supported for batching")
            props = msg.wire_properties()
            msg_id = props.get(MessageConst.UNIQ_KEY) or self._new_id()
            props[MessageConst.UNIQ_KEY] = msg_id
            ids.append(msg_id)
            entries.append(BatchEntry(body=bytes(msg.body), flag=msg.flag, properties=props))
        body = encode_batch(entries)
        if len(body) > self.config.max_message_size:
            raise InvalidMessageError(
                f"the batch body size {len(body)} is over max {self.config.max_message_size}"
            )
        wait = "true" if msgs[0].wait_store_msg_ok else "false"
        return _Prepared(topic, body, 0, 0, {MessageConst.WAIT: wait}, ",".join(ids), batch=True)

    def _header(self, p: _Prepared, mq: MessageQueue) -> SendMessageRequestHeaderV2:
        return SendMessageRequestHeaderV2(
            producer_group=self.group,
            topic=p.topic,
            default_topic=AUTO_CREATE_TOPIC,
            default_topic_queue_nums=DEFAULT_TOPIC_QUEUE_NUMS,
            queue_id=mq.queue_id,
            sys_flag=p.sys_flag,
            born_timestamp=_now_ms(),
            flag=p.flag,
            properties=properties_to_string(p.properties),
            reconsume_times=p.reconsume_times if p.reconsume_times is not None else 0,
            unit_mode=False,
            max_reconsume_times=p.max_reconsume_times,
            batch=p.batch,
            bname=mq.broker_name,
        )

    # ------------------------------------------------------------ sending

    async def _send_to(self, p: _Prepared, mq: MessageQueue, timeout: float) -> SendResult:
        addr = await self.instance.find_broker_addr(mq.broker_name, p.topic)
        code, head = await api.send_message(
            self.instance.remoting, addr, self._header(p, mq), p.body, timeout
        )
        return SendResult(
            status=_STATUS[code],
            msg_id=p.msg_id,
            offset_msg_id=head.msg_id,
            message_queue=MessageQueue(
                topic=p.topic, broker_name=mq.broker_name, queue_id=head.queue_id
            ),
            queue_offset=head.queue_offset,
            region_id=head.msg_region or "DefaultRegion",
            trace_on=head.trace_on if head.trace_on is not None else True,
        )

    def _record(self, broker: str, began: float, *, failed: bool) -> None:
        if self.config.latency_fault_enable:
            latency = int((trio.current_time() - began) * 1000)
            self.fault.update(broker, latency, isolation=failed, now_ms=_clock_ms())

    async def _send_with_retries(
        self,
        p: _Prepared,
        timeout: float | None,
        choose: Callable[[TopicPublishInfo, str | None], MessageQueue],
        attempts: int,
    ) -> SendResult:
        timeout = self.config.send_timeout if timeout is None else timeout
        start = trio.current_time()
        deadline = start + timeout
        info = await self.instance.publish_info(p.topic)
        last_broker: str | None = None
        brokers_sent: list[str] = []
        last_error: Exception | None = None
        for _ in range(attempts):
            remaining = deadline - trio.current_time()
            if remaining <= 0:
                raise ClientTimeoutError(
                    f"send to topic {p.topic!r} timed out after {timeout:.3f}s"
                    + (f" (last error: {last_error})" if last_error else "")
                )
            mq = choose(info, last_broker)
            last_broker = mq.broker_name
            brokers_sent.append(mq.broker_name)
            began = trio.current_time()
            try:
                result = await self._send_to(p, mq, remaining)
            except BrokerError as exc:
                self._record(mq.broker_name, began, failed=True)
                if exc.code not in RETRY_RESPONSE_CODES:
                    raise
                last_error = exc
                continue
            except ClientError as exc:
                self._record(mq.broker_name, began, failed=True)
                last_error = exc
                continue
            self._record(mq.broker_name, began, failed=False)
            if (
                result.status is not SendStatus.SEND_OK
                and self.config.retry_another_broker_when_not_store_ok
            ):
                last_error = ClientError(f"broker {mq.broker_name} answered {result.status.value}")
                continue
            return result
        elapsed = trio.current_time() - start
        if isinstance(last_error, ClientTimeoutError) and elapsed >= timeout:
            raise last_error
        raise ClientError(
            f"send [{attempts}] times, still failed, cost [{int(elapsed * 1000)}]ms, "
            f"topic: {p.topic}, brokers sent: {brokers_sent}: {last_error}"
        ) from last_error

    def _round_robin(self, info: TopicPublishInfo, last_broker: str | None) -> MessageQueue:
        fault = self.fault if self.config.latency_fault_enable else None
        return select_queue(info, last_broker, fault, _clock_ms())

    async def send(self, msg: Message, *, timeout: float | None = None) -> SendResult:
        return await self._send_with_retries(
            self._prepare(msg), timeout, self._round_robin, self._attempts
        )

    async def send_to_queue(
        self, msg: Message, mq: MessageQueue, *, timeout: float | None = None
    ) -> SendResult:
        """Send to one given queue: a single attempt, as Java's send(msg, mq)."""
        if mq.topic != msg.topic:
            raise InvalidMessageError(
                f"message topic {msg.topic!r} is not the queue's {mq.topic!r}"
            )
        return await self._send_with_retries(self._prepare(msg), timeout, lambda _i, _b: mq, 1)

    async def send_batch(
        self, msgs: Sequence[Message], *, timeout: float | None = None
    ) -> SendResult:
        return await self._send_with_retries(
            self._prepare_batch(msgs), timeout, self._round_robin, self._attempts
        )

    async def send_orderly(
        self,
        msg: Message,
        *,
        selector: QueueSelector | None = None,
        arg: Any = None,
        sharding_key: str | None = None,
        timeout: float | None = None,
    ) -> SendResult:
        """Send to the queue ``selector(queues, msg, arg)`` picks, or by ``sharding_key`` hash.

        One attempt only: retrying on another queue would break the order.
        """
        if (selector is None) == (sharding_key is None):
            raise InvalidMessageError("give exactly one of selector or sharding_key")
        if sharding_key is not None:
            msg = attrs.evolve(
                msg, properties={**msg.properties, MessageConst.SHARDINGKEY: sharding_key}
            )
            selector, arg = select_by_hash, sharding_key
        assert selector is not None
        info = await self.instance.publish_info(msg.topic)
        mq = selector(list(info.queues), msg, arg)
        if mq not in info.queues:
            raise InvalidMessageError(f"the selector returned a queue not in the route: {mq}")
        return await self.send_to_queue(msg, mq, timeout=timeout)

    async def send_oneway(self, msg: Message) -> None:
        """One attempt, no answer awaited."""
        p = self._prepare(msg)
        info = await self.instance.publish_info(p.topic)
        mq = self._round_robin(info, None)
        addr = await self.instance.find_broker_addr(mq.broker_name, p.topic)
        await api.send_message_oneway(self.instance.remoting, addr, self._header(p, mq), p.body)

    async def send_async(
        self, msg: Message, callback: SendCallback, *, timeout: float | None = None
    ) -> None:
        """Start a send in the client's nursery; ``callback`` gets the SendResult or the error.

        Returns once the send is started; waits while ``max_async_in_flight`` sends run.
        """
        p = self._prepare(msg)  # invalid messages fail here, in the caller
        await self._async_limit.acquire()
        self.instance.nursery.start_soon(self._run_async, p, callback, timeout)

    async def _run_async(self, p: _Prepared, callback: SendCallback, timeout: float | None) -> None:
        outcome: SendResult | Exception
        try:
            outcome = await self._send_with_retries(p, timeout, self._round_robin, self._attempts)
        except ClientError as exc:
            outcome = exc
        finally:
            self._async_limit.release()
        try:
            callback(outcome)
        except Exception:
            log.exception("send callback failed")


class Producer:
    """A producer (Java's DefaultMQProducer).

        async with Producer("group", namesrv="127.0.0.1:9876") as producer:
            result = await producer.send(Message("TopicTest", b"hello", tags="TagA"))

    ``group``: the producer group (what brokers list in producerConnection and ask for
    transaction check-backs); ``namesrv``: ``"host:port;host:port"`` or a list;
    ``config``: send timeout, retries, compression threshold, ... (``ProducerConfig``);
    ``instance_name``: with ``client_ip`` the client id ``clientIP@instanceName``.  Clients
    of one process with the same id share one client instance (connections, heartbeat,
    route refresh); the default is unique per producer, as Java's ``pid#nanoTime``.
    ``credentials``: sign requests for brokers with ``aclEnable=true``; ``tls``: True, or an
    ``ssl.SSLContext``, to talk TLS to name servers and brokers.

    Sends are valid inside the ``async with`` block only.
    """

    def __init__(
        self,
        group: str,
        *,
        namesrv: str | Sequence[str],
        config: ProducerConfig | None = None,
        instance_name: str | None = None,
        client_ip: str | None = None,
        credentials: SessionCredentials | None = None,
        tls: ssl.SSLContext | bool = False,
    ) -> None:
        if not group:
            raise ClientError("producer group must not be empty")
        self.group = group
        client = ClientConfig(
            namesrv_addrs=parse_namesrv(namesrv),
            instance_name=instance_name or unique_instance_name(),
        )
        if client_ip is not None:
            client.client_ip = client_ip
        client.credentials = credentials
        client.tls = tls_context(tls)
        self.client_config = client
        self.config = config or ProducerConfig()
        self._stack: AsyncExitStack | None = None
        self._core: ProducerCore | None = None

    @property
    def client_id(self) -> str:
        """``clientIP@instanceName``: producers and consumers with one id share a client."""
        return self.client_config.client_id

    @property
    def core(self) -> ProducerCore:
        """The send logic over the running client instance (ClientError if not started)."""
        if self._core is None:
            raise ClientError("the producer is not started: use 'async with Producer(...)'")
        return self._core

    async def __aenter__(self) -> Producer:
        """Join (or start) the client instance of this client id and register the group."""
        async with AsyncExitStack() as stack:
            inst = await stack.enter_async_context(shared_client_instance(self.client_config))
            inst.register_producer(self.group)
            stack.push_async_callback(self._unregister, inst)
            self._core = ProducerCore(inst, self.group, self.config)
            self._joined(inst, stack)
            # As Java's start: brokers an instance shared with others already knows learn of
            # this group now (transaction check-backs find it), not at the next 30 s round.
            await inst.heartbeat_all()
            self._stack = stack.pop_all()
        return self

    def _joined(self, inst: ClientInstance, stack: AsyncExitStack) -> None:
        """For subclasses: hook into the instance before the brokers learn of the group."""

    async def _unregister(self, inst: ClientInstance) -> None:
        inst.producer_groups.discard(self.group)
        with trio.move_on_after(inst.timeout, shield=True):
            await inst.unregister(producer_group=self.group, consumer_group=None)

    async def __aexit__(self, *exc: object) -> bool | None:
        stack, self._stack, self._core = self._stack, None, None
        assert stack is not None
        return await stack.__aexit__(*exc)  # type: ignore[arg-type]

    async def send(self, msg: Message, *, timeout: float | None = None) -> SendResult:
        """Send and wait for the broker's answer; on a failed attempt (connection, or a
        retryable broker code) up to ``retry_times`` more on another broker, all within
        ``timeout`` (default ``send_timeout``).  Raises ``ClientError`` subclasses."""
        return await self.core.send(msg, timeout=timeout)

    async def send_to_queue(
        self, msg: Message, mq: MessageQueue, *, timeout: float | None = None
    ) -> SendResult:
        """Send to the queue ``mq`` of ``msg``'s topic: one attempt, no other queue."""
        return await self.core.send_to_queue(msg, mq, timeout=timeout)

    async def send_batch(
        self, msgs: Sequence[Message], *, timeout: float | None = None
    ) -> SendResult:
        """Send messages of one topic as one batch (one queue, one answer); no delay levels
        and no retry topics in a batch, as Java's."""
        return await self.core.send_batch(msgs, timeout=timeout)

    async def send_orderly(
        self,
        msg: Message,
        *,
        selector: QueueSelector | None = None,
        arg: Any = None,
        sharding_key: str | None = None,
        timeout: float | None = None,
    ) -> SendResult:
        """Send to the queue ``selector(queues, msg, arg)`` picks, or the one
        ``sharding_key`` hashes to (Java's SelectMessageQueueByHash); one attempt only,
        since another queue would break the order."""
        return await self.core.send_orderly(
            msg, selector=selector, arg=arg, sharding_key=sharding_key, timeout=timeout
        )

    async def send_oneway(self, msg: Message) -> None:
        """Send without waiting for an answer (one attempt; nothing says it was stored)."""
        await self.core.send_oneway(msg)

    async def send_async(
        self, msg: Message, callback: SendCallback, *, timeout: float | None = None
    ) -> None:
        """Start a send in the background; ``callback`` gets the ``SendResult`` or the
        ``ClientError``.  Returns once started (waits while ``max_async_in_flight`` run)."""
        await self.core.send_async(msg, callback, timeout=timeout)

    async def queues(self, topic: str) -> list[MessageQueue]:
        """The writeable queues of ``topic`` (Java's fetchPublishMessageQueues)."""
        return list((await self.core.instance.publish_info(topic)).queues)
