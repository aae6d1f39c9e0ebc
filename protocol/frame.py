"""Incremental frame codec (reference §1.1), sans-IO in the manner of h11's ReceiveBuffer.

``FrameDecoder.feed()`` appends bytes; ``next_command()`` returns one whole
``RemotingCommand`` or ``None`` when more bytes are needed.  A frame whose size (length field
included, as Netty counts it) is above the configured maximum raises ``FrameTooLarge`` from its
length prefix, before a single byte of that frame is kept.
"""

from __future__ import annotations

import struct

from protocol.codes import SerializeType
from protocol.command import (
    RemotingCommand,
    decode_binary_header,
    decode_json_header,
    encode_binary_header,
    encode_json_header,
)
from protocol.errors import FrameTooLarge, RemoteProtocolError

DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024
_PREFIX = struct.Struct(">ii")  # length, header mark


def encode_command(cmd: RemotingCommand) -> bytes:
    """The whole frame for ``cmd``: length, header mark, header, body."""
    if cmd.serialize_type is SerializeType.ROCKETMQ:
        header = encode_binary_header(cmd)
    else:
        header = encode_json_header(cmd)
    mark = (int(cmd.serialize_type) << 24) | len(header)
    return b"".join((_PREFIX.pack(4 + len(header) + len(cmd.body), mark), header, cmd.body))


def decode_frame(frame: bytes | memoryview) -> RemotingCommand:
    """Decode one frame *without* its 4-byte length prefix (header mark, header, body)."""
    view = memoryview(frame)
    if len(view) < 4:
        raise RemoteProtocolError(f"frame of {len(view)} bytes has no header mark")
    mark = int.from_bytes(view[:4], "big")
    kind = mark >> 24
    header_len = mark & 0xFFFFFF
    if header_len > len(view) - 4:
        raise RemoteProtocolError(
            f"header length {header_len} exceeds the frame's {len(view) - 4} remaining bytes"
        )
    header = view[4 : 4 + header_len]
    if kind == SerializeType.JSON:
        fields = decode_json_header(header)
        stype = SerializeType.JSON
    elif kind == SerializeType.ROCKETMQ:
        fields = decode_binary_header(header)
        stype = SerializeType.ROCKETMQ
    else:
        raise RemoteProtocolError(f"unknown serialize type {kind}")
    return RemotingCommand(body=bytes(view[4 + header_len :]), serialize_type=stype, **fields)


class FrameDecoder:
    """Feed bytes in any split; take whole commands out."""

    __slots__ = ("_buf", "_pos", "max_frame_size")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_frame_size = max_frame_size
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._pos:
            # Drop what was consumed before growing, so the buffer never holds more than one
            # partial frame plus this chunk.  The leftover is less than one frame, so the copy
            # is bounded by the frame being assembled.
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def next_command(self) -> RemotingCommand | None:
        buf, pos = self._buf, self._pos
        if len(buf) - pos < 4:
            return None
        (length,) = struct.unpack_from(">i", buf, pos)
        if length < 4:
            raise RemoteProtocolError(f"frame length {length} is smaller than its header mark")
        # Netty's decoder counts the 4-byte length field in the frame size; so do we.
        if length + 4 > self.max_frame_size:
            raise FrameTooLarge(length + 4, self.max_frame_size)
        end = pos + 4 + length
        if len(buf) < end:
            return None
        with memoryview(buf) as view:
            cmd = decode_frame(view[pos + 4 : end])
        if end == len(buf):
            buf.clear()
            self._pos = 0
        else:
            self._pos = end
            if end > 1 << 16 and end > len(buf) // 2:
                # Compact occasionally so a long stream of small frames stays O(n).
                del buf[:end]
                self._pos = 0
        return cmd

    def commands(self) -> list[RemotingCommand]:
        """Every whole command currently buffered."""
        out = []
        while (cmd := self.next_command()) is not None:
            out.append(cmd)
        return out
