"""The HA replication stream (reference §6.5), sans-IO: plain TCP, no RemotingCommand framing.

slave -> master: ``long maxPhyOffset`` (8 bytes, big-endian), a report and an ack at once.
master -> slave: ``long phyOffset`` · ``int bodySize`` · ``bodySize`` raw commit-log bytes;
``bodySize == 0`` is a heartbeat.

The master reads reports as Java's HAConnection does: of the bytes received so far only the
newest complete 8-byte value counts (older reports are superseded acks).  The slave takes every
frame in order; a body larger than the decoder's limit is refused from its header, before any of
it is buffered, so a broken or hostile peer cannot make the slave hold more than one batch.
"""

from __future__ import annotations

import struct

import attrs

from protocol.errors import RemoteProtocolError

REPORT_SIZE = 8
HEADER_SIZE = 12
_REPORT = struct.Struct(">q")
_HEADER = struct.Struct(">qi")
# what a slave accepts per frame by default: Java's master never sends more than
# haTransferBatchSize (32 KiB), its slave buffers 4 MiB
DEFAULT_MAX_BODY = 4 * 1024 * 1024


class HAProtocolError(RemoteProtocolError):
    """The peer's bytes are not a valid HA stream (negative offset, oversized body)."""


def encode_report(max_offset: int) -> bytes:
    """The slave's 8-byte report of its commit log's max offset."""
    if max_offset < 0:
        raise ValueError(f"negative offset {max_offset}")
    return _REPORT.pack(max_offset)


def encode_transfer_header(phy_offset: int, body_size: int) -> bytes:
    """The master's 12-byte frame header; the body (commit-log bytes) follows it as is."""
    if phy_offset < 0 or not 0 <= body_size <= 0x7FFFFFFF:
        raise ValueError(f"bad transfer header ({phy_offset}, {body_size})")
    return _HEADER.pack(phy_offset, body_size)


def encode_heartbeat(phy_offset: int) -> bytes:
    return encode_transfer_header(phy_offset, 0)


@attrs.define
class ReportDecoder:
    """Master side: feed bytes, learn the slave's newest reported offset."""

    _pending: bytearray = attrs.field(factory=bytearray, init=False)

    def feed(self, data: bytes | memoryview) -> int | None:
        """The newest complete report in everything fed so far, or None if none completed
        with these bytes.  Raises HAProtocolError on a negative offset."""
        pending = self._pending
        pending += data
        whole = len(pending) - len(pending) % REPORT_SIZE
        if not whole:
            return None
        (offset,) = _REPORT.unpack_from(pending, whole - REPORT_SIZE)
        del pending[:whole]
        if offset < 0:
            raise HAProtocolError(f"slave reported a negative offset {offset}")
        return int(offset)


@attrs.frozen
class Transfer:
    """One master frame: ``body`` belongs at ``phy_offset`` (empty: a heartbeat)."""

    phy_offset: int
    body: bytes

    @property
    def end_offset(self) -> int:
        return self.phy_offset + len(self.body)


@attrs.define
class TransferDecoder:
    """Slave side: feed bytes, take whole frames in order."""

    max_body: int = DEFAULT_MAX_BODY
    _buf: bytearray = attrs.field(factory=bytearray, init=False)

    def feed(self, data: bytes | memoryview) -> None:
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def next_transfer(self) -> Transfer | None:
        """The next whole frame, or None when more bytes are needed."""
        buf = self._buf
        if len(buf) < HEADER_SIZE:
            return None
        offset, size = _HEADER.unpack_from(buf, 0)
        if offset < 0 or size < 0:
            raise HAProtocolError(f"bad transfer header: offset {offset}, body size {size}")
        if size > self.max_body:
            raise HAProtocolError(f"transfer body of {size} bytes exceeds {self.max_body}")
        end = HEADER_SIZE + size
        if len(buf) < end:
            return None
        body = bytes(buf[HEADER_SIZE:end])
        del buf[:end]
        return Transfer(int(offset), body)


__all__ = [
    "DEFAULT_MAX_BODY",
    "HEADER_SIZE",
    "REPORT_SIZE",
    "HAProtocolError",
    "ReportDecoder",
    "Transfer",
    "TransferDecoder",
    "encode_heartbeat",
    "encode_report",
    "encode_transfer_header",
]


# ---- the failover hello (ours; only between brokers with etcdEndpoints set)
# slave -> master first: magic, the slave's broker id (its name in the in-sync set), and the
# epoch of the master it means to follow; master -> slave: its own epoch.  A slave follows
# only the master of the epoch etcd elected, and a master serves only slaves of its epoch.
# A Java slave sends no hello: its first 8 bytes are its first report, an offset that never
# equals the magic (0x524D5145504F4348, ~5.9e18 bytes), so a master tells the two apart
# from those 8 bytes (plain_first_report).
HELLO_MAGIC = b"RMQEPOCH"
_HELLO = struct.Struct(">8sqq")
HELLO_SIZE = _HELLO.size
EPOCH_SIZE = 8


def encode_hello(broker_id: int, epoch: int) -> bytes:
    return _HELLO.pack(HELLO_MAGIC, broker_id, epoch)


def decode_hello(data: bytes) -> tuple[int, int]:
    """(broker id, epoch) of a slave's hello."""
    if len(data) != HELLO_SIZE:
        raise HAProtocolError(f"hello of {len(data)} bytes, expected {HELLO_SIZE}")
    magic, broker_id, epoch = _HELLO.unpack(data)
    if magic != HELLO_MAGIC:
        raise HAProtocolError("no failover hello (is the slave configured with etcdEndpoints?)")
    return int(broker_id), int(epoch)


def plain_first_report(first: bytes) -> int | None:
    """The first 8 bytes a slave sent: None if they begin our hello, else the offset of a
    plain (Java) slave's first report.  Raises HAProtocolError on a negative offset."""
    if len(first) != REPORT_SIZE:
        raise HAProtocolError(f"{len(first)} bytes, expected {REPORT_SIZE}")
    if first == HELLO_MAGIC:
        return None
    offset = int(_REPORT.unpack(first)[0])
    if offset < 0:
        raise HAProtocolError(f"negative slave offset {offset}")
    return offset


def encode_epoch(epoch: int) -> bytes:
    return _REPORT.pack(epoch)


def decode_epoch(data: bytes) -> int:
    if len(data) != EPOCH_SIZE:
        raise HAProtocolError(f"epoch of {len(data)} bytes, expected {EPOCH_SIZE}")
    return int(_REPORT.unpack(data)[0])
