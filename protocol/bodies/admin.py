"""Admin and statistics bodies (reference §3.3.5).

Several are keyed by ``MessageQueue``; the body converter reads and writes those keys as JSON
objects in key position, the only form Java's fastjson parses back (§3.4 quirk 2).
"""

from __future__ import annotations

from typing import Any

import attrs

from protocol.bodies.common import (
    ConsumeFromWhere,
    ConsumeType,
    DataVersion,
    MessageModel,
    MessageQueue,
)
from protocol.bodies.heartbeat import SubscriptionData
from protocol.codes import LanguageCode


@attrs.frozen(kw_only=True)
class OffsetWrapper:
    broker_offset: int = 0
    consumer_offset: int = 0
    last_timestamp: int = 0


@attrs.frozen(kw_only=True)
class ConsumeStats:
    offset_table: dict[MessageQueue, OffsetWrapper] = attrs.field(factory=dict)
    consume_tps: float = 0.0


@attrs.frozen(kw_only=True)
class TopicOffset:
    min_offset: int = 0
    max_offset: int = 0
    last_update_timestamp: int = 0


@attrs.frozen(kw_only=True)
class TopicStatsTable:
    offset_table: dict[MessageQueue, TopicOffset] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class Connection:
    client_id: str
    client_addr: str
    language: LanguageCode
    version: int = 0


@attrs.frozen(kw_only=True)
class ConsumerConnection:
    connection_set: tuple[Connection, ...] = ()
    subscription_table: dict[str, SubscriptionData] = attrs.field(factory=dict)
    consume_type: ConsumeType | None = None
    message_model: MessageModel | None = None
    consume_from_where: ConsumeFromWhere | None = None


@attrs.frozen(kw_only=True)
class ProducerConnection:
    connection_set: tuple[Connection, ...] = ()


@attrs.frozen(kw_only=True)
class ResetOffsetBody:
    offset_table: dict[MessageQueue, int] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class GetConsumerStatusBody:
    message_queue_table: dict[MessageQueue, int] = attrs.field(factory=dict)
    consumer_table: dict[str, dict[MessageQueue, int]] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class QueueTimeSpan:
    message_queue: MessageQueue
    min_time_stamp: int = 0
    max_time_stamp: int = 0
    consume_time_stamp: int = 0
    delay_time: int = 0


@attrs.frozen(kw_only=True)
class QueryConsumeTimeSpanBody:
    consume_time_span_set: tuple[QueueTimeSpan, ...] = ()


@attrs.frozen(kw_only=True)
class QueryCorrectionOffsetBody:
    correction_offsets: dict[int, int] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class ConsumerRunningInfo:
    """Only the outline: the reference names this body without specifying ProcessQueueInfo or
    ConsumeStatus, so their entries stay plain JSON objects."""

    properties: dict[str, str] = attrs.field(factory=dict)
    subscription_set: tuple[SubscriptionData, ...] = ()
    mq_table: dict[MessageQueue, dict[str, Any]] = attrs.field(factory=dict)
    status_table: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    jstack: str | None = None


@attrs.frozen(kw_only=True)
class ClusterAclVersionInfo:
    """GET_BROKER_CLUSTER_ACL_INFO (code 52); fields read from the 4.9 source, not the reference."""

    broker_name: str | None = None
    broker_addr: str | None = None
    cluster_name: str | None = None
    acl_config_data_version: DataVersion | None = None  # deprecated in 4.9, still written
    all_acl_config_data_version: dict[str, DataVersion] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class BrokerStatsItem:
    sum: int = 0
    tps: float = 0.0
    avgpt: float = 0.0


@attrs.frozen(kw_only=True)
class BrokerStatsData:
    """VIEW_BROKER_STATS_DATA (315): one stats item over the last minute, hour and day."""

    stats_minute: BrokerStatsItem = attrs.Factory(BrokerStatsItem)
    stats_hour: BrokerStatsItem = attrs.Factory(BrokerStatsItem)
    stats_day: BrokerStatsItem = attrs.Factory(BrokerStatsItem)


# GET_BROKER_HA_STATUS (RocketMQ 5's request 907; 4.9 reports no HA state anywhere): fields as
# RocketMQ 5's HARuntimeInfo serializes them (its HAClientRuntimeInfo.isActivated has no getter,
# so fastjson never writes it).
@attrs.frozen(kw_only=True)
class HAConnectionRuntimeInfo:
    addr: str = ""
    slave_ack_offset: int = 0
    diff: int = 0
    in_sync: bool = False
    transferred_byte_in_second: int = 0
    transfer_from_where: int = 0


@attrs.frozen(kw_only=True)
class HAClientRuntimeInfo:
    master_addr: str | None = None
    transferred_byte_in_second: int = 0
    max_offset: int = 0
    last_read_timestamp: int = 0
    last_write_timestamp: int = 0
    master_flush_offset: int = 0


@attrs.frozen(kw_only=True)
class HARuntimeInfo:
    master: bool = False
    master_commit_log_max_offset: int = 0
    in_sync_slave_nums: int = 0
    ha_connection_info: tuple[HAConnectionRuntimeInfo, ...] = ()
    ha_client_runtime_info: HAClientRuntimeInfo = attrs.Factory(HAClientRuntimeInfo)
