"""The broker tests' in-process name server, broker starter and remoting client."""

import pytest

from tests.actors.broker.conftest import client, namesrv_addr  # noqa: F401


@pytest.fixture
def ha_clock(autojump_clock):  # type: ignore[no-untyped-def]
    """The autojump clock, jumping only after 20 ms of real idleness: these tests run real
    sockets and store threads, and a jump while bytes are on their way (a loaded machine)
    would fire timeouts that no virtual time explains."""
    autojump_clock.autojump_threshold = 0.02
    return autojump_clock
