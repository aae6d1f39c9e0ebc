"""Remote address patterns of plain_acl.yml (Java's RemoteAddressStrategyFactory).

| pattern | matches |
|---|---|
| empty / absent | nothing (an account without ``whiteRemoteAddress`` must sign) |
| ``*``, ``*.*.*.*``, ``*:*:*:*:*:*:*:*`` | every address |
| ``192.168.1.1``, ``::1`` | that address |
| ``192.168.1.1,10.0.0.2`` | any listed address |
| ``192.168.1.{1,2}`` | 192.168.1.1 and 192.168.1.2 (IPv6: ``1::{1,2}``) |
| ``192.168.*.*``, ``192.168.1.*`` | the first octet that is ``*`` or ``a-b`` is tested, earlier ones |
| ``192.168.1.1-10``, ``10.0.0-3.*`` | must be equal, later ones are not looked at |
| ``1050::5:600:300c:*``, ``…:1-ff`` | IPv6: the last group (or the one before a final ``*``), hex |

A pattern Java refuses is refused here too (``AclConfigError``), so a broker never starts
with a white list that means something other than what it says.
"""

from __future__ import annotations

import ipaddress

import attrs


class AddressPatternError(ValueError):
    """A whiteRemoteAddress pattern that Java's broker would refuse."""


def _ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _expand6(text: str) -> str:
    return ipaddress.IPv6Address(text).exploded.upper()


def _canonical(address: str) -> str | None:
    """An address as the patterns compare it: IPv4 as written, IPv6 expanded, else None."""
    if _ipv4(address):
        return address
    if _ipv6(address):
        return _expand6(address)
    return None


@attrs.frozen
class AddressPattern:
    """A parsed pattern; ``matches(ip)`` takes the peer's IP without port."""

    text: str
    kind: str  # "none", "any", "set", "range4", "range6"
    addresses: frozenset[str] = frozenset()
    head: tuple[str, ...] = ()
    start: int = 0
    end: int = 0

    def matches(self, ip: str) -> bool:
        kind = self.kind
        if kind == "none":
            return False
        if kind == "any":
            return True
        if kind == "set":
            canonical = _canonical(ip)
            return canonical is not None and canonical in self.addresses
        index = len(self.head)
        if kind == "range4":
            if not _ipv4(ip):
                return False
            parts = ip.split(".")
        else:
            if not _ipv6(ip):
                return False
            parts = _expand6(ip).split(":")
        if tuple(parts[:index]) != self.head:
            return False
        value = int(parts[index], 16 if kind == "range6" else 10)
        return self.start <= value <= self.end


def _range_bounds(value: str, *, hexadecimal: bool, pattern: str) -> tuple[int, int] | None:
    top = 0xFFFF if hexadecimal else 255
    if value == "*":
        return 0, top
    if "-" not in value:
        return None
    low, _, high = value.partition("-")
    try:
        start, end = int(low, 16 if hexadecimal else 10), int(high, 16 if hexadecimal else 10)
    except ValueError:
        raise AddressPatternError(f"bad range {value!r} in address pattern {pattern!r}") from None
    if not (0 <= start <= end <= top) or not low:
        raise AddressPatternError(f"bad range {value!r} in address pattern {pattern!r}")
    return start, end


def _range4(pattern: str) -> AddressPattern:
    parts = [p.strip() for p in pattern.split(".")]
    if len(parts) != 4:
        raise AddressPatternError(f"address pattern {pattern!r} does not have four parts")
    for index in (1, 2, 3):
        bounds = _range_bounds(parts[index], hexadecimal=False, pattern=pattern)
        # Java's RangeRemoteAddressStrategy takes a range only if it ends above 0.
        if bounds is not None and bounds[1] > 0:
            head = tuple(parts[:index])
            if not all(p.isdigit() and 0 <= int(p) <= 255 for p in head):
                raise AddressPatternError(f"address pattern {pattern!r} has a bad prefix")
            return AddressPattern(pattern, "range4", head=head, start=bounds[0], end=bounds[1])
    raise AddressPatternError(f"address pattern {pattern!r} has no usable '*' or range")


def _range6(pattern: str) -> AddressPattern:
    # Java supports the wildcard in the last group, or a range in the last but one followed
    # by a final '*': "prefix:*", "prefix:a-b", "prefix:a-b:*".
    groups = pattern.split(":")
    if groups[-1] == "*" and len(groups) >= 2 and "-" in groups[-2]:
        prefix, value, width = ":".join(groups[:-2]), groups[-2], 6
    else:
        prefix, value, width = ":".join(groups[:-1]), groups[-1], 7
    bounds = _range_bounds(value, hexadecimal=True, pattern=pattern)
    if bounds is None or "*" in prefix or "-" in prefix:
        raise AddressPatternError(f"address pattern {pattern!r}: '*' or a range must come last")
    try:
        head = _expand_prefix(prefix, width)
    except ValueError:
        raise AddressPatternError(f"address pattern {pattern!r} has a bad prefix") from None
    return AddressPattern(pattern, "range6", head=head, start=bounds[0], end=bounds[1])


def _expand_prefix(prefix: str, width: int) -> tuple[str, ...]:
    if "::" in prefix:
        left, _, right = prefix.partition("::")
        lefts = left.split(":") if left else []
        rights = right.split(":") if right else []
        missing = width - len(lefts) - len(rights)
        if missing < 0:
            raise ValueError(prefix)
        groups = [*lefts, *(["0"] * missing), *rights]
    else:
        groups = prefix.split(":")
    if len(groups) != width:
        raise ValueError(prefix)
    for group in groups:
        if not group or len(group) > 4:
            raise ValueError(prefix)
        int(group, 16)
    return tuple(group.upper().zfill(4) for group in groups)


def _address_set(pattern: str, addresses: list[str]) -> AddressPattern:
    canonical = set()
    for address in addresses:
        value = _canonical(address.strip())
        if value is None:
            raise AddressPatternError(f"{address!r} in address pattern {pattern!r} is no address")
        canonical.add(value)
    return AddressPattern(pattern, "set", addresses=frozenset(canonical))


def parse_address_pattern(text: str | None) -> AddressPattern:
    """Parse one pattern of ``globalWhiteRemoteAddresses`` or ``whiteRemoteAddress``."""
    pattern = (text or "").strip()
    if not pattern:
        return AddressPattern("", "none")
    if pattern in ("*", "*.*.*.*", "*:*:*:*:*:*:*:*"):
        return AddressPattern(pattern, "any")
    if pattern.endswith("}"):
        head, brace, tail = pattern.rpartition("{")
        separator = ":" if ":" in pattern else "."
        if not brace or not head.endswith(separator):
            raise AddressPatternError(f"address pattern {pattern!r}: '{{' must open the last part")
        items = [item for item in tail[:-1].split(",") if item]
        return _address_set(pattern, [head + item for item in items])
    if "," in pattern:
        return _address_set(pattern, [item for item in pattern.split(",") if item])
    if "*" in pattern or "-" in pattern:
        return _range6(pattern) if ":" in pattern else _range4(pattern)
    return _address_set(pattern, [pattern])
