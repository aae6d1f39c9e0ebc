"""Delay-level delivery progress: ``config/delayOffset.json`` (reference §5.8, §7.3).

Level (1..18) -> next consume-queue offset to deliver in ``SCHEDULE_TOPIC_XXXX`` queue
``level - 1``.  The schedule service (actors/broker/schedule.py) moves the offsets.
"""

from __future__ import annotations

from pathlib import Path

from protocol import fastjson
from storage.json_store import load_text, save_text

FILE_NAME = "delayOffset.json"


class DelayOffsetTable:
    def __init__(self, offsets: dict[int, int] | None = None) -> None:
        self._table: dict[int, int] = dict(offsets or {})
        self.dirty = False

    def get(self, level: int) -> int:
        return self._table.get(level, 0)

    def update(self, level: int, offset: int) -> None:
        if self._table.get(level) != offset:
            self._table[level] = offset
            self.dirty = True

    def as_dict(self) -> dict[int, int]:
        return dict(self._table)

    def to_json(self, *, pretty: bool = True) -> str:
        return fastjson.dumps({"offsetTable": self._table}, pretty=pretty, bare_int_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DelayOffsetTable:
        data = fastjson.loads(text)
        raw = data.get("offsetTable", {}) if isinstance(data, dict) else None
        if not isinstance(raw, dict):
            raise ValueError("offsetTable is not an object")
        return cls({int(level): int(offset) for level, offset in raw.items()})

    @classmethod
    def load(cls, config_dir: Path | str) -> DelayOffsetTable:
        loaded = load_text(Path(config_dir) / FILE_NAME, cls.from_json)
        return loaded if loaded is not None else cls()

    def persist(self, config_dir: Path | str) -> None:
        save_text(Path(config_dir) / FILE_NAME, self.to_json())
        self.dirty = False
