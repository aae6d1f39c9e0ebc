"""Offset message ids (§4.1/§4.6 vector) and client unique ids."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import LocalProtocolError, RemoteProtocolError
from protocol.msgid import (
    UniqIdGenerator,
    create_offset_msg_id,
    decode_offset_msg_id,
    new_uniq_id,
    parse_host,
)


def test_golden_offset_msg_id() -> None:
    assert create_offset_msg_id("192.168.0.1:10911", 1234) == "C0A8000100002A9F00000000000004D2"
    assert decode_offset_msg_id("C0A8000100002A9F00000000000004D2") == ("192.168.0.1:10911", 1234)
    assert decode_offset_msg_id("c0a8000100002a9f00000000000004d2") == ("192.168.0.1:10911", 1234)


def test_ipv6_offset_msg_id() -> None:
    msg_id = create_offset_msg_id("[::1]:10911", 7)
    assert len(msg_id) == 56
    assert decode_offset_msg_id(msg_id) == ("::1:10911", 7)


@pytest.mark.parametrize("bad", ["", "XYZ", "G" * 32, "00" * 15, "F" * 32, "0" * 33])
def test_offset_msg_id_garbage(bad: str) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_offset_msg_id(bad)


@pytest.mark.parametrize(
    "bad", ["1.2.3.4", "1.2.3:5", "a.b.c.d:1", "1.2.3.4:x", ":80", "1.2.3.4:-1"]
)
def test_bad_hosts(bad: str) -> None:
    with pytest.raises(LocalProtocolError):
        parse_host(bad)


@given(st.ip_addresses(v=4), st.integers(0, 65535), st.integers(0, 2**63 - 1))
def test_offset_msg_id_round_trip(ip: object, port: int, offset: int) -> None:
    host = f"{ip}:{port}"
    assert decode_offset_msg_id(create_offset_msg_id(host, offset)) == (host, offset)


def test_uniq_id_layout() -> None:
    gen = UniqIdGenerator(ip="192.168.0.9", pid=0x12345, loader_hash=0x0A0B0C0D)
    month_start = datetime.datetime(2026, 11, 1).astimezone()
    now_ms = int(month_start.timestamp() * 1000) + 5000
    first, second = gen.next(now_ms), gen.next(now_ms)
    assert len(first) == 32
    assert first[:20] == "C0A8000923450A0B0C0D"
    assert first[20:28] == f"{5000:08X}"
    assert (first[28:], second[28:]) == ("0000", "0001")


def test_uniq_id_counter_wraps_and_month_rolls() -> None:
    gen = UniqIdGenerator(ip=b"\x01\x02\x03\x04", pid=1, loader_hash=1)
    gen._counter = 0xFFFF
    dec_start = int(datetime.datetime(2026, 12, 1).astimezone().timestamp() * 1000)
    jan_start = int(datetime.datetime(2027, 1, 1).astimezone().timestamp() * 1000)
    assert gen.next(dec_start + 1)[20:] == f"{1:08X}FFFF"
    assert gen.next(jan_start + 2)[20:] == f"{2:08X}0000"


def test_new_uniq_id_is_unique() -> None:
    ids = {new_uniq_id() for _ in range(1000)}
    assert len(ids) == 1000
