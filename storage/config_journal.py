"""An append-only, fsynced journal of topic and subscription-group changes.

Why: a topic or group creation may be acknowledged only once it survives a power loss, and
rewriting the whole of ``topics.json`` for each one costs time proportional to the number of
topics (and a creation storm would serialize on it).  A change is instead one line appended
to ``config/configChanges.journal`` and fdatasynced, many changes to one sync; the JSON files
RocketMQ users know are rewritten from memory now and then (compaction), after which the
lines they cover are dropped.

A line is the whole new state of one entry (``{"k": "topic"|"group", "n": name, "c": config
or null}``), so replaying a line twice, or replaying lines a newer snapshot already holds,
ends in the same state: order alone matters.  A torn last line (a crash mid-append) does not
parse and ends the replay; everything before it was synced before anyone was answered.

Compaction: one writer (the broker's config persister) appends every line, so once its
appends are done the tables in memory hold every journaled change; it snapshots them, writes
the JSON files durably (storage/json_store.py) and then removes the journal.  Changes made
meanwhile wait in memory for the next append, to a new journal.  A crash before the removal
replays lines the new files already hold: harmless, see above.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import attrs
import orjson

from protocol.bodies.config import SubscriptionGroupConfig
from protocol.bodies.topic import TopicConfig
from protocol.convert import decode_body, encode_body

log = logging.getLogger(__name__)

JOURNAL = "configChanges.journal"

Kind = Literal["topic", "group"]


@attrs.frozen
class Change:
    kind: Kind
    name: str
    # the entry's new settings; None: deleted
    config: TopicConfig | SubscriptionGroupConfig | None


def encode_change(change: Change) -> bytes:
    config = None if change.config is None else orjson.loads(encode_body(change.config))
    return orjson.dumps({"k": change.kind, "n": change.name, "c": config}) + b"\n"


def decode_change(line: bytes) -> Change:
    """One journal line; ValueError if it is not a whole, valid line."""
    try:
        obj = orjson.loads(line)
        kind, name, raw = obj["k"], obj["n"], obj["c"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"bad journal line: {exc}") from None
    if kind not in ("topic", "group") or not isinstance(name, str):
        raise ValueError(f"bad journal line: kind {kind!r}, name {name!r}")
    if raw is None:
        return Change(kind, name, None)
    cls: type[TopicConfig] | type[SubscriptionGroupConfig] = (
        TopicConfig if kind == "topic" else SubscriptionGroupConfig
    )
    try:
        config = decode_body(cls, orjson.dumps(raw))
    except Exception as exc:  # any kind of damage (cattrs, protocol, value) ends the replay
        raise ValueError(f"bad journal line for {kind} {name}: {exc}") from None
    return Change(kind, name, config)


def _read_file(path: Path) -> list[Change]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    changes: list[Change] = []
    lines = data.split(b"\n")
    # the last element is what follows the final newline: empty, or a torn line
    for i, line in enumerate(lines):
        if not line:
            continue
        try:
            changes.append(decode_change(line))
        except ValueError as exc:
            whole = i < len(lines) - 1
            log.warning(
                "%s: %s line %d ignored, and all after it (%s)",
                path,
                "damaged" if whole else "torn last",
                i + 1,
                exc,
            )
            break
    return changes


def read_changes(config_dir: Path | str) -> list[Change]:
    """Every journaled change, oldest first."""
    return _read_file(Path(config_dir) / JOURNAL)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_changes(config_dir: Path | str, lines: Sequence[bytes]) -> int:
    """Append encoded changes and make them durable (one fdatasync); returns the journal's
    size.  The directory is synced too when the journal is new, or the file could vanish."""
    config_dir = Path(config_dir)
    path = config_dir / JOURNAL
    config_dir.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        data = b"".join(lines)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fdatasync(fd)
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    if created:
        _fsync_dir(config_dir)
    return size


def journal_size(config_dir: Path | str) -> int:
    try:
        return (Path(config_dir) / JOURNAL).stat().st_size
    except FileNotFoundError:
        return 0


def remove_journal(config_dir: Path | str) -> None:
    """The JSON files now hold every journaled change: drop the journal."""
    config_dir = Path(config_dir)
    path = config_dir / JOURNAL
    if path.exists():
        path.unlink()
        _fsync_dir(config_dir)
