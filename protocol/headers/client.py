"""Client management headers, including the broker-to-client requests (reference §3.2.6)."""

from __future__ import annotations

import attrs

from protocol.convert import wire


@attrs.frozen(kw_only=True)
class UnregisterClientRequestHeader:
    client_id: str = attrs.field(metadata=wire("clientID"))
    producer_group: str | None = None
    consumer_group: str | None = None


@attrs.frozen(kw_only=True)
class GetConsumerListByGroupRequestHeader:
    consumer_group: str


@attrs.frozen(kw_only=True)
class NotifyConsumerIdsChangedRequestHeader:
    consumer_group: str


@attrs.frozen(kw_only=True)
class GetConsumerRunningInfoRequestHeader:
    consumer_group: str
    client_id: str
    jstack_enable: bool = False


@attrs.frozen(kw_only=True)
class ConsumeMessageDirectlyResultRequestHeader:
    consumer_group: str
    client_id: str | None = None
    msg_id: str | None = None
    broker_name: str | None = None


@attrs.frozen(kw_only=True)
class ResetOffsetRequestHeader:
    """Codes 220 (admin to broker) and 222 (broker to client)."""

    topic: str
    group: str
    timestamp: int
    is_force: bool


@attrs.frozen(kw_only=True)
class GetConsumerStatusRequestHeader:
    """Codes 221 (admin to broker) and 223 (broker to client)."""

    topic: str
    group: str
    client_addr: str | None = None
