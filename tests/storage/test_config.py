"""MessageStoreConfig: 4.9.8 defaults, broker.conf keys (incl. legacy aliases), derived paths."""

from __future__ import annotations

import attrs
import pytest

from protocol.properties import apply_properties, parse_properties
from storage.config import (
    STORE_ALIASES,
    BrokerRole,
    FlushDiskType,
    MessageStoreConfig,
    parse_delay_levels,
    parse_delete_when,
)


def test_defaults_are_rocketmq_498() -> None:
    c = MessageStoreConfig(storePathRootDir="/s")
    assert c.mappedFileSizeCommitLog == 1073741824
    assert c.mappedFileSizeConsumeQueue == 6_000_000
    assert c.flushDiskType is FlushDiskType.ASYNC_FLUSH
    assert c.brokerRole is BrokerRole.ASYNC_MASTER
    assert (
        c.flushIntervalCommitLog,
        c.flushCommitLogLeastPages,
        c.flushCommitLogThoroughInterval,
    ) == (500, 4, 10_000)
    assert (c.syncFlushTimeout, c.deleteWhen, c.fileReservedTime, c.diskMaxUsedSpaceRatio) == (
        5000,
        "04",
        72,
        75,
    )
    assert (c.maxHashSlotNum, c.maxIndexNum, c.maxMessageSize) == (5_000_000, 20_000_000, 4194304)
    assert c.commit_log_dir == "/s/commitlog"
    assert c.consume_queue_dir == "/s/consumequeue"
    assert c.delay_levels_ms[0] == 1000
    assert c.delay_levels_ms[-1] == 7_200_000
    assert len(c.delay_levels_ms) == 18
    c.validate()


def test_broker_conf_applies_with_aliases() -> None:
    text = (
        "storePathRootDir=/data\nflushDiskType=SYNC_FLUSH\nbrokerRole=SLAVE\n"
        "mapedFileSizeCommitLog=65536\nstorePathCommitLog=/fast/cl\nbrokerName=b\n"
    )
    conf, load = apply_properties(
        MessageStoreConfig(), parse_properties(text), aliases=STORE_ALIASES
    )
    assert conf.flushDiskType is FlushDiskType.SYNC_FLUSH
    assert conf.brokerRole is BrokerRole.SLAVE
    assert conf.mappedFileSizeCommitLog == 65536
    assert conf.commit_log_dir == "/fast/cl"
    assert list(load.unknown) == ["brokerName"]


def test_parsers() -> None:
    assert parse_delay_levels("1s 2m 3h 1d") == [1000, 120_000, 10_800_000, 86_400_000]
    with pytest.raises(ValueError, match="5x"):
        parse_delay_levels("1s 5x")
    assert parse_delete_when("04;16") == {4, 16}
    with pytest.raises(ValueError, match="deleteWhen"):
        parse_delete_when("25")


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"mappedFileSizeConsumeQueue": 30}, "mappedFileSizeConsumeQueue"),
        ({"mappedFileSizeCommitLog": 100}, "mappedFileSizeCommitLog"),
        ({"diskMaxUsedSpaceRatio": 99}, "diskMaxUsedSpaceRatio"),
        ({"messageDelayLevel": "x"}, "messageDelayLevel"),
    ],
)
def test_validate_refuses(change: dict[str, object], key: str) -> None:
    with pytest.raises(ValueError, match=key):
        attrs.evolve(MessageStoreConfig(), **change).validate()  # type: ignore[arg-type]
