"""Topic configuration and broker registration bodies (reference §3.3.3, §3.3.4, §5.8).

REGISTER_BROKER carries either the JSON ``RegisterBrokerBody`` or, with header
``compressed=true``, a zlib stream of length-prefixed parts.  The compressed form drops
``order`` and ``topicSysFlag``; decoding it yields their Java defaults.
"""

from __future__ import annotations

import struct
import zlib

import attrs

from protocol import fastjson
from protocol.bodies.common import DataVersion, TopicFilterType
from protocol.convert import BodyDecodeError, decode_body, encode_body, structure_body
from protocol.errors import RemoteProtocolError

_I32 = struct.Struct(">i")
# A broker with a hundred thousand topics sends about 5 MB of text; anything past this is a bomb.
MAX_INFLATED_REGISTER_BODY = 64 * 1024 * 1024


@attrs.frozen(kw_only=True)
class TopicConfig:
    """Defaults are Java's for a bare ``new TopicConfig()``."""

    topic_name: str | None = None
    read_queue_nums: int = 16
    write_queue_nums: int = 16
    perm: int = 6  # PERM_READ | PERM_WRITE
    topic_filter_type: TopicFilterType = TopicFilterType.SINGLE_TAG
    topic_sys_flag: int = 0
    order: bool = False


@attrs.frozen(kw_only=True)
class TopicConfigSerializeWrapper:
    topic_config_table: dict[str, TopicConfig] = attrs.field(factory=dict)
    data_version: DataVersion = attrs.field(factory=DataVersion)


@attrs.frozen(kw_only=True)
class RegisterBrokerBody:
    topic_config_serialize_wrapper: TopicConfigSerializeWrapper = attrs.field(
        factory=TopicConfigSerializeWrapper
    )
    filter_server_list: tuple[str, ...] = ()


def body_crc32(data: bytes) -> int:
    """The ``bodyCrc32`` header value: CRC32 of the body, sign bit cleared (§3.3.4)."""
    return zlib.crc32(data) & 0x7FFFFFFF


def encode_register_broker_body(body: RegisterBrokerBody, *, compressed: bool = False) -> bytes:
    if not compressed:
        return encode_body(body)
    wrapper = body.topic_config_serialize_wrapper
    parts = [_framed(encode_body(wrapper.data_version)), _I32.pack(len(wrapper.topic_config_table))]
    for name, config in wrapper.topic_config_table.items():
        line = " ".join(
            (
                config.topic_name or name,
                str(config.read_queue_nums),
                str(config.write_queue_nums),
                str(config.perm),
                config.topic_filter_type.name,
            )
        )
        parts.append(_framed(line.encode()))
    parts.append(_framed(fastjson.dumps_bytes(list(body.filter_server_list))))
    return zlib.compress(b"".join(parts), 9)


def decode_register_broker_body(data: bytes, *, compressed: bool = False) -> RegisterBrokerBody:
    """The body of a REGISTER_BROKER request; an empty body is an empty registration."""
    if not data:
        return RegisterBrokerBody()
    if not compressed:
        return decode_body(RegisterBrokerBody, data)
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(data, MAX_INFLATED_REGISTER_BODY)
    except zlib.error as exc:
        raise RemoteProtocolError(f"compressed register body is not zlib: {exc}") from None
    if inflater.unconsumed_tail:
        raise RemoteProtocolError(
            f"compressed register body inflates beyond {MAX_INFLATED_REGISTER_BODY} bytes"
        )
    reader = _Reader(raw)
    version = decode_body(DataVersion, reader.framed())
    table: dict[str, TopicConfig] = {}
    count = reader.int32()
    if count < 0:
        raise RemoteProtocolError(f"compressed register body has {count} topics")
    for _ in range(count):
        config = _topic_line(reader.framed())
        table[config.topic_name or ""] = config
    servers = fastjson.loads(reader.framed())
    if not isinstance(servers, list):
        raise BodyDecodeError("compressed register body: filter servers are not a list")
    return RegisterBrokerBody(
        topic_config_serialize_wrapper=TopicConfigSerializeWrapper(
            topic_config_table=table, data_version=version
        ),
        filter_server_list=tuple(str(server) for server in servers),
    )


def _framed(data: bytes) -> bytes:
    return _I32.pack(len(data)) + data


def _topic_line(data: bytes) -> TopicConfig:
    fields = data.decode("utf-8", "replace").split(" ")
    if len(fields) != 5:
        raise BodyDecodeError(f"compressed register body: bad topic line {data!r}")
    name, read, write, perm, filter_type = fields
    return structure_body(
        TopicConfig,
        {
            "topicName": name,
            "readQueueNums": read,
            "writeQueueNums": write,
            "perm": perm,
            "topicFilterType": filter_type,
        },
    )


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def int32(self) -> int:
        if len(self.data) - self.pos < 4:
            raise RemoteProtocolError("compressed register body truncated")
        (value,) = _I32.unpack_from(self.data, self.pos)
        self.pos += 4
        return int(value)

    def framed(self) -> bytes:
        length = self.int32()
        if length < 0 or length > len(self.data) - self.pos:
            raise RemoteProtocolError(f"compressed register body part of {length} bytes")
        part = self.data[self.pos : self.pos + length]
        self.pos += length
        return part
