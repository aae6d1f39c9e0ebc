"""Limits for untrusted peers: connections in total and per address, checked at accept.
(The per-connection frame rate and memory are checked by the connection's reader.)

Past a limit the connection is refused or closed with a log line; nothing else is touched.
Refusal log lines are rate-limited to one per address and second, so a flood of connection
attempts cannot become a flood of log lines.
"""

from __future__ import annotations

import logging

import attrs
import trio

log = logging.getLogger(__name__)

LOG_EVERY = 1.0


def peer_host(peer: str) -> str:
    """ "ip:port" -> ip."""
    host, sep, _ = peer.rpartition(":")
    return host.strip("[]") if sep else peer


@attrs.define(eq=False)
class ConnectionLimits:
    """Concurrent connections in total and per peer address (0 = no limit)."""

    max_total: int = 0
    max_per_address: int = 0
    total: int = 0
    per_address: dict[str, int] = attrs.field(factory=dict)
    refused: int = 0
    _logged: dict[str, float] = attrs.field(factory=dict)

    def admit(self, host: str, name: str) -> bool:
        """Count a new connection from ``host``; False (and a log line) if it is over a limit."""
        count = self.per_address.get(host, 0)
        reason = None
        if self.max_total and self.total >= self.max_total:
            reason = f"{self.total} connections in total (maxConnections={self.max_total})"
        elif self.max_per_address and count >= self.max_per_address:
            reason = (
                f"{count} connections from it (maxConnectionsPerAddress={self.max_per_address})"
            )
        if reason is None:
            self.total += 1
            self.per_address[host] = count + 1
            return True
        self.refused += 1
        now = trio.current_time()
        if now - self._logged.get(host, -LOG_EVERY) >= LOG_EVERY:
            if len(self._logged) > 10_000:
                self._logged.clear()
            self._logged[host] = now
            log.warning("%s: refused a connection from %s: %s", name, host, reason)
        return False

    def release(self, host: str) -> None:
        self.total -= 1
        left = self.per_address.get(host, 1) - 1
        if left > 0:
            self.per_address[host] = left
        else:
            self.per_address.pop(host, None)
