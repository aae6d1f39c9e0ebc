"""Run a RocketMQ 4.9 compatible broker: ``python apps/broker.py -c conf/broker.conf [-n ADDRS] [-p]``.

```
trio.run(serve)
└─ root nursery
   ├─ signal_watcher ..... SIGINT/SIGTERM -> BrokerHandle.stop(): orderly shutdown, exit 0
   └─ broker ............. actors/broker/app.py
```
``NAMESRV_ADDR`` and ``ROCKETMQ_HOME`` are honoured as Java's start scripts do; ``-n`` and
``--namesrvAddr=...`` win over the file, the file over the environment.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from pathlib import Path

import attrs
import trio

from actors.broker.app import BrokerHandle, broker
from actors.broker.config import BrokerConfig, resolve_defaults
from actors.failover.etcd import parse_endpoints
from actors.remoting.netconfig import NET_ALIASES, ServerNetConfig
from actors.shutdown import signal_watcher
from apps import _cli
from storage.config import STORE_ALIASES, MessageStoreConfig
from storage.timer_wheel import TimerConfig


def build_config(
    props: dict[str, str],
) -> tuple[BrokerConfig, MessageStoreConfig, TimerConfig, ServerNetConfig]:
    config, store_config, timer_config, net = _cli.load_configs(
        props,
        BrokerConfig(),
        MessageStoreConfig(),
        TimerConfig(),
        ServerNetConfig(),
        aliases=STORE_ALIASES | NET_ALIASES,
    )
    try:
        store_config.validate()
        timer_config.validate()
        net.validate()
    except ValueError as exc:
        raise _cli.CliError(f"bad config value: {exc}") from None
    if config.etcdEndpoints:
        try:
            parse_endpoints(config.etcdEndpoints)
        except ValueError as exc:
            raise _cli.CliError(f"bad config value: etcdEndpoints: {exc}") from None
    # etcd raises a shorter TTL to its own minimum (1.5 election timeouts, rounded up: 2 s with
    # its default timings) and the elector fences by the TTL etcd granted, so 1 is safe
    if config.etcdLeaseTtlSeconds < 1:
        raise _cli.CliError("bad config value: etcdLeaseTtlSeconds must be at least 1")
    return resolve_defaults(config), store_config, timer_config, net


async def serve(
    config: BrokerConfig,
    store_config: MessageStoreConfig,
    timer_config: TimerConfig | None = None,
    net: ServerNetConfig | None = None,
) -> None:
    stop_requested = trio.Event()
    async with trio.open_nursery() as root:
        # Installed first, so a signal during start-up is an orderly stop too.
        await root.start(signal_watcher, lambda reason: stop_requested.set())
        handle: BrokerHandle = await root.start(
            functools.partial(broker, config, store_config, timer_config=timer_config, net=net)
        )
        await stop_requested.wait()
        handle.stop()
        # The broker task returns after its orderly shutdown; the signal watcher never does.
        await handle.stopped.wait()
        root.cancel_scope.cancel(reason="broker stopped")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _cli.make_parser("broker", "RocketMQ 4.9 compatible broker", namesrv_option=True)
    config, store_config, timer_config, net = _cli.prepare(parser, argv, build_config)
    config_file = _cli.parse_args(parser, argv)[0].configFile
    if config_file and not config.brokerConfigPath:
        # UPDATE_BROKER_CONFIG persists changed keys into the file the broker started from
        config = attrs.evolve(config, brokerConfigPath=str(Path(config_file).resolve()))
    return _cli.run(
        functools.partial(serve, config, store_config, timer_config, net), name="broker"
    )


if __name__ == "__main__":
    sys.exit(main())
