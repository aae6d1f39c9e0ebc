"""The broker tests' in-process name server, broker starter and remoting client."""

from tests.actors.broker.conftest import client, namesrv_addr  # noqa: F401
