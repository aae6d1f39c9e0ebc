"""FrameDecoder: whole commands out of any chunking, typed errors, bounded memory (§1.1)."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from protocol.codes import LanguageCode, SerializeType
from protocol.command import RemotingCommand
from protocol.convert import decode_header, encode_header
from protocol.errors import FrameTooLarge, ProtocolError, RemoteProtocolError
from protocol.frame import FrameDecoder, encode_command
from protocol.headers import PullMessageRequestHeader
from tests.protocol import golden
from tests.protocol.strategies import for_type

nonempty = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=10)


@st.composite
def commands(draw: st.DrawFn) -> RemotingCommand:
    binary = draw(st.booleans())
    short = st.integers(-(2**15), 2**15 - 1)
    int32 = st.integers(-(2**31), 2**31 - 1)
    return RemotingCommand(
        code=draw(short if binary else int32),
        language=draw(st.sampled_from(list(LanguageCode))),
        version=draw(short if binary else int32),
        opaque=draw(int32),
        flag=draw(int32),
        # The binary form cannot tell an empty remark or value from an absent one (§1.4).
        remark=draw(st.none() | (nonempty if binary else st.text(max_size=10))),
        ext_fields=draw(st.dictionaries(nonempty, nonempty if binary else st.text(), max_size=5)),
        body=draw(st.binary(max_size=64)),
        serialize_type=SerializeType.ROCKETMQ if binary else SerializeType.JSON,
    )


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts})
    chunks, start = [], 0
    for point in [*points, len(data)]:
        chunks.append(data[start:point])
        start = point
    return chunks


@given(st.lists(commands(), min_size=1, max_size=6), st.lists(st.integers(0, 2000), max_size=12))
def test_any_chunking_yields_the_same_commands(
    cmds: list[RemotingCommand], cuts: list[int]
) -> None:
    stream = b"".join(encode_command(cmd) for cmd in cmds)
    decoder = FrameDecoder()
    out: list[RemotingCommand] = []
    for chunk in _split(stream, cuts):
        decoder.feed(chunk)
        out.extend(decoder.commands())
    assert out == cmds
    assert decoder.buffered == 0


@settings(max_examples=30)
@given(for_type(PullMessageRequestHeader), st.sampled_from(list(SerializeType)))
def test_header_survives_a_frame_in_both_forms(
    header: PullMessageRequestHeader, stype: SerializeType
) -> None:
    binary = stype is SerializeType.ROCKETMQ
    # The binary form cannot carry an empty value (Java decodes it as null): an empty required
    # string cannot travel there at all, an empty optional one arrives as absent.
    assume(not binary or (header.consumer_group and header.topic))
    cmd = RemotingCommand.request(11, encode_header(header), serialize_type=stype)
    decoder = FrameDecoder()
    decoder.feed(encode_command(cmd))
    (got,) = decoder.commands()
    expected = header
    if binary:
        expected = attrs.evolve(
            header,
            subscription=header.subscription or None,
            expression_type=header.expression_type or None,
            bname=header.bname or None,
        )
    assert decode_header(PullMessageRequestHeader, got.ext_fields) == expected


def test_oversized_frame_refused_from_its_length_prefix_alone() -> None:
    decoder = FrameDecoder(max_frame_size=1024)
    # 1021 bytes after the length field: 1025 in all, one over (the field counts, as in Netty).
    decoder.feed((1021).to_bytes(4, "big"))
    with pytest.raises(FrameTooLarge) as info:
        decoder.next_command()
    assert (info.value.length, info.value.limit) == (1025, 1024)


def test_frame_at_the_limit_is_accepted() -> None:
    cmd = RemotingCommand.request(10, body=b"x" * 900)
    frame = encode_command(cmd)
    decoder = FrameDecoder(max_frame_size=len(frame))
    decoder.feed(frame)
    assert decoder.commands() == [cmd]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (bytes.fromhex("ffffffff 00000000"), "smaller than its header mark"),
        (bytes.fromhex("00000002 0000"), "smaller than its header mark"),
        (bytes.fromhex("00000008 00000010 00000000"), "header length 16 exceeds"),
        (bytes.fromhex("00000004 05000000"), "unknown serialize type 5"),
        (bytes.fromhex("00000006 00000002 7b7d")[:-2] + b"{}", None),
    ],
)
def test_malformed_frames_raise_typed_errors(frame: bytes, message: str | None) -> None:
    decoder = FrameDecoder()
    decoder.feed(frame)
    if message is None:
        assert decoder.next_command() == RemotingCommand(code=0, version=0)
        return
    with pytest.raises(RemoteProtocolError, match=message):
        decoder.next_command()


def test_json_numbers_and_booleans_in_ext_fields_arrive_as_strings() -> None:
    header = b'{"code":11,"extFields":{"queueId":0,"sysFlag":6,"k":false,"s":"x"},"flag":0}'
    decoder = FrameDecoder()
    decoder.feed((4 + len(header)).to_bytes(4, "big") + len(header).to_bytes(4, "big") + header)
    (cmd,) = decoder.commands()
    assert cmd.ext_fields == {"queueId": "0", "sysFlag": "6", "k": "false", "s": "x"}


# ---------------------------------------------------------------- fuzz

MAX = 256
VALID = [golden.BINARY_FRAME, golden.ROUTE_REQUEST_FRAME_PREFIX]


def _drain(decoder: FrameDecoder, chunks: list[bytes]) -> None:
    """Feed like a connection does; any failure must be a ProtocolError, memory must stay bounded."""
    for chunk in chunks:
        decoder.feed(chunk)
        # One partial frame (< 4 + MAX bytes) plus the chunk just fed, never more.
        assert decoder.buffered < 4 + MAX + len(chunk)
        try:
            decoder.commands()
        except ProtocolError:
            return


@settings(max_examples=120)
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_fuzz_random_bytes(chunks: list[bytes]) -> None:
    _drain(FrameDecoder(max_frame_size=MAX), chunks)


@st.composite
def mutated_streams(draw: st.DrawFn) -> bytes:
    cmds = draw(st.lists(commands(), min_size=1, max_size=3))
    data = bytearray(b"".join(encode_command(cmd) for cmd in cmds))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[pos : pos + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[pos:]
    return bytes(data)


@settings(max_examples=120)
@given(mutated_streams(), st.lists(st.integers(0, 600), max_size=6))
def test_fuzz_mutated_frames(stream: bytes, cuts: list[int]) -> None:
    _drain(FrameDecoder(max_frame_size=MAX), _split(stream, cuts))


def test_buffer_is_compacted_between_frames() -> None:
    frame = encode_command(RemotingCommand.request(34, body=b"y" * 100))
    stream = frame * 2000
    decoder = FrameDecoder(max_frame_size=MAX)
    count = 0
    for start in range(0, len(stream), 150):
        chunk = stream[start : start + 150]
        decoder.feed(chunk)
        assert decoder.buffered < 4 + MAX + len(chunk)
        count += len(decoder.commands())
    assert count == 2000
