"""The transaction producer (Java's TransactionMQProducer), reference §7.6.

``send_message_in_transaction(msg, arg)`` sends ``msg`` as a half message (``TRAN_MSG``,
``PGROUP``), runs the user's async local transaction, and ends the transaction with the state
it returns (END_TRANSACTION, oneway, to the broker that stored the half message).  A state of
``UNKNOW`` (or an exception in the callback) leaves the message pending: the broker asks again
later with CHECK_TRANSACTION_STATE, which this producer answers with the user's async check
callback.  Check-backs run in the client's nursery, at most ``max_checks_in_flight`` at once;
one over that is dropped (the broker asks again next round), as Java's bounded check executor.

    async def execute(msg, arg): ...; return LocalTransactionState.COMMIT_MESSAGE
    async def check(msg): return LocalTransactionState.COMMIT_MESSAGE
    async with TransactionProducer("pg", namesrv=..., execute=execute, check=check) as p:
        result = await p.send_message_in_transaction(Message("TopicTest", b"..."), arg)
"""

from __future__ import annotations

import enum
import logging
import re
import ssl
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any

import attrs
import trio

from actors.client.errors import ClientError
from actors.client.instance import CLIENT_INNER_PRODUCER_GROUP, ClientInstance
from actors.client.message import Message, MessageExt, SendResult, SendStatus
from actors.client.producer import Producer, ProducerConfig
from actors.remoting.router import Channel
from protocol.acl import SessionCredentials
from protocol.codes import LanguageCode, RequestCode
from protocol.command import RemotingCommand
from protocol.convert import encode_header
from protocol.headers.transaction import (
    CheckTransactionStateRequestHeader,
    EndTransactionRequestHeader,
)
from protocol.message import MessageConst, MessageSysFlag
from protocol.msgid import decode_offset_msg_id

log = logging.getLogger(__name__)

_GROUP_RE = re.compile(r"^[%|a-zA-Z0-9_-]+$")
MAX_GROUP_LENGTH = 255


class LocalTransactionState(enum.Enum):
    """What a local transaction (or a check-back) decided about its half message."""

    COMMIT_MESSAGE = "COMMIT_MESSAGE"
    ROLLBACK_MESSAGE = "ROLLBACK_MESSAGE"
    UNKNOW = "UNKNOW"  # sic: Java's name


_WIRE = {
    LocalTransactionState.COMMIT_MESSAGE: MessageSysFlag.TRANSACTION_COMMIT,
    LocalTransactionState.ROLLBACK_MESSAGE: MessageSysFlag.TRANSACTION_ROLLBACK,
    LocalTransactionState.UNKNOW: MessageSysFlag.TRANSACTION_NOT_TYPE,
}

ExecuteLocal = Callable[[Message, Any], Awaitable[LocalTransactionState]]
CheckLocal = Callable[[MessageExt], Awaitable[LocalTransactionState]]


@attrs.frozen
class TransactionSendResult:
    """The half message's send result and the local transaction's state."""

    send_result: SendResult
    local_state: LocalTransactionState

    @property
    def transaction_id(self) -> str:
        """The transaction's id: the half message's UNIQ_KEY, as Java's."""
        return self.send_result.msg_id

    @property
    def status(self) -> SendStatus:
        """The half message's send status."""
        return self.send_result.status


def check_group(group: str) -> None:
    if not group:
        raise ClientError("producer group must not be empty")
    if len(group) > MAX_GROUP_LENGTH:
        raise ClientError(f"the producer group is longer than {MAX_GROUP_LENGTH} characters")
    if not _GROUP_RE.match(group):
        raise ClientError(f"the producer group {group!r} contains illegal characters")
    if group in (CLIENT_INNER_PRODUCER_GROUP, "DEFAULT_PRODUCER"):
        # Java: "producerGroup can not equal DEFAULT_PRODUCER, please specify another one."
        raise ClientError(f"the producer group {group!r} is reserved: please specify another one")


def end_request(
    group: str, header_offsets: tuple[int, int], state: LocalTransactionState, **ids: Any
) -> RemotingCommand:
    table_offset, commit_log_offset = header_offsets
    header = EndTransactionRequestHeader(
        producer_group=group,
        tran_state_table_offset=table_offset,
        commit_log_offset=commit_log_offset,
        commit_or_rollback=_WIRE[state],
        **ids,
    )
    return RemotingCommand.request(
        RequestCode.END_TRANSACTION,
        encode_header(header),
        oneway=True,
        language=LanguageCode.PYTHON,
    )


async def _run_local(
    fn: Callable[..., Awaitable[LocalTransactionState]], *args: Any
) -> tuple[LocalTransactionState, str | None]:
    """The callback's state; an exception or a wrong value means UNKNOW (Java does the same)."""
    try:
        state = await fn(*args)
    except Exception as exc:
        log.warning("local transaction callback failed: %r", exc)
        return LocalTransactionState.UNKNOW, f"{type(exc).__name__}: {exc}"
    if not isinstance(state, LocalTransactionState):
        log.warning("local transaction callback returned %r, not a LocalTransactionState", state)
        return LocalTransactionState.UNKNOW, None
    return state, None


class TransactionProducer(Producer):
    """A transaction producer (Java's TransactionMQProducer): a Producer whose
    ``send_message_in_transaction`` sends a half message, runs ``execute(msg, arg)`` and
    commits or rolls back with the state it returns; ``check(msg)`` answers the broker's
    check-backs of transactions left UNKNOW.  Both are async and return a
    ``LocalTransactionState`` (an exception counts as UNKNOW).  At most
    ``max_checks_in_flight`` check-backs run at once; the other arguments are Producer's.
    """

    def __init__(
        self,
        group: str,
        *,
        namesrv: str | Sequence[str],
        execute: ExecuteLocal,
        check: CheckLocal,
        config: ProducerConfig | None = None,
        instance_name: str | None = None,
        client_ip: str | None = None,
        max_checks_in_flight: int = 64,
        credentials: SessionCredentials | None = None,
        tls: ssl.SSLContext | bool = False,
    ) -> None:
        check_group(group)
        super().__init__(
            group,
            namesrv=namesrv,
            config=config,
            instance_name=instance_name,
            client_ip=client_ip,
            credentials=credentials,
            tls=tls,
        )
        self._execute = execute
        self._check = check
        self._max_checks = max_checks_in_flight
        self._checks_in_flight = 0

    async def __aenter__(self) -> TransactionProducer:
        """Start as a Producer that answers the brokers' check-backs for this group."""
        await super().__aenter__()
        return self

    def _joined(self, inst: ClientInstance, stack: AsyncExitStack) -> None:
        # Before the first heartbeat: a broker may ask about pending halves at once.  One
        # per group and instance: register_producer refused a second producer of the group.
        inst.transaction_checkers[self.group] = self._on_check
        stack.callback(inst.transaction_checkers.pop, self.group, None)

    # ------------------------------------------------------------ sending

    async def send_message_in_transaction(
        self, msg: Message, arg: Any = None, *, timeout: float | None = None
    ) -> TransactionSendResult:
        """Half message, local transaction, END_TRANSACTION: the send's result and the state.

        A half message the broker did not store (the send raised) is not a transaction:
        the error propagates and the local transaction does not run.  A stored one that is
        not SEND_OK (flush timeout) is rolled back without running it, as in Java.
        """
        if msg.delay_level:
            # Java clears the delay of a transactional message
            msg = attrs.evolve(msg, delay_level=0)
        props = dict(msg.properties)
        props.pop(MessageConst.DELAY, None)
        props[MessageConst.TRAN_MSG] = "true"
        props[MessageConst.PGROUP] = self.group
        half = attrs.evolve(msg, properties=props)
        sent = await self.core.send(half, timeout=timeout)
        remark = None
        if sent.status is SendStatus.SEND_OK:
            user_msg = attrs.evolve(
                msg,
                properties={
                    **msg.properties,
                    MessageConst.UNIQ_KEY: sent.msg_id,
                    MessageConst.TRANSACTION_ID: sent.msg_id,
                },
            )
            state, remark = await _run_local(self._execute, user_msg, arg)
        else:
            state = LocalTransactionState.ROLLBACK_MESSAGE
        await self._end(sent, state, remark)
        return TransactionSendResult(sent, state)

    async def _end(
        self, sent: SendResult, state: LocalTransactionState, remark: str | None
    ) -> None:
        inst = self.core.instance
        _, offset = decode_offset_msg_id(sent.offset_msg_id)
        addr = await inst.find_broker_addr(sent.message_queue.broker_name, sent.message_queue.topic)
        req = end_request(
            self.group,
            (sent.queue_offset, offset),
            state,
            msg_id=sent.msg_id,
            transaction_id=sent.msg_id,
            from_transaction_check=False,
        )
        if remark:
            req = attrs.evolve(req, remark=remark)
        try:
            await inst.remoting.invoke_oneway(addr, req)
        except Exception as exc:  # the broker's check-back settles it later
            log.warning("END_TRANSACTION to %s failed: %r", addr, exc)

    # ------------------------------------------------------------ check-backs

    def _on_check(
        self, channel: Channel, header: CheckTransactionStateRequestHeader, msg: MessageExt
    ) -> None:
        if self._checks_in_flight >= self._max_checks:
            log.warning(
                "too many transaction checks in flight; %s asked again later", header.msg_id
            )
            return
        self._checks_in_flight += 1
        self.core.instance.nursery.start_soon(self._answer_check, channel, header, msg)

    async def _answer_check(
        self, channel: Channel, header: CheckTransactionStateRequestHeader, msg: MessageExt
    ) -> None:
        try:
            uniq = msg.properties.get(MessageConst.UNIQ_KEY)
            if uniq:
                msg.properties.setdefault(MessageConst.TRANSACTION_ID, uniq)
            state, remark = await _run_local(self._check, msg)
            req = end_request(
                self.group,
                (header.tran_state_table_offset, header.commit_log_offset),
                state,
                msg_id=uniq or header.msg_id or "",
                transaction_id=header.transaction_id,
                from_transaction_check=True,
            )
            if remark:
                req = attrs.evolve(req, remark=remark)
            if state is LocalTransactionState.UNKNOW:
                log.info("transaction %s still unknown; the broker asks again", uniq)
            # on the connection the check came on: that is the broker that holds the half
            with trio.move_on_after(self.core.instance.timeout):
                await channel.send(req)
        finally:
            self._checks_in_flight -= 1


__all__ = [
    "CheckLocal",
    "ExecuteLocal",
    "LocalTransactionState",
    "TransactionProducer",
    "TransactionSendResult",
]
