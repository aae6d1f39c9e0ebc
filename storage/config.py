"""MessageStoreConfig: the store's half of broker.conf, with RocketMQ 4.9.8 names and defaults (§6.1).

Field names are RocketMQ's camelCase keys so ``protocol.properties.apply_properties`` maps a
user's broker.conf onto this class one to one.
"""

from __future__ import annotations

import enum
import os

import attrs

STORE_ALIASES = {
    # renamed in 4.5; old broker.conf files still use them
    "mapedFileSizeCommitLog": "mappedFileSizeCommitLog",
    "mapedFileSizeConsumeQueue": "mappedFileSizeConsumeQueue",
    "warmMapedFileEnable": "warmMappedFileEnable",
}


class FlushDiskType(enum.Enum):
    ASYNC_FLUSH = "ASYNC_FLUSH"
    SYNC_FLUSH = "SYNC_FLUSH"


class BrokerRole(enum.Enum):
    ASYNC_MASTER = "ASYNC_MASTER"
    SYNC_MASTER = "SYNC_MASTER"
    SLAVE = "SLAVE"


_UNITS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_delay_levels(text: str) -> list[int]:
    """``"1s 5s ... 2h"`` -> delays in ms; level n is element n-1. ValueError names the bad token."""
    out: list[int] = []
    for token in text.split():
        unit = _UNITS_MS.get(token[-1:])
        if unit is None or not token[:-1].isdigit():
            raise ValueError(f"messageDelayLevel: bad delay {token!r} (want e.g. 5s, 2m, 1h, 1d)")
        out.append(int(token[:-1]) * unit)
    return out


def parse_delete_when(text: str) -> set[int]:
    """``"04"`` or ``"04;16"`` -> hours of day on which time-based deletion runs."""
    hours: set[int] = set()
    for part in text.split(";"):
        part = part.strip()
        if part:
            if not part.isdigit() or not 0 <= int(part) <= 23:
                raise ValueError(f"deleteWhen: {part!r} is not an hour 0..23")
            hours.add(int(part))
    return hours


def _default_root() -> str:
    return os.path.join(os.path.expanduser("~"), "store")


@attrs.frozen
class MessageStoreConfig:
    storePathRootDir: str = attrs.field(factory=_default_root)
    storePathCommitLog: str = ""  # "" = <storePathRootDir>/commitlog
    mappedFileSizeCommitLog: int = 1024 * 1024 * 1024
    mappedFileSizeConsumeQueue: int = 300_000 * 20
    enableConsumeQueueExt: bool = False
    flushDiskType: FlushDiskType = FlushDiskType.ASYNC_FLUSH
    flushIntervalCommitLog: int = 500
    flushCommitLogTimed: bool = True
    flushCommitLogLeastPages: int = 4
    flushCommitLogThoroughInterval: int = 10_000
    commitIntervalCommitLog: int = 200
    commitCommitLogLeastPages: int = 4
    commitCommitLogThoroughInterval: int = 200
    syncFlushTimeout: int = 5000
    slaveTimeout: int = 3000
    flushIntervalConsumeQueue: int = 1000
    flushConsumeQueueLeastPages: int = 2
    flushConsumeQueueThoroughInterval: int = 60_000
    flushDelayOffsetInterval: int = 10_000
    deleteWhen: str = "04"
    fileReservedTime: int = 72
    cleanResourceInterval: int = 10_000
    deleteCommitLogFilesInterval: int = 100
    deleteConsumeQueueFilesInterval: int = 100
    destroyMapedFileIntervalForcibly: int = 120_000
    redeleteHangedFileInterval: int = 120_000
    diskMaxUsedSpaceRatio: int = 75
    cleanFileForciblyEnable: bool = True
    # Java system properties rocketmq.broker.diskSpace{WarningLevel,CleanForcibly}Ratio
    diskSpaceWarningLevelRatio: float = 0.90
    diskSpaceCleanForciblyRatio: float = 0.85
    maxMessageSize: int = 4 * 1024 * 1024
    checkCRCOnRecover: bool = True
    maxTransferBytesOnMessageInMemory: int = 256 * 1024
    maxTransferCountOnMessageInMemory: int = 32
    maxTransferBytesOnMessageInDisk: int = 64 * 1024
    maxTransferCountOnMessageInDisk: int = 8
    accessMessageInMemoryMaxRatio: int = 40
    messageIndexEnable: bool = True
    messageIndexSafe: bool = False
    maxHashSlotNum: int = 5_000_000
    maxIndexNum: int = 5_000_000 * 4
    maxMsgsNumBatch: int = 64
    defaultQueryMaxNum: int = 32
    haListenPort: int = 10912
    haSendHeartbeatInterval: int = 5000
    haHousekeepingInterval: int = 20_000
    haTransferBatchSize: int = 32 * 1024
    haMasterAddress: str = ""
    haSlaveFallbehindMax: int = 256 * 1024 * 1024
    brokerRole: BrokerRole = BrokerRole.ASYNC_MASTER
    messageDelayLevel: str = "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h"
    transientStorePoolEnable: bool = False
    transientStorePoolSize: int = 5
    osPageCacheBusyTimeOutMills: int = 1000
    useReentrantLockWhenPutMessage: bool = True
    warmMappedFileEnable: bool = False
    duplicationEnable: bool = False
    offsetCheckInSlave: bool = False
    enableLmq: bool = False
    enableMultiDispatch: bool = False
    enableScheduleAsyncDeliver: bool = False
    enableDLegerCommitLog: bool = False

    @property
    def commit_log_dir(self) -> str:
        return self.storePathCommitLog or os.path.join(self.storePathRootDir, "commitlog")

    @property
    def consume_queue_dir(self) -> str:
        return os.path.join(self.storePathRootDir, "consumequeue")

    @property
    def index_dir(self) -> str:
        return os.path.join(self.storePathRootDir, "index")

    @property
    def checkpoint_path(self) -> str:
        return os.path.join(self.storePathRootDir, "checkpoint")

    @property
    def abort_path(self) -> str:
        return os.path.join(self.storePathRootDir, "abort")

    @property
    def lock_path(self) -> str:
        return os.path.join(self.storePathRootDir, "lock")

    @property
    def config_dir(self) -> str:
        return os.path.join(self.storePathRootDir, "config")

    @property
    def delay_levels_ms(self) -> list[int]:
        return parse_delay_levels(self.messageDelayLevel)

    @property
    def delete_hours(self) -> set[int]:
        return parse_delete_when(self.deleteWhen)

    def validate(self) -> None:
        """Raise ValueError naming the key for settings the store cannot run with."""
        if self.mappedFileSizeCommitLog < 4096:
            raise ValueError("mappedFileSizeCommitLog must be at least 4096")
        if self.mappedFileSizeConsumeQueue <= 0 or self.mappedFileSizeConsumeQueue % 20:
            raise ValueError("mappedFileSizeConsumeQueue must be a positive multiple of 20")
        if self.maxHashSlotNum <= 0 or self.maxIndexNum <= 1:
            raise ValueError("maxHashSlotNum and maxIndexNum must be positive")
        if not 10 <= self.diskMaxUsedSpaceRatio <= 95:
            # Java clamps to [10, 95]; refusing is clearer than silently changing it
            raise ValueError("diskMaxUsedSpaceRatio must be within 10..95")
        parse_delay_levels(self.messageDelayLevel)
        parse_delete_when(self.deleteWhen)
