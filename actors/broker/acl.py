"""The broker's plain ACL: the router guard and the actor that reloads plain_acl.yml.

With ``aclEnable=true`` every request passes ``AclGuard`` once, in the router, before any
handler (actors/remoting/router.py ``Router.guard``); the decision itself is sans-IO
(protocol/acl).  A refusal is answered NO_PERMISSION (16) with Apache's reason text; Apache
4.9.7 answers SYSTEM_ERROR (1) with the same text (README, "Intended differences").  Each
refusal is logged with the access key and the peer, never a secret or a signature.

``acl_file_watcher`` polls the file's (mtime, size, inode) on trio's clock, every 5 s as
Java's AclFileWatchService, and swaps in the new rules.  A file that does not parse, or that
has gone, leaves the rules in force as they were (logged): half-written or moved-away files
during an edit must not lock every client out.  At start-up a missing file means no accounts
(everything is refused, as Java, which creates an empty one); a file that does not parse
stops the broker with the reason.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import attrs
import trio

from actors.remoting.router import RequestContext
from protocol.acl import AclConfigError, PlainAcl, parse_plain_acl
from protocol.codes import ResponseCode
from protocol.command import RemotingCommand

log = logging.getLogger(__name__)

WATCH_INTERVAL = 5.0
LOG_EVERY = 1.0
DEFAULT_ACL_FILE = "conf/plain_acl.yml"

_Stamp = tuple[int, int, int]


def acl_file_path(rocketmq_home: str, configured: str) -> Path:
    """``plainAclFile`` (default conf/plain_acl.yml), relative to ROCKETMQ_HOME as in Java."""
    path = Path(configured or DEFAULT_ACL_FILE)
    return path if path.is_absolute() else Path(rocketmq_home) / path


def _stamp(path: Path) -> _Stamp | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _read(path: Path) -> tuple[_Stamp | None, str | None]:
    stamp = _stamp(path)
    if stamp is None:
        return None, None
    try:
        return stamp, path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, None


def peer_ip(peer: str) -> str:
    """ "ip:port" -> ip (Java keeps what comes before the last colon)."""
    host, sep, _ = peer.rpartition(":")
    return host.strip("[]") if sep else peer


@attrs.define(eq=False)
class AclGuard:
    """``Router.guard`` for a broker with ``aclEnable=true``."""

    path: Path
    acl: PlainAcl = attrs.field(factory=PlainAcl)
    stamp: _Stamp | None = None
    refused: int = 0
    _logged: dict[str, tuple[float, int]] = attrs.field(factory=dict)

    @classmethod
    def load(cls, path: Path) -> AclGuard:
        """Read the file now; AclConfigError if it does not parse."""
        stamp, text = _read(path)
        if text is None:
            log.error("ACL: %s does not exist: no account is known, every request is refused", path)
            return cls(path)
        guard = cls(path, _parse(path, text), stamp)
        log.info("ACL: loaded %s (%d accounts)", path, len(guard.acl.accounts))
        return guard

    def __call__(self, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand | None:
        peer = ctx.peer
        try:
            refusal = self.acl.check(req.code, req.ext_fields, req.body, peer_ip(peer))
        except Exception as exc:  # a bug here must refuse, not let the request through
            log.exception("ACL: check of code %d from %s failed", req.code, peer)
            return req.reply(ResponseCode.NO_PERMISSION, f"ACL check failed: {exc!r}")
        if refusal is None:
            return None
        self.refused += 1
        self._log(peer, req.code, refusal.access_key, refusal.reason)
        return req.reply(ResponseCode.NO_PERMISSION, refusal.remark)

    def _log(self, peer: str, code: int, access_key: str | None, reason: str) -> None:
        # One line per address and second at most: a peer sending refused requests in a
        # loop must not turn into a flood of log lines.
        host, now = peer_ip(peer), trio.current_time()
        last, quiet = self._logged.get(host, (-LOG_EVERY, 0))
        if now - last < LOG_EVERY:
            self._logged[host] = (last, quiet + 1)
            return
        if len(self._logged) > 10_000:
            self._logged.clear()
        self._logged[host] = (now, 0)
        more = f" ({quiet} more refused from {host} since the last line)" if quiet else ""
        log.warning(
            "ACL: refused code %d from %s (accessKey=%s): %s%s",
            code,
            peer,
            access_key,
            reason,
            more,
        )

    async def reload_if_changed(self) -> bool:
        """Re-read the file if its stamp changed; True if new rules are in force."""
        # In the event loop on purpose: a stat (and, on change, a read) of a small local file
        # every 5 s costs microseconds, and a thread hop would let an autojump-clock test
        # move time on before the new rules are in force.
        await trio.lowlevel.checkpoint()
        stamp, text = _read(self.path)
        if stamp == self.stamp:
            return False
        if text is None:
            log.warning("ACL: %s has gone; the rules loaded before stay in force", self.path)
            self.stamp = None
            return False
        try:
            acl = _parse(self.path, text)
        except AclConfigError as exc:
            log.error("ACL: %s not reloaded, the previous rules stay in force: %s", self.path, exc)
            self.stamp = stamp
            return False
        self.acl, self.stamp = acl, stamp
        log.info("ACL: reloaded %s (%d accounts)", self.path, len(acl.accounts))
        return True


def _parse(path: Path, text: str) -> PlainAcl:
    try:
        acl = parse_plain_acl(text)
    except AclConfigError as exc:
        raise AclConfigError(f"{path}: {exc}") from None
    for warning in acl.warnings:
        log.warning("ACL: %s: %s", path, warning)
    return acl


async def acl_file_watcher(
    guard: AclGuard,
    *,
    interval: float = WATCH_INTERVAL,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Reload ``guard``'s file whenever it changes, checking every ``interval`` seconds."""
    task_status.started()
    while True:
        await trio.sleep(interval)
        await guard.reload_if_changed()
