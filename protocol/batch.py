"""A SEND_BATCH_MESSAGE body (§4.8) split into records the store appends as they came.

The broker never needs a batch entry's properties as a dictionary: the stored properties are
the entry's own bytes, a separator and the batch's properties (``CLUSTER`` included), exactly
as Java's ``MessageExtBatchEncoder`` concatenates them in 4.9.8.  Keeping them as bytes spares
a parse and a re-encode per message.
"""

from __future__ import annotations

import struct

from protocol.errors import RemoteProtocolError
from protocol.message import MAX_PROPERTIES_LENGTH, MessageConst

_HEAD = struct.Struct(">iiiii")  # TOTALSIZE MAGIC BODYCRC FLAG BODYLEN
_SHORT = struct.Struct(">h")
_SEPARATOR = 0x02

# (flag, body, stored properties) of one batch entry
RawEntry = tuple[int, bytes, bytes]


def has_property(properties: bytes, name: str) -> bool:
    """Whether ``name`` is a key of an encoded properties string."""
    key = name.encode() + b"\x01"
    return properties.startswith(key) or b"\x02" + key in properties


def decode_batch_raw(body: bytes | bytearray | memoryview, appended: bytes) -> list[RawEntry]:
    """Entries of a batch body, each entry's properties followed by ``appended``.

    A ``\\x02`` goes between them only when the entry's own properties are not empty and do not
    end with one (4.9.8; 4.9.1 never inserted it).  Raises RemoteProtocolError for an entry
    whose lengths do not add up, whose properties are not UTF-8 (reput could not read them
    back) or grow past PROPERTIESLEN's limit.
    """
    out: list[RawEntry] = []
    view = memoryview(body)
    pos = 0
    end = len(view)
    head = _HEAD.unpack_from
    short = _SHORT.unpack_from
    while pos < end:
        if end - pos < _HEAD.size + 2:
            raise RemoteProtocolError(f"batch entry at {pos} truncated")
        total, _magic, _crc, flag, body_len = head(view, pos)
        p = pos + _HEAD.size
        if body_len < 0 or p + body_len + 2 > end:
            raise RemoteProtocolError(f"batch entry at {pos}: BODYLEN {body_len} out of range")
        entry_body = view[p : p + body_len].tobytes()
        p += body_len
        (props_len,) = short(view, p)
        p += 2
        if props_len < 0 or p + props_len > end:
            raise RemoteProtocolError(f"batch entry at {pos}: PROPERTIESLEN out of range")
        if p + props_len - pos != total:
            raise RemoteProtocolError(f"batch entry at {pos}: TOTALSIZE {total} does not match")
        own = view[p : p + props_len].tobytes()
        try:
            own.decode()
        except UnicodeDecodeError:
            raise RemoteProtocolError(f"batch entry at {pos}: invalid UTF-8") from None
        if own and appended and own[-1] != _SEPARATOR:
            props = own + b"\x02" + appended
        else:
            props = own + appended
        if len(props) > MAX_PROPERTIES_LENGTH:
            raise RemoteProtocolError(
                f"batch entry at {pos}: {len(props)} bytes of properties exceed "
                f"{MAX_PROPERTIES_LENGTH}"
            )
        out.append((flag, entry_body, props))
        pos = p + props_len
    return out


_DELAY = MessageConst.DELAY.encode() + b"\x01"


def delayed(entries: list[RawEntry]) -> bool:
    """Whether any entry asks for a delay level (batches cannot be delayed)."""
    # a substring search first: it rules out nearly every entry at C speed
    return any(
        _DELAY in props and has_property(props, MessageConst.DELAY) for _, _, props in entries
    )
