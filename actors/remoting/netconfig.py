"""Network settings a server (broker or name server) takes from its config file:
the bind address, TLS (Apache's ``tls.server.*`` system properties, as broker.conf keys) and
the limits for untrusted peers.

Apache 4.9 reads TLS from system properties or ``tls.properties`` (TlsSystemConfig); here the
same settings are config keys, under a camel-case name and under Apache's dotted name
(``NET_ALIASES``), so either spelling works in broker.conf / namesrv.conf or as ``--key=value``.
"""

from __future__ import annotations

import attrs

# Apache's property names -> ours.
NET_ALIASES = {
    "tls.server.mode": "tlsServerMode",
    "tls.server.certPath": "tlsServerCertPath",
    "tls.server.keyPath": "tlsServerKeyPath",
    "tls.server.keyPassword": "tlsServerKeyPassword",
    "tls.server.need.client.auth": "tlsServerNeedClientAuth",
    "tls.server.trustCertPath": "tlsServerTrustCertPath",
    "tls.enable": "tlsEnable",
    "tls.client.authServer": "tlsClientAuthServer",
    "tls.client.trustCertPath": "tlsClientTrustCertPath",
}
TLS_MODES = ("disabled", "permissive", "enforcing")
CLIENT_AUTH = ("none", "optional", "require")


@attrs.frozen(kw_only=True)
class ServerNetConfig:
    """Field names are the config keys."""

    # All interfaces, as RocketMQ; 127.0.0.1 keeps the server on loopback.
    bindAddress: str = "0.0.0.0"
    # disabled: plain text only (a TLS hello is closed); permissive: both on one port (the
    # first byte decides, as Netty's handshake handler); enforcing: TLS only.
    tlsServerMode: str = "disabled"
    tlsServerCertPath: str = ""
    tlsServerKeyPath: str = ""
    tlsServerKeyPassword: str = ""
    tlsServerNeedClientAuth: str = "none"
    tlsServerTrustCertPath: str = ""
    # This server's own connections (the broker's to the name servers) use TLS; the peer's
    # certificate is checked only with tlsClientAuthServer=true, as Java's default test mode.
    tlsEnable: bool = False
    tlsClientAuthServer: bool = False
    tlsClientTrustCertPath: str = ""
    # A peer that has not sent its first byte or finished its handshake by then is dropped.
    tlsHandshakeTimeoutMillis: int = 10000
    # Limits for untrusted peers; past one the connection is refused or closed, with a log
    # line, and every other connection goes on.  0 = no limit.
    maxConnections: int = 10000
    maxConnectionsPerAddress: int = 1000
    # Frames a connection may send within one second (counted in windows that start when
    # a count passes the limit a second or more after the last window began).
    maxFramesPerSecond: int = 100000
    # Bytes of one connection's requests being read or handled at once (its decoder buffer
    # plus the bodies of requests not yet answered).
    maxConnectionMemoryBytes: int = 256 * 1024 * 1024

    def validate(self) -> None:
        if self.tlsServerMode not in TLS_MODES:
            raise ValueError(f"tlsServerMode must be one of {', '.join(TLS_MODES)}")
        if self.tlsServerNeedClientAuth not in CLIENT_AUTH:
            raise ValueError(f"tlsServerNeedClientAuth must be one of {', '.join(CLIENT_AUTH)}")
        if self.tlsServerMode != "disabled" and not (
            self.tlsServerCertPath and self.tlsServerKeyPath
        ):
            raise ValueError(
                f"tlsServerMode={self.tlsServerMode} needs tlsServerCertPath and tlsServerKeyPath"
            )
        if self.tlsServerNeedClientAuth != "none" and not self.tlsServerTrustCertPath:
            raise ValueError("client authentication needs tlsServerTrustCertPath")
        for name in (
            "maxConnections",
            "maxConnectionsPerAddress",
            "maxFramesPerSecond",
            "maxConnectionMemoryBytes",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.tlsHandshakeTimeoutMillis <= 0:
            raise ValueError("tlsHandshakeTimeoutMillis must be > 0")
