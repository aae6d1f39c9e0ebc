"""BrokerConfig: RocketMQ's broker keys with 4.9.8 defaults (reference §7.13) and startup defaults.

A broker.conf mixes keys of Java's BrokerConfig, NettyServerConfig and MessageStoreConfig in one
flat properties file; apps/broker.py applies the same dict to BrokerConfig and to the store's
MessageStoreConfig (``apps._cli.load_configs``) and warns about keys that neither knows (Java
drops them silently, which hides typos such as ``flushDiskTpye``).
"""

from __future__ import annotations

import os
import socket

import attrs

from protocol.properties import config_to_properties

PERM_INHERIT = 1
PERM_WRITE = 2
PERM_READ = 4


def _env_home() -> str:
    return os.environ.get("ROCKETMQ_HOME", "")


def _env_namesrv() -> str:
    return os.environ.get("NAMESRV_ADDR", "")


@attrs.frozen(kw_only=True)
class BrokerConfig:
    """Field names are RocketMQ's own keys, so broker.conf maps onto them one to one."""

    rocketmqHome: str = attrs.field(factory=_env_home)
    namesrvAddr: str = attrs.field(factory=_env_namesrv)
    # Empty means "decide at startup" (local address / host name), see ``resolve_defaults``.
    brokerIP1: str = ""
    brokerIP2: str = ""
    brokerName: str = ""
    brokerClusterName: str = "DefaultCluster"
    brokerId: int = 0
    brokerPermission: int = PERM_READ | PERM_WRITE
    listenPort: int = 10911
    serverChannelMaxIdleTimeSeconds: int = 120
    defaultTopicQueueNums: int = 8
    autoCreateTopicEnable: bool = True
    clusterTopicEnable: bool = True
    brokerTopicEnable: bool = True
    autoCreateSubscriptionGroup: bool = True
    traceTopicEnable: bool = False
    msgTraceTopicName: str = "RMQ_SYS_TRACE_TOPIC"
    sendMessageThreadPoolNums: int = 1
    pullMessageThreadPoolNums: int = 16
    sendThreadPoolQueueCapacity: int = 10000
    pullThreadPoolQueueCapacity: int = 100000
    flushConsumerOffsetInterval: int = 5000
    rejectTransactionMessage: bool = False
    longPollingEnable: bool = True
    shortPollingTimeMills: int = 1000
    notifyConsumerIdsChangedEnable: bool = True
    transferMsgByHeap: bool = True
    regionId: str = "DefaultRegion"
    traceOn: bool = True
    registerBrokerTimeoutMills: int = 6000
    registerNameServerPeriod: int = 30000
    forceRegister: bool = True
    compressedRegister: bool = False
    slaveReadEnable: bool = False
    brokerFastFailureEnable: bool = True
    waitTimeMillsInSendQueue: int = 200
    waitTimeMillsInPullQueue: int = 5000
    waitTimeMillsInHeartbeatQueue: int = 31000
    waitTimeMillsInTransactionQueue: int = 3000
    startAcceptSendRequestTimeStamp: int = 0
    enablePropertyFilter: bool = False
    filterSupportRetry: bool = False
    aclEnable: bool = False
    # plain_acl.yml when aclEnable=true; relative to rocketmqHome (Java's system property
    # rocketmq.acl.plain.file, default conf/plain_acl.yml).
    plainAclFile: str = "conf/plain_acl.yml"
    transactionTimeOut: int = 6000
    transactionCheckMax: int = 15
    transactionCheckInterval: int = 60000
    channelExpiredTimeoutMillis: int = 120000
    # How long shutdown waits for in-flight requests before cancelling them.
    shutdownGraceMillis: int = 5000
    # The -c file (RocketMQ 5's key): UPDATE_BROKER_CONFIG persists changed keys into it.
    brokerConfigPath: str = ""
    # RocketMQ 5's metrics keys: PROM serves /metrics, /healthz, /readyz over HTTP.
    metricsExporterType: str = "DISABLE"
    metricsPromExporterHost: str = ""
    metricsPromExporterPort: int = 5557

    @property
    def broker_addr(self) -> str:
        return f"{self.brokerIP1}:{self.listenPort}"


def local_address() -> str:
    """The address other hosts reach us at (no packet is sent: UDP connect only picks a route)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("10.255.255.255", 1))
            address = str(sock.getsockname()[0])
    except OSError:
        return "127.0.0.1"
    return address if address != "0.0.0.0" else "127.0.0.1"


def resolve_defaults(config: BrokerConfig) -> BrokerConfig:
    """Fill the defaults Java computes at startup: local address and host name."""
    ip1 = config.brokerIP1 or local_address()
    return attrs.evolve(
        config,
        brokerIP1=ip1,
        brokerIP2=config.brokerIP2 or ip1,
        brokerName=config.brokerName or socket.gethostname(),
    )


def effective_properties(broker: BrokerConfig, store: object) -> dict[str, str]:
    """What ``-p`` prints and GET_BROKER_CONFIG returns: every key of both configs."""
    merged = config_to_properties(broker)
    merged.update(config_to_properties(store))
    return dict(sorted(merged.items()))
