"""NameServer request and response headers (reference §3.2.7).

A field without a default is Java's ``@CFNotNull``: decoding fails with HeaderFieldError when
it is absent.  Optional fields default to ``None`` (omitted on the wire) or, for Java
primitives, to Java's default (always sent).
"""

from __future__ import annotations

import attrs

from protocol.convert import Int32


@attrs.frozen(kw_only=True)
class RegisterBrokerRequestHeader:
    broker_name: str
    broker_addr: str
    cluster_name: str
    ha_server_addr: str
    broker_id: int
    compressed: bool = False
    body_crc32: Int32 = 0


@attrs.frozen(kw_only=True)
class RegisterBrokerResponseHeader:
    ha_server_addr: str | None = None
    master_addr: str | None = None


@attrs.frozen(kw_only=True)
class UnRegisterBrokerRequestHeader:
    broker_name: str
    broker_addr: str
    cluster_name: str
    broker_id: int


@attrs.frozen(kw_only=True)
class QueryDataVersionRequestHeader:
    broker_name: str
    broker_addr: str
    cluster_name: str
    broker_id: int


@attrs.frozen(kw_only=True)
class QueryDataVersionResponseHeader:
    changed: bool


@attrs.frozen(kw_only=True)
class GetRouteInfoRequestHeader:
    topic: str
    accept_standard_json_only: bool | None = None


@attrs.frozen(kw_only=True)
class PutKVConfigRequestHeader:
    namespace: str
    key: str
    value: str


@attrs.frozen(kw_only=True)
class GetKVConfigRequestHeader:
    namespace: str
    key: str


@attrs.frozen(kw_only=True)
class GetKVConfigResponseHeader:
    value: str | None = None


@attrs.frozen(kw_only=True)
class DeleteKVConfigRequestHeader:
    namespace: str
    key: str


@attrs.frozen(kw_only=True)
class GetKVListByNamespaceRequestHeader:
    namespace: str


@attrs.frozen(kw_only=True)
class WipeWritePermOfBrokerRequestHeader:
    broker_name: str


@attrs.frozen(kw_only=True)
class WipeWritePermOfBrokerResponseHeader:
    wipe_topic_count: Int32


@attrs.frozen(kw_only=True)
class AddWritePermOfBrokerRequestHeader:
    broker_name: str


@attrs.frozen(kw_only=True)
class AddWritePermOfBrokerResponseHeader:
    add_topic_count: Int32


@attrs.frozen(kw_only=True)
class DeleteTopicFromNamesrvRequestHeader:
    topic: str
    cluster_name: str | None = None


@attrs.frozen(kw_only=True)
class GetTopicsByClusterRequestHeader:
    cluster: str
