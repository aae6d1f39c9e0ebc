"""Persisted tables and their wire forms (reference §3.3.5, §5.8): subscription groups, consumer
and delay offsets, the NameServer's KV config.

The offset tables have integer map keys, which Java writes bare; pass ``bare_int_keys=True`` to
``encode_body`` for byte-identical files.
"""

from __future__ import annotations

import attrs

from protocol.bodies.common import DataVersion


@attrs.frozen(kw_only=True)
class SubscriptionGroupConfig:
    group_name: str
    consume_enable: bool = True
    consume_from_min_enable: bool = True
    consume_broadcast_enable: bool = True
    retry_queue_nums: int = 1
    retry_max_times: int = 16
    broker_id: int = 0
    which_broker_when_consume_slowly: int = 1
    notify_consumer_ids_changed_enable: bool = True


@attrs.frozen(kw_only=True)
class SubscriptionGroupWrapper:
    subscription_group_table: dict[str, SubscriptionGroupConfig] = attrs.field(factory=dict)
    data_version: DataVersion = attrs.field(factory=DataVersion)


@attrs.frozen(kw_only=True)
class ConsumerOffsetSerializeWrapper:
    """``"topic@group"`` to (queueId to next offset to consume)."""

    offset_table: dict[str, dict[int, int]] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class DelayOffsetSerializeWrapper:
    """Delay level (1..18) to the next offset to deliver in ``SCHEDULE_TOPIC_XXXX``."""

    offset_table: dict[int, int] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class KVConfigSerializeWrapper:
    """The NameServer's ``kvConfig.json``: namespace to (key to value)."""

    config_table: dict[str, dict[str, str]] = attrs.field(factory=dict)
