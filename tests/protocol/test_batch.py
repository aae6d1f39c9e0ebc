"""decode_batch_raw: a batch body split into (flag, body, stored properties) as Java stores them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import RemoteProtocolError
from protocol.message import (
    BatchEntry,
    batch_delayed,
    decode_batch,
    decode_batch_raw,
    encode_batch,
    has_property,
    properties_to_string,
    string_to_properties,
)

chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\x01\x02")
names = st.text(chars, min_size=1, max_size=8)
values = st.text(chars, min_size=1, max_size=12)
entries = st.lists(
    st.builds(
        BatchEntry,
        body=st.binary(max_size=64),
        flag=st.integers(-(2**31), 2**31 - 1),
        properties=st.dictionaries(names, values, max_size=4),
    ),
    max_size=6,
)


@given(entries, st.dictionaries(names, values, max_size=3))
def test_stored_properties_read_back_as_entry_then_batch(
    batch: list[BatchEntry], extra: dict[str, str]
) -> None:
    raw = decode_batch_raw(encode_batch(batch), properties_to_string(extra).encode())
    assert decode_batch(encode_batch(batch)) == batch
    assert [(f, b) for f, b, _ in raw] == [(e.flag, e.body) for e in batch]
    for (_, _, stored), entry in zip(raw, batch, strict=True):
        # read back the way consumers read it: later duplicates win
        assert string_to_properties(stored.decode()) == {**entry.properties, **extra}


def test_separator_only_where_missing() -> None:
    def stored(own: str, appended: bytes) -> bytes:
        body = b"".join(
            [
                (4 * 5 + 1 + 2 + len(own.encode())).to_bytes(4, "big"),
                bytes(12),
                (1).to_bytes(4, "big"),
                b"x",
                len(own.encode()).to_bytes(2, "big"),
                own.encode(),
            ]
        )
        return decode_batch_raw(body, appended)[0][2]

    assert stored("A\x01b", b"C\x01d") == b"A\x01b\x02C\x01d"
    assert stored("A\x01b\x02", b"C\x01d") == b"A\x01b\x02C\x01d"
    assert stored("", b"C\x01d") == b"C\x01d"
    assert stored("A\x01b", b"") == b"A\x01b"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda b: b[:-1],  # properties cut short
        lambda b: b[:10],  # head cut short
        lambda b: (len(b) + 1).to_bytes(4, "big") + b[4:],  # TOTALSIZE off by one
        lambda b: b[:16] + (10_000).to_bytes(4, "big") + b[20:],  # BODYLEN past the end
    ],
)
def test_bad_entries_refused(mangle) -> None:  # type: ignore[no-untyped-def]
    body = encode_batch([BatchEntry(body=b"abc", properties={"K": "v"})])
    with pytest.raises(RemoteProtocolError):
        decode_batch_raw(mangle(body), b"C\x01d")


def test_invalid_utf8_and_oversized_properties_refused() -> None:
    body = encode_batch([BatchEntry(body=b"a", properties={"K": "v"})])
    with pytest.raises(RemoteProtocolError, match="UTF-8"):
        decode_batch_raw(body.replace(b"K\x01v", b"K\x01\xff"), b"")
    big = encode_batch([BatchEntry(body=b"a", properties={"K": "v" * 32760})])
    with pytest.raises(RemoteProtocolError, match="exceed"):
        decode_batch_raw(big, b"CLUSTER\x01DefaultCluster")


def test_delay_found_only_as_a_key() -> None:
    assert has_property(b"DELAY\x012", "DELAY")
    assert has_property(b"A\x01b\x02DELAY\x012", "DELAY")
    assert not has_property(b"A\x01DELAY\x02B\x01c", "DELAY")
    assert not has_property(b"XDELAY\x011", "DELAY")
    assert batch_delayed([(0, b"", b"K\x01v"), (0, b"", b"DELAY\x013")])
    assert not batch_delayed([(0, b"", b"K\x01v")])
