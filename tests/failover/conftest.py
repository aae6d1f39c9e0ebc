"""Fixtures of the broker tests (in-process name server, remoting client) for the failover tests."""

from tests.actors.broker.conftest import client, namesrv_addr  # noqa: F401
