"""Message ids (reference §4.6): the offset message id and the client unique id (UNIQ_KEY).

Host strings are ``"ip:port"``; IPv6 addresses may be bracketed on input and are written without
brackets, as Java's ``RemotingUtil.socketAddress2String`` does (the port is after the last colon).
"""

from __future__ import annotations

import datetime
import os
import random
import socket
import struct
import time

from protocol.errors import LocalProtocolError, RemoteProtocolError

_OFFSET4 = struct.Struct(">4siq")
_OFFSET6 = struct.Struct(">16siq")


def parse_host(host: str) -> tuple[bytes, int]:
    """``"ip:port"`` -> (4 or 16 address bytes, port); LocalProtocolError if it is not one."""
    ip, sep, port_text = host.rpartition(":")
    if not sep or not ip:
        raise LocalProtocolError(f"host {host!r} is not 'ip:port'")
    ip = ip.removeprefix("[").removesuffix("]")
    try:
        port = int(port_text)
        if not 0 <= port <= 0x7FFFFFFF:
            raise ValueError(port)
        if ":" in ip:
            return socket.inet_pton(socket.AF_INET6, ip), port
        return socket.inet_pton(socket.AF_INET, ip), port
    except (ValueError, OSError):
        raise LocalProtocolError(f"host {host!r} is not 'ip:port'") from None


def format_host(address: bytes, port: int) -> str:
    if len(address) == 4:
        return f"{address[0]}.{address[1]}.{address[2]}.{address[3]}:{port}"
    return f"{socket.inet_ntop(socket.AF_INET6, address)}:{port}"


def offset_msg_id_prefix(store_host: str) -> bytes:
    """The constant part (address + port) of every offset msg id of one broker."""
    ip, port = parse_host(store_host)
    return ip + struct.pack(">i", port)


def create_offset_msg_id(store_host: str, phys_offset: int) -> str:
    """Upper-case hex of store address, port (int) and commit-log offset (long)."""
    ip, port = parse_host(store_host)
    packer = _OFFSET6 if len(ip) == 16 else _OFFSET4
    return packer.pack(ip, port, phys_offset).hex().upper()


def decode_offset_msg_id(msg_id: str) -> tuple[str, int]:
    """(``"ip:port"``, commit-log offset); RemoteProtocolError if it is not an offset msg id."""
    if len(msg_id) == 32:
        packer = _OFFSET4
    elif len(msg_id) == 56:
        packer = _OFFSET6
    else:
        raise RemoteProtocolError(f"message id {msg_id!r} must be 32 or 56 hex digits")
    try:
        raw = bytes.fromhex(msg_id)
    except ValueError:
        raise RemoteProtocolError(f"message id {msg_id!r} is not hexadecimal") from None
    ip, port, offset = packer.unpack(raw)
    if port < 0 or offset < 0:
        raise RemoteProtocolError(f"message id {msg_id!r} has a negative port or offset")
    return format_host(ip, port), offset


def _month_bounds_ms(now_ms: int) -> tuple[int, int]:
    """Start of the current and of the next month, local time, in epoch ms."""
    local = datetime.datetime.fromtimestamp(now_ms / 1000).astimezone()
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    nxt = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return int(start.timestamp() * 1000), int(nxt.timestamp() * 1000)


class UniqIdGenerator:
    """Client unique ids: ip · pid(2) · class-loader hash(4) · ms since month start(4) · counter(2).

    Time is an argument of ``next`` so the codec stays clock-free; ``new_uniq_id`` reads the
    wall clock for callers that do not care.
    """

    def __init__(
        self,
        ip: bytes | str = b"\x7f\x00\x00\x01",
        pid: int | None = None,
        loader_hash: int | None = None,
    ) -> None:
        if isinstance(ip, str):
            ip = parse_host(f"{ip}:0")[0]
        if len(ip) not in (4, 16):
            raise LocalProtocolError("client ip must be 4 or 16 bytes")
        pid = os.getpid() if pid is None else pid
        loader_hash = random.getrandbits(31) if loader_hash is None else loader_hash
        self._fixed = (ip + struct.pack(">hi", _short(pid), loader_hash)).hex().upper()
        self._counter = 0
        self._month_start = 0
        self._next_month_start = 0

    def next(self, now_ms: int) -> str:
        if now_ms >= self._next_month_start or now_ms < self._month_start:
            self._month_start, self._next_month_start = _month_bounds_ms(now_ms)
        diff = now_ms - self._month_start
        counter = self._counter
        self._counter = (counter + 1) & 0xFFFF
        # Java casts to int: past ~24.8 days the value wraps, which is what clients expect.
        return self._fixed + struct.pack(">IH", diff & 0xFFFFFFFF, counter).hex().upper()


def _short(value: int) -> int:
    value &= 0xFFFF
    return value - 0x10000 if value & 0x8000 else value


_default: UniqIdGenerator | None = None


def new_uniq_id() -> str:
    """A UNIQ_KEY from a process-wide generator, timed by the wall clock."""
    global _default
    if _default is None:
        _default = UniqIdGenerator()
    return _default.next(time.time_ns() // 1_000_000)
