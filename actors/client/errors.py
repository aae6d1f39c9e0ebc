"""Errors a client user can catch, one type per situation (no route, timeout, refusal)."""

from __future__ import annotations


class ClientError(Exception):
    """Base class of every error the client raises on purpose."""


class InvalidMessageError(ClientError, ValueError):
    """The message cannot be sent as it is (bad topic, empty or oversized body, ...)."""


class InvalidSubscriptionError(ClientError, ValueError):
    """A subscription expression that cannot be parsed."""


class NoRouteError(ClientError):
    """The name server knows no route for the topic (or no writeable/readable queue)."""

    def __init__(self, topic: str, detail: str = "") -> None:
        super().__init__(f"no route info of topic {topic!r}{': ' + detail if detail else ''}")
        self.topic = topic


class ClientTimeoutError(ClientError):
    """A request (a whole send including retries, or one RPC) ran out of time."""


class BrokerError(ClientError):
    """The broker (or name server) answered with an error response code."""

    def __init__(self, code: int, remark: str | None, addr: str = "") -> None:
        where = f" from {addr}" if addr else ""
        super().__init__(f"CODE: {code} DESC: {remark}{where}")
        self.code = code
        self.remark = remark or ""
        self.addr = addr


class NotConnectedError(ClientError):
    """No connection could be made to the peer, or it was lost while waiting."""
