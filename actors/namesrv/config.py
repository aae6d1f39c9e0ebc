"""NameServer configuration: Java's NamesrvConfig plus the NettyServerConfig keys we honour.

Field names are RocketMQ's own property keys, so a namesrv.conf written for the Java
NameServer maps onto this class one to one (protocol/properties.py warns about the rest).
Defaults are 4.9.8's (reference §9.6); the paths under ``~`` and ``rocketmqHome`` are read
from the environment when a config is created, the way Java reads ``user.home`` and
``ROCKETMQ_HOME``.  Java's ``clusterTest``/``productEnvName`` (a test-only processor that
forwards route queries to another name server) are not implemented, so they are not fields:
a config that sets them gets the unknown-key warning instead of silent acceptance.
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs

# Keys UPDATE_NAMESRV_CONFIG may not change (answered with NO_PERMISSION).
UPDATE_BLACKLIST = frozenset({"configBlackList", "configStorePath", "kvConfigPath", "rocketmqHome"})


def _home_path(*parts: str) -> str:
    return str(Path.home().joinpath(*parts))


@attrs.frozen(kw_only=True)
class NamesrvConfig:
    rocketmqHome: str = attrs.field(factory=lambda: os.environ.get("ROCKETMQ_HOME", ""))
    kvConfigPath: str = attrs.field(factory=lambda: _home_path("namesrv", "kvConfig.json"))
    configStorePath: str = attrs.field(factory=lambda: _home_path("namesrv", "namesrv.properties"))
    orderMessageEnable: bool = False
    # NettyServerConfig
    listenPort: int = 9876
    serverChannelMaxIdleTimeSeconds: int = 120
    # RocketMQ 5's metrics keys: PROM serves /metrics, /healthz, /readyz over HTTP.
    metricsExporterType: str = "DISABLE"
    metricsPromExporterHost: str = ""
    metricsPromExporterPort: int = 5557

    @classmethod
    def in_dir(cls, directory: str | Path, *, listen_port: int = 0) -> NamesrvConfig:
        """A config keeping its files under ``directory``, on a free port (tests, embedding)."""
        base = Path(directory)
        return cls(
            rocketmqHome=str(base),
            kvConfigPath=str(base / "kvConfig.json"),
            configStorePath=str(base / "namesrv.properties"),
            listenPort=listen_port,
        )
