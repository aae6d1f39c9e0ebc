"""Admin and ACL headers (reference §3.2.6)."""

from __future__ import annotations

import attrs

from protocol.bodies.common import TopicFilterType
from protocol.convert import Int32


@attrs.frozen(kw_only=True)
class CreateTopicRequestHeader:
    topic: str
    default_topic: str
    read_queue_nums: Int32
    write_queue_nums: Int32
    perm: Int32
    topic_filter_type: TopicFilterType
    topic_sys_flag: Int32 | None = None
    # Java declares it @CFNotNull with default false; Java tools always send it, we accept its absence.
    order: bool = False


@attrs.frozen(kw_only=True)
class DeleteTopicRequestHeader:
    topic: str


@attrs.frozen(kw_only=True)
class DeleteSubscriptionGroupRequestHeader:
    group_name: str
    remove_offset: bool = False


@attrs.frozen(kw_only=True)
class GetConsumeStatsRequestHeader:
    consumer_group: str
    topic: str | None = None


@attrs.frozen(kw_only=True)
class GetTopicStatsInfoRequestHeader:
    topic: str


@attrs.frozen(kw_only=True)
class GetConsumerConnectionListRequestHeader:
    consumer_group: str


@attrs.frozen(kw_only=True)
class GetProducerConnectionListRequestHeader:
    producer_group: str


@attrs.frozen(kw_only=True)
class GetBrokerConfigResponseHeader:
    version: str  # DataVersion JSON of the broker config


@attrs.frozen(kw_only=True)
class QueryTopicConsumeByWhoRequestHeader:
    topic: str


@attrs.frozen(kw_only=True)
class QueryConsumeTimeSpanRequestHeader:
    topic: str
    group: str


@attrs.frozen(kw_only=True)
class QueryCorrectionOffsetHeader:
    compare_group: str
    topic: str
    filter_groups: str | None = None


@attrs.frozen(kw_only=True)
class CloneGroupOffsetRequestHeader:
    src_group: str
    dest_group: str
    topic: str | None = None
    offline: bool = False


@attrs.frozen(kw_only=True)
class ViewBrokerStatsDataRequestHeader:
    stats_name: str
    stats_key: str


@attrs.frozen(kw_only=True)
class GetConsumeStatsInBrokerHeader:
    is_order: bool


@attrs.frozen(kw_only=True)
class QueryConsumeQueueRequestHeader:
    """No field is annotated in Java: primitives default to 0, Strings to null."""

    topic: str | None = None
    queue_id: Int32 = 0
    index: int = 0
    count: Int32 = 0
    consumer_group: str | None = None


@attrs.frozen(kw_only=True)
class GetBrokerAclConfigResponseHeader:
    version: str
    broker_name: str
    broker_addr: str
    cluster_name: str
    all_acl_file_version: str | None = None


@attrs.frozen(kw_only=True)
class CreateAccessConfigRequestHeader:
    access_key: str
    secret_key: str | None = None
    white_remote_address: str | None = None
    admin: bool = False
    default_topic_perm: str | None = None
    default_group_perm: str | None = None
    topic_perms: str | None = None  # comma-joined
    group_perms: str | None = None  # comma-joined


@attrs.frozen(kw_only=True)
class DeleteAccessConfigRequestHeader:
    access_key: str


@attrs.frozen(kw_only=True)
class UpdateGlobalWhiteAddrsConfigRequestHeader:
    global_white_addrs: str
    acl_file_full_path: str | None = None  # absent before 4.9.2
