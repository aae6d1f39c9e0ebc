"""TLS on the remoting server and client (issue 19): the three server modes on one port,
certificate checks, client authentication.  Real loopback sockets; certificates from trustme."""

from __future__ import annotations

import ssl
from functools import partial
from pathlib import Path

import attrs
import pytest
import trio
import trustme

from actors.remoting.client import open_remoting_client
from actors.remoting.errors import RemotingConnectError, RemotingError
from actors.remoting.netconfig import ServerNetConfig
from actors.remoting.server import ServerHandle, remoting_server
from actors.remoting.tls import client_context
from protocol.codes import ResponseCode
from protocol.command import RemotingCommand
from protocol.frame import encode_command
from tests.actors.remoting.conftest import ECHO, RawPeer, make_router, raw_connect


@attrs.frozen
class Pki:
    ca: trustme.CA
    cert: Path
    key: Path
    ca_file: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("sec-tls")
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    cert, key, ca_file = directory / "server.pem", directory / "server.key", directory / "ca.pem"
    server_cert.private_key_pem.write_to_path(str(key))
    with cert.open("wb") as out:
        for blob in server_cert.cert_chain_pems:
            out.write(blob.bytes())
    ca.cert_pem.write_to_path(str(ca_file))
    return Pki(ca, cert, key, ca_file)


def tls_config(pki: Pki, mode: str, **extra: object) -> ServerNetConfig:
    config = ServerNetConfig(
        tlsServerMode=mode,
        tlsServerCertPath=str(pki.cert),
        tlsServerKeyPath=str(pki.key),
        **extra,  # type: ignore[arg-type]
    )
    config.validate()
    return config


async def start(nursery: trio.Nursery, net: ServerNetConfig | None) -> ServerHandle:
    handle: ServerHandle = await nursery.start(
        partial(remoting_server, host="127.0.0.1", port=0, net=net), make_router()
    )
    return handle


def echo(body: bytes = b"secret body") -> RemotingCommand:
    return RemotingCommand.request(ECHO, {"k": "v"}, body)


async def call(addr: str, ctx: ssl.SSLContext | None) -> RemotingCommand:
    error = await call_error(addr, ctx)
    assert not isinstance(error, RemotingError), error
    return error


async def call_error(addr: str, ctx: ssl.SSLContext | None) -> RemotingCommand | RemotingError:
    """The reply, or the client's error (raised inside the client's nursery, so caught there)."""
    async with open_remoting_client(ssl_context=ctx, name="tls-test") as client:
        try:
            return await client.invoke(addr, echo(), 3)
        except RemotingError as exc:
            return exc


def refused(result: RemotingCommand | RemotingError, kind: type[RemotingError], text: str) -> bool:
    return isinstance(result, kind) and text in str(result)


async def test_permissive_serves_tls_and_plain_text_on_one_port(nursery, pki) -> None:
    server = await start(nursery, tls_config(pki, "permissive"))
    with trio.fail_after(10):
        secure = await call(server.address, client_context(trust_cert_path=pki.ca_file))
        plain = await call(server.address, None)
    assert (secure.code, secure.body) == (ResponseCode.SUCCESS, b"secret body")
    assert (plain.code, plain.body) == (ResponseCode.SUCCESS, b"secret body")


async def test_traffic_is_encrypted(nursery, pki) -> None:
    # A byte-level proxy between client and server sees no plain body.
    server = await start(nursery, tls_config(pki, "enforcing"))
    seen = bytearray()

    async def proxy(downstream: trio.SocketStream) -> None:
        async with downstream, await raw_connect(server.address) as upstream:
            await relay(downstream, upstream)

    async def relay(downstream: trio.SocketStream, upstream: trio.SocketStream) -> None:
        async def pump(src: trio.abc.Stream, dst: trio.abc.Stream) -> None:
            try:
                while data := await src.receive_some(65536):
                    seen.extend(data)
                    await dst.send_all(data)
            except trio.BrokenResourceError:
                pass

        async with trio.open_nursery() as pumps:
            pumps.start_soon(pump, downstream, upstream)
            pumps.start_soon(pump, upstream, downstream)

    listeners = await nursery.start(partial(trio.serve_tcp, proxy, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    with trio.fail_after(10):
        reply = await call(f"127.0.0.1:{port}", client_context(trust_cert_path=pki.ca_file))
    assert reply.body == b"secret body"
    assert seen
    assert b"secret body" not in seen


async def test_enforcing_closes_a_plain_text_peer_at_once(nursery, pki) -> None:
    server = await start(nursery, tls_config(pki, "enforcing"))
    with trio.fail_after(5):
        async with await raw_connect(server.address) as stream:
            await stream.send_all(encode_command(echo().with_opaque(1)))
            assert await RawPeer(stream).receive() is None  # a clean close, not a hang
        assert isinstance(await call_error(server.address, None), RemotingError)
        secure = await call(server.address, client_context(trust_cert_path=pki.ca_file))
    assert secure.code == ResponseCode.SUCCESS


async def test_disabled_refuses_a_tls_client(nursery) -> None:
    server = await start(nursery, None)
    ctx = client_context(verify=False)
    with trio.fail_after(5):
        result = await call_error(server.address, ctx)
    assert refused(result, RemotingConnectError, "TLS handshake failed"), result


async def test_client_verifies_the_server_certificate(nursery, pki) -> None:
    server = await start(nursery, tls_config(pki, "enforcing"))
    with trio.fail_after(5):
        # The system's CAs do not know trustme's.
        result = await call_error(server.address, client_context())
        assert refused(result, RemotingConnectError, "CERTIFICATE_VERIFY_FAILED"), result
        # Java's default (tls.test.mode.enable=true): encrypted, not authenticated.
        unverified = await call(server.address, client_context(verify=False))
    assert unverified.code == ResponseCode.SUCCESS


async def test_client_authentication(nursery, pki, tmp_path) -> None:
    server = await start(
        nursery,
        tls_config(
            pki,
            "enforcing",
            tlsServerNeedClientAuth="require",
            tlsServerTrustCertPath=str(pki.ca_file),
        ),
    )
    anonymous = client_context(trust_cert_path=pki.ca_file)
    known = client_context(trust_cert_path=pki.ca_file)
    pki.ca.issue_cert("client@example").configure_cert(known)
    with trio.fail_after(5):
        assert isinstance(await call_error(server.address, anonymous), RemotingError)
        assert (await call(server.address, known)).code == ResponseCode.SUCCESS


async def test_a_silent_peer_is_dropped_after_the_handshake_timeout(
    nursery, pki, autojump_clock
) -> None:
    server = await start(nursery, tls_config(pki, "permissive", tlsHandshakeTimeoutMillis=2000))
    async with await raw_connect(server.address) as stream:
        with trio.fail_after(3):
            assert await RawPeer(stream).receive() is None


def test_config_is_checked(pki) -> None:
    with pytest.raises(ValueError, match="needs tlsServerCertPath"):
        ServerNetConfig(tlsServerMode="enforcing").validate()
    with pytest.raises(ValueError, match="tlsServerMode must be one of"):
        ServerNetConfig(tlsServerMode="on").validate()
    with pytest.raises(ValueError, match="tlsServerTrustCertPath"):
        tls_config(pki, "permissive", tlsServerNeedClientAuth="require")
