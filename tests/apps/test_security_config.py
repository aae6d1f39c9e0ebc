"""Security keys in broker.conf / namesrv.conf: Apache's dotted names, checks, bind address."""

from __future__ import annotations

import pytest

from apps import broker, namesrv
from apps._cli import CliError


def test_apache_tls_names_and_ours_are_the_same_keys() -> None:
    props = {
        "tls.server.mode": "permissive",
        "tls.server.certPath": "/c.pem",
        "tlsServerKeyPath": "/k.pem",
        "bindAddress": "127.0.0.1",
        "aclEnable": "true",
        "maxConnectionsPerAddress": "5",
    }
    config, _, _, net = broker.build_config(props)
    assert config.aclEnable
    assert (net.tlsServerMode, net.tlsServerCertPath, net.tlsServerKeyPath) == (
        "permissive",
        "/c.pem",
        "/k.pem",
    )
    assert (net.bindAddress, net.maxConnectionsPerAddress) == ("127.0.0.1", 5)
    ns_config, ns_net = namesrv.build_config({"tls.server.mode": "disabled", "bindAddress": "::1"})
    assert ns_net.bindAddress == "::1"
    assert ns_config.listenPort == 9876


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"tls.server.mode": "enforcing"}, "needs tlsServerCertPath"),
        ({"tlsServerMode": "strict"}, "tlsServerMode must be one of"),
        ({"maxFramesPerSecond": "-1"}, "maxFramesPerSecond must be >= 0"),
    ],
)
def test_bad_security_config_is_one_clear_error(props: dict[str, str], message: str) -> None:
    with pytest.raises(CliError, match=message):
        broker.build_config(props)
    with pytest.raises(CliError, match=message):
        namesrv.build_config(props)
