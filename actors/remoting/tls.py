"""TLS for the remoting server and client, on trio's SSL streams (reference §10.4).

Server modes, as Apache's ``tls.server.mode``:

* ``disabled``: no TLS and no peeking; a TLS hello then reads as an oversized frame and the
  connection is closed at once (Apache closes it too).
* ``permissive``: one port for both.  The first byte of a new connection decides, as Netty's
  HandshakeHandler: 0x16 (a TLS handshake record) starts TLS, anything else is plain text.
* ``enforcing``: TLS only; a plain-text peer is closed right after its first byte, so it
  sees the connection end instead of waiting for a reply that never comes.

Peeking consumes bytes from the socket, so the accepted stream is wrapped in
``PrefixedStream``, which hands them out again before reading on; once they are out, its
``receive_some`` *is* the socket's, so a plain-text connection pays nothing per read.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import attrs
import trio

from actors.remoting.netconfig import ServerNetConfig

log = logging.getLogger(__name__)

TLS_HANDSHAKE_RECORD = 0x16
_PEEK_SIZE = 64 * 1024


class PrefixedStream(trio.abc.Stream):
    """``transport`` with ``prefix`` (bytes already read from it) put back in front."""

    def __init__(self, transport: trio.abc.Stream, prefix: bytes | bytearray) -> None:
        self.transport = transport
        self._prefix = prefix
        # stream_addresses() reads the socket of the stream it is given
        self.socket = getattr(transport, "socket", None)

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        await trio.lowlevel.checkpoint()
        data = self._prefix if max_bytes is None else self._prefix[:max_bytes]
        self._prefix = self._prefix[len(data) :]
        if not self._prefix:
            # From now on straight to the transport, without this frame in between.
            self.receive_some = self.transport.receive_some  # type: ignore[method-assign]
        if not data:
            return await self.transport.receive_some(max_bytes)
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.transport.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.transport.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.transport.aclose()


def server_context(config: ServerNetConfig) -> ssl.SSLContext:
    """The server's SSL context from the config's certificate, key and client-auth keys."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(
        config.tlsServerCertPath,
        config.tlsServerKeyPath,
        password=config.tlsServerKeyPassword or None,
    )
    if config.tlsServerNeedClientAuth != "none":
        ctx.load_verify_locations(cafile=config.tlsServerTrustCertPath)
        ctx.verify_mode = (
            ssl.CERT_REQUIRED if config.tlsServerNeedClientAuth == "require" else ssl.CERT_OPTIONAL
        )
    return ctx


def client_context(
    *, trust_cert_path: str | Path | None = None, verify: bool = True
) -> ssl.SSLContext:
    """A client context: verifying against the system's CAs, or ``trust_cert_path``'s.

    ``verify=False`` accepts any server certificate, as Java's client does in its default
    ``tls.test.mode.enable=true``: encrypted, but not authenticated.
    """
    ctx = ssl.create_default_context(
        cafile=str(trust_cert_path) if trust_cert_path is not None else None
    )
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def tls_context(tls: ssl.SSLContext | bool) -> ssl.SSLContext | None:
    """A client's ``tls=`` argument: a context as given, True for a verifying default one."""
    if isinstance(tls, ssl.SSLContext):
        return tls
    return client_context() if tls else None


def outgoing_context(config: ServerNetConfig) -> ssl.SSLContext | None:
    """For a server's own connections (``tlsEnable``), as Java's BrokerOuterAPI client."""
    if not config.tlsEnable:
        return None
    return client_context(
        trust_cert_path=config.tlsClientTrustCertPath or None,
        verify=config.tlsClientAuthServer,
    )


@attrs.define(eq=False)
class ServerTls:
    """What the server does with a new connection before it speaks RocketMQ on it."""

    mode: str
    context: ssl.SSLContext
    handshake_timeout: float = 10.0

    @classmethod
    def from_config(cls, config: ServerNetConfig) -> ServerTls | None:
        """None for ``disabled``: the accept path then stays exactly as without TLS."""
        if config.tlsServerMode == "disabled":
            return None
        return cls(
            config.tlsServerMode,
            server_context(config),
            config.tlsHandshakeTimeoutMillis / 1000,
        )

    async def accept(self, stream: trio.abc.Stream, peer: str, name: str) -> trio.abc.Stream | None:
        """The stream to speak RocketMQ on, or None if the connection is to be closed."""
        first: bytes | bytearray = b""
        with trio.move_on_after(self.handshake_timeout):
            try:
                first = await stream.receive_some(_PEEK_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return None
            if not first:
                return None
            if first[0] != TLS_HANDSHAKE_RECORD:
                if self.mode == "enforcing":
                    log.warning("%s: %s sent plain text while TLS is enforced; closing", name, peer)
                    return None
                return PrefixedStream(stream, first)
            tls = trio.SSLStream(PrefixedStream(stream, first), self.context, server_side=True)
            try:
                await tls.do_handshake()
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                log.warning(
                    "%s: TLS handshake with %s failed: %s", name, peer, exc.__cause__ or exc
                )
                return None
            return tls
        log.warning(
            "%s: %s %s within %.3g s; closing",
            name,
            peer,
            "finished no TLS handshake" if first else "sent nothing",
            self.handshake_timeout,
        )
        return None
