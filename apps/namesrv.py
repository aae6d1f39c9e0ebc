"""Run a RocketMQ 4.9 compatible name server: ``python apps/namesrv.py [-c conf/namesrv.conf] [-p]``.

```
trio.run(main)
└─ root nursery ......... SIGINT/SIGTERM cancels it: exit 0
   ├─ signal_watcher
   └─ namesrv ........... actors/namesrv/app.py
```
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence

import trio

from actors.namesrv.app import namesrv
from actors.namesrv.config import NamesrvConfig
from actors.remoting.netconfig import NET_ALIASES, ServerNetConfig
from actors.shutdown import signal_watcher
from apps import _cli


def build_config(props: dict[str, str]) -> tuple[NamesrvConfig, ServerNetConfig]:
    config, net = _cli.load_configs(props, NamesrvConfig(), ServerNetConfig(), aliases=NET_ALIASES)
    try:
        net.validate()
    except ValueError as exc:
        raise _cli.CliError(f"bad config value: {exc}") from None
    return config, net


async def serve(config: NamesrvConfig, net: ServerNetConfig | None = None) -> None:
    async with trio.open_nursery() as root:
        await root.start(signal_watcher, root.cancel_scope)
        await root.start(functools.partial(namesrv, config, net=net))


def main(argv: Sequence[str] | None = None) -> int:
    parser = _cli.make_parser("namesrv", "RocketMQ 4.9 compatible name server")
    config, net = _cli.prepare(parser, argv, build_config)
    return _cli.run(functools.partial(serve, config, net), name="namesrv")


if __name__ == "__main__":
    sys.exit(main())
