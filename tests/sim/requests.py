"""Which client requests went unanswered: every ``RemotingClient.invoke`` of a simulation that
timed out, lost its connection or could not connect is recorded in the history.

Used by scenarios without network faults or kills (the role switch), where every request -
sends, held pulls, heartbeats, admin requests - must get an answer, an error code included: a
request a broker drops on a role switch shows up here, not only as a slower consumer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from actors.remoting.client import RemotingClient
from actors.remoting.errors import (
    RemotingConnectError,
    RemotingSendRequestError,
    RemotingTimeoutError,
)
from protocol.command import RemotingCommand
from tests.sim.history import History

UNANSWERED = (RemotingTimeoutError, RemotingSendRequestError, RemotingConnectError)


@contextmanager
def answers_recorded(history: History) -> Iterator[None]:
    original = RemotingClient.invoke

    async def invoke(
        self: RemotingClient, addr: str, cmd: RemotingCommand, timeout: float
    ) -> RemotingCommand:
        try:
            return await original(self, addr, cmd, timeout)
        except UNANSWERED as exc:
            history.request_unanswered(addr, cmd.code, f"{type(exc).__name__}: {exc}")
            raise

    RemotingClient.invoke = invoke  # type: ignore[method-assign]
    history.expect_answers = True
    try:
        yield
    finally:
        RemotingClient.invoke = original  # type: ignore[method-assign]
