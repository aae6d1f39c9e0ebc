"""Errors of the remoting layer, one type per way a request can fail.

Trio's stream errors (``BrokenResourceError``, ``ClosedResourceError``) and ``OSError``
from connecting are translated into these at the connection boundary, so callers of
``invoke`` never see transport internals (the trio-websocket habit).
"""

from __future__ import annotations


class RemotingError(Exception):
    """Base class: a request could not be completed."""


class RemotingConnectError(RemotingError):
    """Could not open a connection to the address (refused, unreachable, connect timeout)."""

    def __init__(self, addr: str, reason: str) -> None:
        super().__init__(f"connect to {addr} failed: {reason}")
        self.addr = addr


class RemotingTimeoutError(RemotingError, TimeoutError):
    """No reply within the timeout; a reply that arrives later is dropped."""

    def __init__(self, addr: str, opaque: int, timeout: float) -> None:
        super().__init__(f"no reply from {addr} to opaque {opaque} within {timeout:.3f}s")
        self.addr = addr
        self.opaque = opaque
        self.timeout = timeout


class RemotingSendRequestError(RemotingError):
    """The connection was lost before the reply arrived (pending requests fail at once)."""

    def __init__(self, addr: str, reason: str) -> None:
        super().__init__(f"connection to {addr} lost: {reason}")
        self.addr = addr
        self.reason = reason


class RemotingClosedError(RemotingError):
    """The channel or client was closed by this side."""


class RemotingTooManyRequestsError(RemotingError):
    """Too many asynchronous requests in flight (Java's RemotingTooMuchRequestException)."""
