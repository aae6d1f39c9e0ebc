"""The NameServer's KV config (reference §9.5): a pure table plus its kvConfig.json file.

``KvTable`` is the in-memory state the handlers change; every change bumps ``version`` so
the persister (actors/namesrv/app.py) knows there is something to write, and can write
several quick changes at once.  ``load_kv_file`` / ``save_kv_file`` are synchronous and
run in a worker thread; storage.json_store does the atomic part (tmp + fsync + rename +
directory fsync, previous content kept as ``.bak``, like Java's ``MixAll.string2File``).
"""

from __future__ import annotations

import json
from pathlib import Path

import attrs

from storage.json_store import load_text, save_text

ORDER_TOPIC_CONFIG = "ORDER_TOPIC_CONFIG"


class KvConfigError(Exception):
    """kvConfig.json (and its .bak) cannot be read as a KV table."""


@attrs.define(eq=False)
class KvTable:
    table: dict[str, dict[str, str]] = attrs.field(factory=dict)
    version: int = 0

    def put(self, namespace: str, key: str, value: str) -> None:
        self.table.setdefault(namespace, {})[key] = value
        self.version += 1

    def get(self, namespace: str, key: str) -> str | None:
        return self.table.get(namespace, {}).get(key)

    def delete(self, namespace: str, key: str) -> None:
        entries = self.table.get(namespace)
        if entries is None or key not in entries:
            return
        del entries[key]
        if not entries:
            del self.table[namespace]
        self.version += 1

    def namespace(self, namespace: str) -> dict[str, str] | None:
        """A copy of one namespace's entries, or None when it has none."""
        entries = self.table.get(namespace)
        return dict(entries) if entries else None

    def snapshot(self) -> tuple[int, dict[str, dict[str, str]]]:
        """The current version and a deep copy of the table, for writing outside the loop."""
        return self.version, {ns: dict(entries) for ns, entries in self.table.items()}


# ---------------------------------------------------------------- kvConfig.json


def encode_kv_file(table: dict[str, dict[str, str]]) -> bytes:
    """kvConfig.json as Java writes it: ``{"configTable":{ns:{k:v}}}``, tab-indented (§5.8)."""
    return json.dumps(
        {"configTable": table},
        indent="\t",
        separators=(",", ":"),
        sort_keys=True,
        ensure_ascii=False,
    ).encode()


def decode_kv_file(data: bytes, origin: str = "kvConfig.json") -> dict[str, dict[str, str]]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise KvConfigError(f"{origin}: not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise KvConfigError(f"{origin}: top level is not an object")
    raw = doc.get("configTable", {})
    if not isinstance(raw, dict):
        raise KvConfigError(f"{origin}: configTable is not an object")
    table: dict[str, dict[str, str]] = {}
    for namespace, entries in raw.items():
        if not isinstance(entries, dict):
            raise KvConfigError(f"{origin}: namespace {namespace!r} is not an object")
        # fastjson is lenient about scalars in string positions; so are we.
        table[namespace] = {
            str(k): v if isinstance(v, str) else json.dumps(v) for k, v in entries.items()
        }
    return table


def load_kv_file(path: Path) -> dict[str, dict[str, str]]:
    """The table in ``path`` (or its .bak); empty when neither exists.

    Raises ``ConfigFileError`` when both are damaged, rather than starting empty and
    overwriting the user's config on the next put.
    """
    table = load_text(path, lambda text: decode_kv_file(text.encode(), str(path)))
    return table if table is not None else {}


def save_kv_file(path: Path, table: dict[str, dict[str, str]]) -> None:
    """Replace ``path`` atomically; the previous content survives as ``<path>.bak``."""
    save_text(path, encode_kv_file(table).decode())
