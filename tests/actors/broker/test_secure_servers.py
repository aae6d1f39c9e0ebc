"""A broker and a name server with TLS enforced and a loopback bind address (issue 19)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import trio
import trustme

from actors.broker.app import broker
from actors.client.message import Message, SendStatus
from actors.client.producer import Producer
from actors.namesrv.app import namesrv
from actors.namesrv.config import NamesrvConfig
from actors.remoting.netconfig import ServerNetConfig
from actors.remoting.tls import client_context
from tests.actors.broker.conftest import broker_config, small_store


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    paths = tmp_path / "s.pem", tmp_path / "s.key", tmp_path / "ca.pem"
    paths[0].write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(paths[1]))
    ca.cert_pem.write_to_path(str(paths[2]))
    return paths


async def test_broker_registers_over_tls_and_clients_use_it(nursery, tmp_path, tls_files) -> None:
    cert, key, ca = tls_files
    enforcing = ServerNetConfig(
        bindAddress="127.0.0.1",
        tlsServerMode="enforcing",
        tlsServerCertPath=str(cert),
        tlsServerKeyPath=str(key),
        # The broker's registration connections: TLS, checking the name server's certificate.
        tlsEnable=True,
        tlsClientAuthServer=True,
        tlsClientTrustCertPath=str(ca),
    )
    enforcing.validate()
    ns_addr = await nursery.start(
        functools.partial(namesrv, NamesrvConfig.in_dir(tmp_path / "ns"), net=enforcing)
    )
    handle = await nursery.start(
        functools.partial(
            broker, broker_config(ns_addr), small_store(tmp_path / "store"), net=enforcing
        )
    )
    assert handle.server.host == "127.0.0.1"  # bound to loopback only
    with trio.fail_after(30):
        async with Producer(
            "pg", namesrv=ns_addr, tls=client_context(trust_cert_path=ca)
        ) as producer:
            result = await producer.send(Message("TlsTopic", b"over TLS"))
    assert result.status is SendStatus.SEND_OK
