"""Typed protocol errors, in the spirit of h11's LocalProtocolError / RemoteProtocolError.

Every failure to parse bytes from a peer is a ``RemoteProtocolError`` (or its subclass
``FrameTooLarge``); every attempt to encode something the protocol cannot carry is a
``LocalProtocolError``.  Callers convert these into RocketMQ response codes or a closed
connection in exactly one place.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base class of everything the codec raises on bad input."""


class LocalProtocolError(ProtocolError):
    """We were asked to encode something the wire format cannot express."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that are not a valid RocketMQ frame, header or body."""


class FrameTooLarge(RemoteProtocolError):
    """A frame's length prefix exceeds the configured maximum; refused before buffering."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"frame of {length} bytes exceeds the maximum of {limit} bytes")
        self.length = length
        self.limit = limit


class HeaderFieldError(RemoteProtocolError):
    """A custom header (extFields) field is missing or malformed."""

    def __init__(self, header: str, field: str, problem: str) -> None:
        super().__init__(f"{header}: field {field!r} {problem}")
        self.header = header
        self.field = field
        self.problem = problem
