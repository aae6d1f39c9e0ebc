"""Consumer-group settings: ``config/subscriptionGroup.json`` (reference §3.3.5, §5.8).

Groups are created on first use when ``autoCreateSubscriptionGroup`` (heartbeat, pull,
send-back) or explicitly by UPDATE_AND_CREATE_SUBSCRIPTIONGROUP.
"""

from __future__ import annotations

from pathlib import Path

from protocol.bodies.common import DataVersion
from protocol.bodies.config import SubscriptionGroupConfig, SubscriptionGroupWrapper
from protocol.convert import decode_body, encode_body
from storage.config_journal import Change
from storage.json_store import load_text, save_text

FILE_NAME = "subscriptionGroup.json"


class SubscriptionGroupTable:
    def __init__(
        self,
        configs: dict[str, SubscriptionGroupConfig] | None = None,
        data_version: DataVersion | None = None,
    ) -> None:
        self._table: dict[str, SubscriptionGroupConfig] = dict(configs or {})
        self.data_version = data_version or DataVersion()
        # as TopicConfigTable: dirty = the file is behind; changes feed the config journal
        self.dirty = False
        self.version = 0
        self._changes: list[Change] = []

    def get(self, group: str) -> SubscriptionGroupConfig | None:
        return self._table.get(group)

    def all(self) -> dict[str, SubscriptionGroupConfig]:
        return dict(self._table)

    def find(self, group: str, *, auto_create: bool, now_ms: int) -> SubscriptionGroupConfig | None:
        """The group's settings, created with defaults if allowed; None if unknown."""
        config = self._table.get(group)
        if config is None and auto_create:
            config = SubscriptionGroupConfig(group_name=group)
            self.put(config, now_ms)
        return config

    def _record(self, name: str, config: SubscriptionGroupConfig | None) -> None:
        self.version += 1
        self._changes.append(Change("group", name, config))

    def take_changes(self) -> list[Change]:
        changes, self._changes = self._changes, []
        return changes

    def apply(self, change: Change, now_ms: int) -> None:
        """Replay a journaled change (recorded nowhere: it is in the journal already)."""
        if change.config is None:
            if self._table.pop(change.name, None) is None:
                return
        elif (
            isinstance(change.config, SubscriptionGroupConfig)
            and self._table.get(change.name) != change.config
        ):
            self._table[change.name] = change.config
        else:
            return
        self.data_version = self.data_version.next_version(now_ms)
        self.dirty = True

    def put(self, config: SubscriptionGroupConfig, now_ms: int) -> None:
        if self._table.get(config.group_name) != config:
            self._table[config.group_name] = config
            self.data_version = self.data_version.next_version(now_ms)
            self.dirty = True
            self._record(config.group_name, config)

    def delete(self, group: str, now_ms: int) -> bool:
        if self._table.pop(group, None) is None:
            return False
        self.data_version = self.data_version.next_version(now_ms)
        self.dirty = True
        self._record(group, None)
        return True

    def wrapper(self) -> SubscriptionGroupWrapper:
        return SubscriptionGroupWrapper(
            subscription_group_table=dict(self._table), data_version=self.data_version
        )

    def to_json(self, *, pretty: bool = True) -> str:
        return encode_body(self.wrapper(), pretty=pretty).decode()

    @classmethod
    def from_json(cls, text: str) -> SubscriptionGroupTable:
        wrapper = decode_body(SubscriptionGroupWrapper, text)
        return cls(dict(wrapper.subscription_group_table), wrapper.data_version)

    @classmethod
    def load(cls, config_dir: Path | str) -> SubscriptionGroupTable:
        loaded = load_text(Path(config_dir) / FILE_NAME, cls.from_json)
        return loaded if loaded is not None else cls()

    def persist(self, config_dir: Path | str) -> None:
        save_text(Path(config_dir) / FILE_NAME, self.to_json())
        self.dirty = False
