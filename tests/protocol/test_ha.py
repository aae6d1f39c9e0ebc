"""The HA stream's byte layouts (reference §6.5): golden vectors, chunking, bounded buffering."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.ha import (
    HELLO_MAGIC,
    REPORT_SIZE,
    HAProtocolError,
    ReportDecoder,
    Transfer,
    TransferDecoder,
    decode_hello,
    encode_heartbeat,
    encode_hello,
    encode_report,
    encode_transfer_header,
    plain_first_report,
)

offsets = st.integers(0, 2**63 - 1)


def test_golden_report() -> None:
    # slave -> master: one big-endian long, nothing else (HAService.HAClient.reportSlaveMaxOffset)
    assert encode_report(0) == bytes(8)
    assert encode_report(1_073_741_824 + 0x1234).hex() == "0000000040001234"


def test_golden_transfer_frame() -> None:
    # master -> slave: long phyOffset, int bodySize, body (HAConnection.WriteSocketService)
    assert encode_transfer_header(0x40000000, 5).hex() == "000000004000000000000005"
    assert encode_heartbeat(300).hex() == "000000000000012c00000000"
    dec = TransferDecoder()
    dec.feed(bytes.fromhex("000000000000012c0000000548656c6c6f000000000000013100000000"))
    assert dec.next_transfer() == Transfer(300, b"Hello")
    assert dec.next_transfer() == Transfer(305, b"")
    assert dec.next_transfer() is None


def test_negative_values_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        encode_report(-1)
    with pytest.raises(ValueError, match="bad transfer header"):
        encode_transfer_header(-1, 0)
    with pytest.raises(HAProtocolError):
        ReportDecoder().feed(b"\xff" * 8)
    dec = TransferDecoder()
    dec.feed(b"\x00" * 8 + b"\xff\xff\xff\xff")
    with pytest.raises(HAProtocolError):
        dec.next_transfer()


def test_oversized_body_is_refused_from_its_header() -> None:
    dec = TransferDecoder(max_body=16)
    dec.feed(encode_transfer_header(0, 17))
    with pytest.raises(HAProtocolError, match="exceeds 16"):
        dec.next_transfer()


@given(st.lists(offsets, min_size=1, max_size=6), st.data())
def test_report_decoder_keeps_the_newest_report(reports: list[int], data: st.DataObject) -> None:
    stream = b"".join(encode_report(r) for r in reports)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    dec = ReportDecoder()
    seen: list[int] = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        got = dec.feed(stream[prev:cut])
        prev = cut
        if got is not None:
            seen.append(got)
    assert seen[-1] == reports[-1]
    assert set(seen) <= set(reports)


@given(
    st.lists(st.tuples(offsets, st.binary(max_size=40)), max_size=6),
    st.lists(st.integers(1, 30), min_size=1, max_size=8),
)
def test_transfer_decoder_any_chunking(frames: list[tuple[int, bytes]], sizes: list[int]) -> None:
    stream = b"".join(encode_transfer_header(o, len(b)) + b for o, b in frames)
    dec = TransferDecoder()
    got: list[Transfer] = []
    pos, i = 0, 0
    while pos < len(stream):
        n = sizes[i % len(sizes)]
        dec.feed(stream[pos : pos + n])
        pos, i = pos + n, i + 1
        while (t := dec.next_transfer()) is not None:
            got.append(t)
    assert got == [Transfer(o, b) for o, b in frames]
    assert dec.buffered == 0


# ---- failover: a hello or a plain (Java) slave's first report, told apart by 8 bytes


@given(st.integers(min_value=0, max_value=(1 << 63) - 1))
def test_a_plain_first_report_is_its_offset(offset: int) -> None:
    first = encode_report(offset)
    if first == HELLO_MAGIC:  # 0x524D5145504F4348: no commit log is that long
        assert plain_first_report(first) is None
    else:
        assert plain_first_report(first) == offset


def test_the_hello_starts_with_the_magic() -> None:
    hello = encode_hello(3, 7)
    assert plain_first_report(hello[:REPORT_SIZE]) is None
    assert decode_hello(hello) == (3, 7)


def test_a_negative_or_short_first_report_is_refused() -> None:
    with pytest.raises(HAProtocolError):
        plain_first_report(b"\xff" * 8)
    with pytest.raises(HAProtocolError):
        plain_first_report(b"\x00" * 7)
