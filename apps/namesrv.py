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
from actors.shutdown import signal_watcher
from apps import _cli


def build_config(props: dict[str, str]) -> NamesrvConfig:
    [config] = _cli.load_configs(props, NamesrvConfig())
    return config  # type: ignore[no-any-return]


async def serve(config: NamesrvConfig) -> None:
    async with trio.open_nursery() as root:
        await root.start(signal_watcher, root.cancel_scope)
        await root.start(namesrv, config)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _cli.make_parser("namesrv", "RocketMQ 4.9 compatible name server")
    config = _cli.prepare(parser, argv, build_config)
    return _cli.run(functools.partial(serve, config), name="namesrv")


if __name__ == "__main__":
    sys.exit(main())
