"""The broker's topic table: system topics, creation rules and ``config/topics.json``.

Reference §7.2: the system topics exist before ``topics.json`` is merged over them; a send to an
unknown topic may create it from the ``TBW102`` template; every change bumps the DataVersion
the broker registers with the name servers.  Pure and synchronous; the caller persists and
re-registers after a change.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import attrs

from protocol.bodies.common import DataVersion, PermName
from protocol.bodies.topic import TopicConfig, TopicConfigSerializeWrapper
from protocol.convert import decode_body, encode_body
from storage.config_journal import Change
from storage.json_store import load_text, save_text

FILE_NAME = "topics.json"

AUTO_CREATE_TOPIC_KEY_TOPIC = "TBW102"
SELF_TEST_TOPIC = "SELF_TEST_TOPIC"
BENCHMARK_TOPIC = "BenchmarkTest"
OFFSET_MOVED_EVENT = "OFFSET_MOVED_EVENT"
SCHEDULE_TOPIC = "SCHEDULE_TOPIC_XXXX"
TRANS_HALF_TOPIC = "RMQ_SYS_TRANS_HALF_TOPIC"
TRANS_OP_HALF_TOPIC = "RMQ_SYS_TRANS_OP_HALF_TOPIC"
TRANS_CHECK_MAX_TIME_TOPIC = "TRANS_CHECK_MAX_TIME_TOPIC"
RETRY_GROUP_TOPIC_PREFIX = "%RETRY%"
DLQ_GROUP_TOPIC_PREFIX = "%DLQ%"
REPLY_TOPIC_POSTFIX = "REPLY_TOPIC"
SCHEDULE_QUEUE_NUMS = 18

# Clients may not send to these (reference §4.10): NO_PERMISSION.
NOT_ALLOWED_SEND_TOPICS = frozenset(
    {
        SCHEDULE_TOPIC,
        TRANS_HALF_TOPIC,
        TRANS_OP_HALF_TOPIC,
        TRANS_CHECK_MAX_TIME_TOPIC,
        SELF_TEST_TOPIC,
        OFFSET_MOVED_EVENT,
    }
)
MAX_TOPIC_LENGTH = 127
_TOPIC_CHARS = re.compile(r"[%|a-zA-Z0-9_-]+\Z")

RW = PermName.PERM_READ | PermName.PERM_WRITE


def retry_topic(group: str) -> str:
    return RETRY_GROUP_TOPIC_PREFIX + group


def dlq_topic(group: str) -> str:
    return DLQ_GROUP_TOPIC_PREFIX + group


def topic_problem(topic: str) -> str | None:
    """Why ``topic`` is not a valid topic name (Java's TopicValidator), or None."""
    if not topic or not topic.strip():
        return "the specified topic is blank"
    if not _TOPIC_CHARS.match(topic):
        return f"the specified topic[{topic}] contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$"
    if len(topic) > MAX_TOPIC_LENGTH:
        return f"the specified topic[{topic}] is longer than topic max length {MAX_TOPIC_LENGTH}."
    return None


@attrs.frozen(kw_only=True)
class SystemTopicSettings:
    """The BrokerConfig values that decide which system topics exist (§7.2)."""

    cluster_name: str
    broker_name: str
    default_topic_queue_nums: int = 8
    auto_create_topic_enable: bool = True
    cluster_topic_enable: bool = True
    broker_topic_enable: bool = True
    trace_topic_enable: bool = False
    trace_topic_name: str = "RMQ_SYS_TRACE_TOPIC"


def _config(name: str, queues: int, perm: int = RW) -> TopicConfig:
    return TopicConfig(
        topic_name=name, read_queue_nums=queues, write_queue_nums=queues, perm=int(perm)
    )


def system_topics(settings: SystemTopicSettings) -> dict[str, TopicConfig]:
    out = [_config(SELF_TEST_TOPIC, 1)]
    if settings.auto_create_topic_enable:
        queues = settings.default_topic_queue_nums
        out.append(_config(AUTO_CREATE_TOPIC_KEY_TOPIC, queues, RW | PermName.PERM_INHERIT))
    out.append(_config(BENCHMARK_TOPIC, 1024))
    out.append(
        _config(
            settings.cluster_name,
            16,
            PermName.PERM_INHERIT | (RW if settings.cluster_topic_enable else 0),
        )
    )
    out.append(
        _config(
            settings.broker_name,
            1,
            PermName.PERM_INHERIT | (RW if settings.broker_topic_enable else 0),
        )
    )
    out.append(_config(OFFSET_MOVED_EVENT, 1))
    out.append(_config(SCHEDULE_TOPIC, SCHEDULE_QUEUE_NUMS))
    if settings.trace_topic_enable:
        out.append(_config(settings.trace_topic_name, 1))
    out.append(_config(f"{settings.cluster_name}_{REPLY_TOPIC_POSTFIX}", 1))
    return {c.topic_name or "": c for c in out}


class TopicConfigTable:
    def __init__(
        self,
        configs: dict[str, TopicConfig] | None = None,
        data_version: DataVersion | None = None,
        *,
        system: frozenset[str] = frozenset(),
    ) -> None:
        self._table: dict[str, TopicConfig] = dict(configs or {})
        self.data_version = data_version or DataVersion()
        self.system = system
        # dirty: topics.json is behind the table.  version counts changes; changes holds
        # those not yet taken for the config journal (storage/config_journal.py).
        self.dirty = False
        self.version = 0
        self._changes: list[Change] = []
        # topics created or changed since the registrar last took them: a registration after a
        # change carries only these (Java's registerIncrementBrokerData), not the whole table
        self._unregistered: set[str] = set()

    @classmethod
    def with_system_topics(cls, settings: SystemTopicSettings) -> TopicConfigTable:
        topics = system_topics(settings)
        return cls(topics, system=frozenset(topics))

    def __contains__(self, topic: str) -> bool:
        return topic in self._table

    def __len__(self) -> int:
        return len(self._table)

    def get(self, topic: str) -> TopicConfig | None:
        return self._table.get(topic)

    def all(self) -> dict[str, TopicConfig]:
        return dict(self._table)

    def _changed(self, now_ms: int) -> None:
        self.data_version = self.data_version.next_version(now_ms)
        self.dirty = True

    def _record(self, name: str, config: TopicConfig | None) -> None:
        self.version += 1
        self._changes.append(Change("topic", name, config))
        if config is not None:
            self._unregistered.add(name)

    def take_unregistered(self) -> set[str]:
        """Topics created or changed since the last call (deleted ones are not re-registered:
        a name server drops a topic only on DELETE_TOPIC_IN_NAMESRV or the broker's expiry)."""
        names, self._unregistered = self._unregistered, set()
        return names

    def take_changes(self) -> list[Change]:
        """The changes since the last call, oldest first, for the config journal."""
        changes, self._changes = self._changes, []
        return changes

    def apply(self, change: Change, now_ms: int) -> None:
        """Replay a journaled change (recorded nowhere: it is in the journal already)."""
        if change.config is None:
            if self._table.pop(change.name, None) is not None:
                self._changed(now_ms)
        elif (
            isinstance(change.config, TopicConfig) and self._table.get(change.name) != change.config
        ):
            self._table[change.name] = change.config
            self._changed(now_ms)

    def put(self, config: TopicConfig, now_ms: int) -> None:
        name = config.topic_name or ""
        if self._table.get(name) != config:
            self._table[name] = config
            self._changed(now_ms)
            self._record(name, config)

    def delete(self, topic: str, now_ms: int) -> bool:
        if self._table.pop(topic, None) is None:
            return False
        self._changed(now_ms)
        self._record(topic, None)
        return True

    def create_in_send(
        self,
        topic: str,
        default_topic: str,
        queue_nums: int,
        topic_sys_flag: int,
        now_ms: int,
    ) -> TopicConfig | None:
        """Java's createTopicInSendMessageMethod: inherit from a template with PERM_INHERIT."""
        existing = self._table.get(topic)
        if existing is not None:
            return existing
        template = self._table.get(default_topic)
        if template is None or not template.perm & PermName.PERM_INHERIT:
            return None
        queues = max(1, min(queue_nums, template.write_queue_nums))
        config = TopicConfig(
            topic_name=topic,
            read_queue_nums=queues,
            write_queue_nums=queues,
            perm=int(template.perm & ~PermName.PERM_INHERIT),
            topic_filter_type=template.topic_filter_type,
            topic_sys_flag=topic_sys_flag,
        )
        self.put(config, now_ms)
        return config

    def create_if_absent(
        self, topic: str, queues: int, perm: int, topic_sys_flag: int, now_ms: int
    ) -> tuple[TopicConfig, bool]:
        """Retry, DLQ and transaction topics; True when it was created now."""
        existing = self._table.get(topic)
        if existing is not None:
            return existing, False
        config = TopicConfig(
            topic_name=topic,
            read_queue_nums=queues,
            write_queue_nums=queues,
            perm=int(perm),
            topic_sys_flag=topic_sys_flag,
        )
        self.put(config, now_ms)
        return config, True

    def update_order_topics(self, order_topics: set[str], now_ms: int) -> bool:
        """Adopt the name servers' ORDER_TOPIC_CONFIG: listed topics are ordered, others not."""
        changed = False
        for name, config in self._table.items():
            order = name in order_topics
            if config.order != order:
                self._table[name] = updated = attrs.evolve(config, order=order)
                self._record(name, updated)
                changed = True
        if changed:
            self._changed(now_ms)
        return changed

    def seal_auto_create(self, auto_create_topic_enable: bool, now_ms: int) -> None:
        """With auto-creation off, a TBW102 left in topics.json must not let topics inherit."""
        template = self._table.get(AUTO_CREATE_TOPIC_KEY_TOPIC)
        if template is not None and not auto_create_topic_enable and template.perm != RW:
            self.put(attrs.evolve(template, perm=int(RW)), now_ms)

    def adopt_orphan_queues(self, queue_ids: dict[str, list[int]], now_ms: int) -> list[str]:
        """Topics that have consume queues on disk but no config (lost with a damaged or
        older topics.json): re-created with as many queues as their highest queue id needs,
        read and write, so their messages stay reachable.  Returns their names."""
        adopted = []
        for topic, ids in sorted(queue_ids.items()):
            if topic in self._table or not ids or topic_problem(topic) is not None:
                continue
            queues = max(ids) + 1
            self.put(
                TopicConfig(
                    topic_name=topic, read_queue_nums=queues, write_queue_nums=queues, perm=RW
                ),
                now_ms,
            )
            adopted.append(topic)
        return adopted

    # ------------------------------------------------------------ JSON and files

    def wrapper(self, only: Iterable[str] | None = None) -> TopicConfigSerializeWrapper:
        """The table (or its topics named in ``only`` that still exist) and its data version."""
        table = self._table
        if only is not None:
            table = {name: table[name] for name in only if name in table}
        return TopicConfigSerializeWrapper(
            topic_config_table=dict(table), data_version=self.data_version
        )

    def to_json(self, *, pretty: bool = True) -> str:
        return encode_body(self.wrapper(), pretty=pretty).decode()

    def load(self, config_dir: Path | str) -> None:
        wrapper = load_text(
            Path(config_dir) / FILE_NAME,
            lambda text: decode_body(TopicConfigSerializeWrapper, text),
        )
        if wrapper is not None:
            for name, config in wrapper.topic_config_table.items():
                self._table[name] = (
                    config if config.topic_name else attrs.evolve(config, topic_name=name)
                )
            self.data_version = wrapper.data_version

    def persist(self, config_dir: Path | str) -> None:
        save_text(Path(config_dir) / FILE_NAME, self.to_json())
        self.dirty = False
