"""What operators' tools need beyond the admin basics (issue 18): UPDATE_BROKER_CONFIG,
INVOKE_BROKER_TO_RESET_OFFSET (resetOffsetByTime) and VIEW_BROKER_STATS_DATA (statsAll).

UPDATE_BROKER_CONFIG applies a key at once when the broker reads it at each use (``LIVE``);
every other known key is written to the config file only and takes effect at the next start
(the reply's remark names them).  The file is edited line by line, so its comments, order and
untouched keys stay as the operator wrote them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, cast

import attrs
import trio

from actors.broker.context import BrokerContext
from actors.remoting.router import Channel, RequestContext, RequestError, Router
from protocol.bodies.admin import BrokerStatsData, BrokerStatsItem, ResetOffsetBody
from protocol.bodies.common import MessageQueue
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.convert import decode_header, encode_body, encode_header
from protocol.headers.admin import ViewBrokerStatsDataRequestHeader
from protocol.headers.client import ResetOffsetRequestHeader
from protocol.properties import apply_properties, parse_properties
from storage.config import STORE_ALIASES

log = logging.getLogger(__name__)

# BrokerConfig keys every reader takes from ctx.config at the time of use.
LIVE_BROKER_KEYS = frozenset(
    {
        "brokerPermission",
        "autoCreateSubscriptionGroup",
        "waitTimeMillsInSendQueue",
        "longPollingEnable",
        "shortPollingTimeMills",
        "notifyConsumerIdsChangedEnable",
        "rejectTransactionMessage",
        "slaveReadEnable",
        "startAcceptSendRequestTimeStamp",
        "registerBrokerTimeoutMills",
        "shutdownGraceMillis",
        "traceOn",
        "regionId",
        "enablePropertyFilter",
        "channelExpiredTimeoutMillis",
        "transactionTimeOut",
        "transactionCheckMax",
        "transactionCheckInterval",
    }
)
# MessageStoreConfig keys read from ctx.store_config at each use.
LIVE_STORE_KEYS = frozenset({"syncFlushTimeout", "defaultQueryMaxNum"})


def _known(config: Any) -> set[str]:
    return {f.name for f in attrs.fields(type(config))}


def rewrite_properties(text: str, changes: dict[str, str]) -> str:
    """``text`` with each key of ``changes`` set: its line replaced in place (comments, blank
    lines and other keys kept), keys not yet in the file appended at the end."""
    lines = text.splitlines(keepends=True)
    pending = dict(changes)
    out = []
    for line in lines:
        stripped = line.strip()
        if stripped and stripped[0] not in "#!":
            key = stripped.split("=", 1)[0].split(":", 1)[0].strip()
            if key in pending:
                out.append(f"{key}={pending.pop(key)}\n")
                continue
        out.append(line)
    if pending:
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
        out.extend(f"{key}={value}\n" for key, value in pending.items())
    return "".join(out)


def persist_config_file(path: Path, changes: dict[str, str]) -> None:
    """Rewrite ``path`` with ``changes`` atomically (a crash leaves the old or the new file)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(rewrite_properties(text, changes))
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


class OpsHandlers:
    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx
        self.windows = ctx.ops.windows

    def register(self, router: Router) -> None:
        router.register(RequestCode.UPDATE_BROKER_CONFIG, self.update_broker_config, limit=1)
        router.register(RequestCode.INVOKE_BROKER_TO_RESET_OFFSET, self.reset_offset, limit=4)
        router.register(RequestCode.VIEW_BROKER_STATS_DATA, self.view_stats, limit=4)

    # ------------------------------------------------------------ UPDATE_BROKER_CONFIG

    async def update_broker_config(
        self, _: RequestContext, req: RemotingCommand
    ) -> RemotingCommand:
        ctx = self.ctx
        try:
            props = parse_properties(bytes(req.body or b"").decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise RequestError(ResponseCode.SYSTEM_ERROR, f"string2Properties error: {exc}")
        if not props:
            raise RequestError(ResponseCode.SYSTEM_ERROR, "string2Properties error: no key")
        broker_keys, store_keys = _known(ctx.config), _known(ctx.store_config)
        unknown = [
            k for k in props if k not in broker_keys and STORE_ALIASES.get(k, k) not in store_keys
        ]
        if unknown:
            raise RequestError(
                ResponseCode.SYSTEM_ERROR, f"unknown broker config key(s): {', '.join(unknown)}"
            )
        try:
            # parsed first, applied after: a bad value changes nothing
            new_broker, _load = apply_properties(
                ctx.config, {k: v for k, v in props.items() if k in broker_keys}
            )
            new_store, _load = apply_properties(
                ctx.store_config,
                {k: v for k, v in props.items() if STORE_ALIASES.get(k, k) in store_keys},
                aliases=STORE_ALIASES,
            )
        except ValueError as exc:
            raise RequestError(ResponseCode.SYSTEM_ERROR, f"bad config value: {exc}")
        live_broker = {k for k in props if k in LIVE_BROKER_KEYS}
        live_store = {k for k in props if k in LIVE_STORE_KEYS}
        later = sorted(set(props) - live_broker - live_store)
        path = ctx.config.brokerConfigPath
        if path:
            try:
                await trio.to_thread.run_sync(persist_config_file, Path(path), props)
            except OSError as exc:
                raise RequestError(
                    ResponseCode.SYSTEM_ERROR, f"cannot persist {path}: {exc.strerror or exc}"
                )
        elif later:
            raise RequestError(
                ResponseCode.SYSTEM_ERROR,
                f"{', '.join(later)} take effect only at start and this broker has no config "
                "file to persist them to",
            )
        if live_broker:
            ctx.config = attrs.evolve(
                ctx.config, **{k: getattr(new_broker, k) for k in live_broker}
            )
        if live_store:
            ctx.store_config = attrs.evolve(
                ctx.store_config, **{k: getattr(new_store, k) for k in live_store}
            )
        log.info(
            "broker config updated: %s (applied now: %s; at next start: %s)",
            props,
            sorted(live_broker | live_store) or "none",
            later or "none",
        )
        if "brokerPermission" in live_broker:
            # name servers learn the new permission now, not at the next 30 s registration
            ctx.topic_changes.value += 1
        remark = f"applied at next start: {', '.join(later)}" if later else None
        return req.reply(ResponseCode.SUCCESS, remark)

    # ------------------------------------------------------------ resetOffsetByTime

    async def reset_offset(self, _: RequestContext, req: RemotingCommand) -> RemotingCommand:
        """Java's Broker2Client.resetOffset: per queue the offset at ``timestamp`` (-1: the
        end), kept at the consumer's own offset when that is earlier unless forced; sent to
        every online member of the group, which moves there and commits it."""
        ctx = self.ctx
        h = decode_header(ResetOffsetRequestHeader, req.ext_fields)
        config = ctx.topics.get(h.topic)
        if config is None:
            raise RequestError(
                ResponseCode.SYSTEM_ERROR,
                f"[reset-offset] reset offset failed, no topic in this broker. topic={h.topic}",
            )
        table: dict[MessageQueue, int] = {}
        for queue_id in range(config.write_queue_nums):
            mq = MessageQueue(topic=h.topic, broker_name=ctx.config.brokerName, queue_id=queue_id)
            consumer = ctx.offsets.query(h.group, h.topic, queue_id)
            if consumer == -1:
                raise RequestError(
                    ResponseCode.SYSTEM_ERROR, f"THe consumer group <{h.group}> not exist"
                )
            if h.timestamp == -1:
                at = ctx.store.max_offset_in_queue(h.topic, queue_id)
            else:
                at = ctx.store.offset_in_queue_by_time(h.topic, queue_id, h.timestamp)
            at = max(at, 0)
            table[mq] = at if h.is_force or at < consumer else consumer
        entry = ctx.consumers.get(h.group)
        if entry is None or not entry.channels:
            raise RequestError(
                ResponseCode.CONSUMER_NOT_ONLINE,
                f"Consumer not online, so can not reset offset, Group: {h.group} "
                f"Topic: {h.topic} Timestamp: {h.timestamp}",
            )
        body = encode_body(ResetOffsetBody(offset_table=table))
        header = encode_header(
            ResetOffsetRequestHeader(
                topic=h.topic, group=h.group, timestamp=h.timestamp, is_force=h.is_force
            )
        )
        for member in list(entry.channels):
            channel = cast(Channel, member)
            await channel.send(
                RemotingCommand.request(
                    RequestCode.RESET_CONSUMER_CLIENT_OFFSET, header, body, oneway=True
                )
            )
        return req.reply(ResponseCode.SUCCESS, None, None, body)

    # ------------------------------------------------------------ statsAll

    async def view_stats(self, _: RequestContext, req: RemotingCommand) -> RemotingCommand:
        h = decode_header(ViewBrokerStatsDataRequestHeader, req.ext_fields)
        view = self.windows.view(self.ctx.stats, h.stats_name, h.stats_key, self.ctx.now_ms())
        if view is None:
            raise RequestError(
                ResponseCode.SYSTEM_ERROR, f"The stats <{h.stats_name}> <{h.stats_key}> not exist"
            )
        items = {
            name: BrokerStatsItem(sum=s.sum, tps=s.tps, avgpt=s.avgpt) for name, s in view.items()
        }
        body = BrokerStatsData(
            stats_minute=items["minute"], stats_hour=items["hour"], stats_day=items["day"]
        )
        return req.reply(ResponseCode.SUCCESS, None, None, encode_body(body))


async def stats_sampler(
    ctx: BrokerContext,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Snapshots for VIEW_BROKER_STATS_DATA every 10 s (Java's StatsItem sampling)."""
    task_status.started()
    while True:
        ctx.ops.windows.sample(ctx.stats, ctx.now_ms())
        await trio.sleep(10)
