"""The RPCs a client makes (Java's MQClientAPIImpl): header/body in, typed value out.

Every function takes the remoting client, an address and a timeout; remoting failures
become ``ClientTimeoutError`` / ``NotConnectedError`` and error response codes become
``BrokerError`` here, so the rest of the client sees one family of errors.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from actors.client.errors import BrokerError, ClientTimeoutError, NotConnectedError
from actors.remoting.client import RemotingClient
from actors.remoting.errors import RemotingError, RemotingTimeoutError
from protocol.bodies.common import MessageQueue
from protocol.bodies.heartbeat import (
    GetConsumerListByGroupResponseBody,
    LockBatchRequestBody,
    LockBatchResponseBody,
    UnlockBatchRequestBody,
)
from protocol.bodies.route import TopicRouteData
from protocol.codes import LanguageCode, RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.convert import decode_body, decode_header, encode_body, encode_header
from protocol.errors import ProtocolError
from protocol.headers.client import GetConsumerListByGroupRequestHeader
from protocol.headers.namesrv import GetRouteInfoRequestHeader
from protocol.headers.offset import (
    GetMaxOffsetRequestHeader,
    GetMaxOffsetResponseHeader,
    GetMinOffsetRequestHeader,
    GetMinOffsetResponseHeader,
    QueryConsumerOffsetRequestHeader,
    QueryConsumerOffsetResponseHeader,
    SearchOffsetRequestHeader,
    SearchOffsetResponseHeader,
    UpdateConsumerOffsetRequestHeader,
)
from protocol.headers.pull import PullMessageRequestHeader, PullMessageResponseHeader
from protocol.headers.send import (
    ConsumerSendMsgBackRequestHeader,
    SendMessageRequestHeaderV2,
    SendMessageResponseHeader,
)
from protocol.message import MessageExt, decode_records

LANGUAGE = LanguageCode.PYTHON


def request(code: int, header: Any = None, body: bytes = b"") -> RemotingCommand:
    ext = encode_header(header) if header is not None else {}
    return RemotingCommand.request(code, ext, body, language=LANGUAGE)


async def invoke(
    client: RemotingClient, addr: str, cmd: RemotingCommand, timeout: float
) -> RemotingCommand:
    try:
        return await client.invoke(addr, cmd, timeout)
    except RemotingTimeoutError as exc:
        raise ClientTimeoutError(str(exc)) from exc
    except RemotingError as exc:
        raise NotConnectedError(str(exc)) from exc


async def invoke_oneway(client: RemotingClient, addr: str, cmd: RemotingCommand) -> None:
    try:
        await client.invoke_oneway(addr, cmd)
    except RemotingError as exc:
        raise NotConnectedError(str(exc)) from exc


def _expect(reply: RemotingCommand, addr: str, *ok: int) -> RemotingCommand:
    if reply.code not in (ok or (ResponseCode.SUCCESS,)):
        raise BrokerError(reply.code, reply.remark, addr)
    return reply


def _header(cls: type[Any], reply: RemotingCommand, addr: str) -> Any:
    try:
        return decode_header(cls, reply.ext_fields)
    except ProtocolError as exc:
        raise BrokerError(ResponseCode.SYSTEM_ERROR, f"bad response header: {exc}", addr) from exc


# ---------------------------------------------------------------- name server


async def get_route(
    client: RemotingClient, addr: str, topic: str, timeout: float
) -> TopicRouteData | None:
    """The topic's route, or None if the name server says TOPIC_NOT_EXIST."""
    cmd = request(RequestCode.GET_ROUTEINFO_BY_TOPIC, GetRouteInfoRequestHeader(topic=topic))
    reply = await invoke(client, addr, cmd, timeout)
    if reply.code == ResponseCode.TOPIC_NOT_EXIST:
        return None
    _expect(reply, addr)
    try:
        return decode_body(TopicRouteData, reply.body)
    except ProtocolError as exc:
        raise BrokerError(ResponseCode.SYSTEM_ERROR, f"bad route body: {exc}", addr) from exc


# ---------------------------------------------------------------- send


class SendCode(enum.IntEnum):
    """Response codes that still mean 'stored' (with a weaker guarantee)."""

    SUCCESS = ResponseCode.SUCCESS
    FLUSH_DISK_TIMEOUT = ResponseCode.FLUSH_DISK_TIMEOUT
    FLUSH_SLAVE_TIMEOUT = ResponseCode.FLUSH_SLAVE_TIMEOUT
    SLAVE_NOT_AVAILABLE = ResponseCode.SLAVE_NOT_AVAILABLE


async def send_message(
    client: RemotingClient,
    addr: str,
    header: SendMessageRequestHeaderV2,
    body: bytes,
    timeout: float,
) -> tuple[SendCode, SendMessageResponseHeader]:
    code = RequestCode.SEND_BATCH_MESSAGE if header.batch else RequestCode.SEND_MESSAGE_V2
    reply = await invoke(client, addr, request(code, header, body), timeout)
    _expect(reply, addr, *SendCode)
    return SendCode(reply.code), _header(SendMessageResponseHeader, reply, addr)


async def send_message_oneway(
    client: RemotingClient, addr: str, header: SendMessageRequestHeaderV2, body: bytes
) -> None:
    code = RequestCode.SEND_BATCH_MESSAGE if header.batch else RequestCode.SEND_MESSAGE_V2
    await invoke_oneway(client, addr, request(code, header, body))


async def send_back(
    client: RemotingClient, addr: str, header: ConsumerSendMsgBackRequestHeader, timeout: float
) -> None:
    cmd = request(RequestCode.CONSUMER_SEND_MSG_BACK, header)
    _expect(await invoke(client, addr, cmd, timeout), addr)


# ---------------------------------------------------------------- pull


class PullStatus(enum.Enum):
    FOUND = "FOUND"
    NO_NEW_MSG = "NO_NEW_MSG"
    NO_MATCHED_MSG = "NO_MATCHED_MSG"
    OFFSET_ILLEGAL = "OFFSET_ILLEGAL"


_PULL_STATUS = {
    ResponseCode.SUCCESS: PullStatus.FOUND,
    ResponseCode.PULL_NOT_FOUND: PullStatus.NO_NEW_MSG,
    ResponseCode.PULL_RETRY_IMMEDIATELY: PullStatus.NO_MATCHED_MSG,
    ResponseCode.PULL_OFFSET_MOVED: PullStatus.OFFSET_ILLEGAL,
}


@attrs.frozen
class PullResult:
    status: PullStatus
    next_begin_offset: int
    min_offset: int
    max_offset: int
    suggest_which_broker_id: int
    messages: list[MessageExt]


async def pull_message(
    client: RemotingClient, addr: str, header: PullMessageRequestHeader, timeout: float
) -> PullResult:
    reply = await invoke(client, addr, request(RequestCode.PULL_MESSAGE, header), timeout)
    status = _PULL_STATUS.get(reply.code)  # type: ignore[call-overload]
    if status is None:
        raise BrokerError(reply.code, reply.remark, addr)
    head: PullMessageResponseHeader = _header(PullMessageResponseHeader, reply, addr)
    messages: list[MessageExt] = []
    if status is PullStatus.FOUND and reply.body:
        try:
            messages = decode_records(reply.body)
        except ProtocolError as exc:
            raise BrokerError(ResponseCode.SYSTEM_ERROR, f"bad pull body: {exc}", addr) from exc
    return PullResult(
        status,
        head.next_begin_offset,
        head.min_offset,
        head.max_offset,
        head.suggest_which_broker_id,
        messages,
    )


# ---------------------------------------------------------------- offsets


async def query_consumer_offset(
    client: RemotingClient, addr: str, header: QueryConsumerOffsetRequestHeader, timeout: float
) -> int | None:
    """The stored offset, or None when the broker has none (QUERY_NOT_FOUND)."""
    cmd = request(RequestCode.QUERY_CONSUMER_OFFSET, header)
    reply = await invoke(client, addr, cmd, timeout)
    if reply.code == ResponseCode.QUERY_NOT_FOUND:
        return None
    _expect(reply, addr)
    head: QueryConsumerOffsetResponseHeader = _header(
        QueryConsumerOffsetResponseHeader, reply, addr
    )
    return head.offset


async def update_consumer_offset(
    client: RemotingClient,
    addr: str,
    header: UpdateConsumerOffsetRequestHeader,
    timeout: float | None,
) -> None:
    """Oneway when ``timeout`` is None (the periodic path), else wait for the answer."""
    cmd = request(RequestCode.UPDATE_CONSUMER_OFFSET, header)
    if timeout is None:
        await invoke_oneway(client, addr, cmd)
    else:
        _expect(await invoke(client, addr, cmd, timeout), addr)


async def get_max_offset(
    client: RemotingClient, addr: str, header: GetMaxOffsetRequestHeader, timeout: float
) -> int:
    reply = _expect(
        await invoke(client, addr, request(RequestCode.GET_MAX_OFFSET, header), timeout), addr
    )
    return int(_header(GetMaxOffsetResponseHeader, reply, addr).offset)


async def get_min_offset(
    client: RemotingClient, addr: str, header: GetMinOffsetRequestHeader, timeout: float
) -> int:
    reply = _expect(
        await invoke(client, addr, request(RequestCode.GET_MIN_OFFSET, header), timeout), addr
    )
    return int(_header(GetMinOffsetResponseHeader, reply, addr).offset)


async def search_offset(
    client: RemotingClient, addr: str, header: SearchOffsetRequestHeader, timeout: float
) -> int:
    cmd = request(RequestCode.SEARCH_OFFSET_BY_TIMESTAMP, header)
    reply = _expect(await invoke(client, addr, cmd, timeout), addr)
    return int(_header(SearchOffsetResponseHeader, reply, addr).offset)


# ---------------------------------------------------------------- group membership and locks


async def get_consumer_ids(
    client: RemotingClient, addr: str, group: str, timeout: float
) -> list[str]:
    cmd = request(
        RequestCode.GET_CONSUMER_LIST_BY_GROUP,
        GetConsumerListByGroupRequestHeader(consumer_group=group),
    )
    reply = _expect(await invoke(client, addr, cmd, timeout), addr)
    try:
        return list(decode_body(GetConsumerListByGroupResponseBody, reply.body).consumer_id_list)
    except ProtocolError as exc:
        raise BrokerError(ResponseCode.SYSTEM_ERROR, f"bad consumer list: {exc}", addr) from exc


async def lock_batch(
    client: RemotingClient, addr: str, body: LockBatchRequestBody, timeout: float
) -> set[MessageQueue]:
    """The queues the broker granted."""
    cmd = request(RequestCode.LOCK_BATCH_MQ, None, encode_body(body))
    reply = _expect(await invoke(client, addr, cmd, timeout), addr)
    try:
        return set(decode_body(LockBatchResponseBody, reply.body).lock_ok_mq_set)
    except ProtocolError as exc:
        raise BrokerError(ResponseCode.SYSTEM_ERROR, f"bad lock reply: {exc}", addr) from exc


async def unlock_batch(
    client: RemotingClient, addr: str, body: UnlockBatchRequestBody, timeout: float | None
) -> None:
    cmd = request(RequestCode.UNLOCK_BATCH_MQ, None, encode_body(body))
    if timeout is None:
        await invoke_oneway(client, addr, cmd)
    else:
        _expect(await invoke(client, addr, cmd, timeout), addr)
