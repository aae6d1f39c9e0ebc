"""whiteRemoteAddress / globalWhiteRemoteAddresses patterns (Java's RemoteAddressStrategyFactory)."""

from __future__ import annotations

import pytest

from protocol.acl.addresses import AddressPatternError, parse_address_pattern

CASES = [
    # pattern, matching, not matching
    ("", [], ["127.0.0.1", "::1"]),
    ("*", ["1.2.3.4", "::1"], []),
    ("*.*.*.*", ["10.0.0.1"], []),
    ("192.168.1.1", ["192.168.1.1"], ["192.168.1.2", "192.168.1.10"]),
    ("192.168.1.1,10.0.0.2", ["192.168.1.1", "10.0.0.2"], ["10.0.0.1"]),
    ("192.168.1.{1,2}", ["192.168.1.1", "192.168.1.2"], ["192.168.1.3", "192.168.1.12"]),
    ("192.168.*.*", ["192.168.0.1", "192.168.255.9"], ["192.169.0.1", "10.168.0.1"]),
    ("192.168.1.*", ["192.168.1.0", "192.168.1.255"], ["192.168.10.1", "192.168.2.1"]),
    ("192.168.1.1-10", ["192.168.1.1", "192.168.1.10"], ["192.168.1.0", "192.168.1.11"]),
    ("10.0.2-3.*", ["10.0.2.7", "10.0.3.250"], ["10.0.4.1", "10.0.1.1"]),
    ("10.*.*.*", ["10.1.2.3"], ["11.1.2.3"]),
    ("::1", ["::1", "0:0:0:0:0:0:0:1"], ["::2", "127.0.0.1"]),
    (
        "1050::5:600:300c:*",
        ["1050:0:0:0:5:600:300c:1", "1050::5:600:300c:ffff"],
        ["1050::5:600:300d:1"],
    ),
    (
        "1050::5:600:300c:1-ff",
        ["1050::5:600:300c:1", "1050::5:600:300c:ff"],
        ["1050::5:600:300c:100"],
    ),
    ("1050::5:600:{1,2}", ["1050::5:600:1", "1050::5:600:2"], ["1050::5:600:3"]),
]


@pytest.mark.parametrize(("pattern", "yes", "no"), CASES)
def test_pattern(pattern: str, yes: list[str], no: list[str]) -> None:
    parsed = parse_address_pattern(pattern)
    for ip in yes:
        assert parsed.matches(ip), f"{pattern} should match {ip}"
    for ip in no:
        assert not parsed.matches(ip), f"{pattern} should not match {ip}"


@pytest.mark.parametrize("pattern", ["memory", "unknown"])
def test_non_ip_peers_match_only_the_wildcard(pattern: str) -> None:
    assert not parse_address_pattern("192.168.*.*").matches(pattern)
    assert not parse_address_pattern("::1").matches(pattern)
    assert parse_address_pattern("*").matches(pattern)


@pytest.mark.parametrize(
    "pattern",
    [
        "192.168.1",
        "192.168.1.300",
        "hello",
        "192.168.1.10-2",
        "192.168.1.-5",
        "1.2.3.{1,x}",
        "1.2.3.4,5",
    ],
)
def test_patterns_java_refuses_are_refused(pattern: str) -> None:
    with pytest.raises(AddressPatternError):
        parse_address_pattern(pattern)
