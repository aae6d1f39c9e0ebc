"""The committed consumer offsets: ``config/consumerOffset.json`` (reference §5.8, §7.7).

Key ``"<topic>@<group>"`` -> queue id -> next offset to consume.  The file is fastjson's pretty
form with bare integer queue-id keys, so a Java broker can take over the store and vice versa.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from protocol import fastjson
from storage.json_store import load_text, save_text

FILE_NAME = "consumerOffset.json"
TOPIC_GROUP_SEPARATOR = "@"


class ConsumerOffsetTable:
    def __init__(self) -> None:
        self._table: dict[str, dict[int, int]] = {}
        self.dirty = False

    @staticmethod
    def key(topic: str, group: str) -> str:
        return f"{topic}{TOPIC_GROUP_SEPARATOR}{group}"

    def commit(self, group: str, topic: str, queue_id: int, offset: int) -> None:
        queues = self._table.setdefault(self.key(topic, group), {})
        if queues.get(queue_id) != offset:
            queues[queue_id] = offset
            self.dirty = True

    def query(self, group: str, topic: str, queue_id: int) -> int:
        """The committed offset, or -1 when the group never committed on this queue."""
        return self._table.get(self.key(topic, group), {}).get(queue_id, -1)

    def offsets(self, group: str, topic: str) -> dict[int, int]:
        return dict(self._table.get(self.key(topic, group), {}))

    def topics_of_group(self, group: str) -> set[str]:
        return {topic for topic, owner in map(_split, self._table) if owner == group}

    def pairs(self) -> list[tuple[str, str]]:
        """Every (topic, group) with a committed offset."""
        return [_split(key) for key in self._table]

    def groups_of_topic(self, topic: str) -> set[str]:
        return {group for owner, group in map(_split, self._table) if owner == topic}

    def remove_topic(self, topic: str) -> None:
        self._remove(lambda owner, _group: owner == topic)

    def remove_group(self, group: str) -> None:
        self._remove(lambda _topic, owner: owner == group)

    def _remove(self, doomed: Callable[[str, str], bool]) -> None:
        keys = [key for key in self._table if doomed(*_split(key))]
        for key in keys:
            del self._table[key]
        if keys:
            self.dirty = True

    # ------------------------------------------------------------ JSON

    def to_json(self, *, pretty: bool = True) -> str:
        return fastjson.dumps({"offsetTable": self._table}, pretty=pretty, bare_int_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ConsumerOffsetTable:
        data = fastjson.loads(text)
        table = cls()
        raw = data.get("offsetTable") if isinstance(data, dict) else None
        if raw is None:
            return table
        if not isinstance(raw, dict):
            raise ValueError("offsetTable is not an object")
        for key, queues in raw.items():
            if not isinstance(key, str) or not isinstance(queues, dict):
                raise ValueError(f"bad offsetTable entry {key!r}")
            table._table[key] = {int(q): int(_number(o)) for q, o in queues.items()}
        return table

    # ------------------------------------------------------------ files

    @classmethod
    def load(cls, config_dir: Path | str) -> ConsumerOffsetTable:
        loaded = load_text(Path(config_dir) / FILE_NAME, cls.from_json)
        return loaded if loaded is not None else cls()

    def persist(self, config_dir: Path | str) -> None:
        save_text(Path(config_dir) / FILE_NAME, self.to_json())
        self.dirty = False


def _split(key: str) -> tuple[str, str]:
    """``"<topic>@<group>"`` -> (topic, group)."""
    topic, _, group = key.rpartition(TOPIC_GROUP_SEPARATOR)
    return topic, group


def _number(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"offset {value!r} is not a number")
    return int(value)
