"""KV config table and kvConfig.json (reference §5.8, §9.5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.namesrv.kvconfig import (
    KvConfigError,
    KvTable,
    decode_kv_file,
    encode_kv_file,
    load_kv_file,
    save_kv_file,
)
from storage.json_store import ConfigFileError


def test_put_get_delete_and_versions() -> None:
    kv = KvTable()
    kv.put("NS", "k", "v")
    kv.put("NS", "k2", "v2")
    assert kv.version == 2
    assert kv.get("NS", "k") == "v"
    assert kv.get("NS", "zz") is None
    assert kv.get("OTHER", "k") is None
    assert kv.namespace("NS") == {"k": "v", "k2": "v2"}
    kv.delete("NS", "absent")
    assert kv.version == 2  # nothing changed, nothing to persist
    kv.delete("NS", "k")
    kv.delete("NS", "k2")
    assert kv.version == 4
    assert kv.namespace("NS") is None
    assert kv.table == {}


def test_snapshot_is_independent() -> None:
    kv = KvTable()
    kv.put("NS", "k", "v")
    version, snap = kv.snapshot()
    kv.put("NS", "k", "changed")
    assert (version, snap) == (1, {"NS": {"k": "v"}})


def test_file_shape_is_javas() -> None:
    data = encode_kv_file({"ORDER_TOPIC_CONFIG": {"T": "broker-a:4"}})
    assert data == (
        b'{\n\t"configTable":{\n\t\t"ORDER_TOPIC_CONFIG":{\n\t\t\t"T":"broker-a:4"\n\t\t}\n\t}\n}'
    )
    assert decode_kv_file(b'{"configTable":{"NS":{"k":"v","n":5}}}') == {"NS": {"k": "v", "n": "5"}}
    assert decode_kv_file(b"{}") == {}


@pytest.mark.parametrize(
    "bad", [b"[1]", b'{"configTable":[]}', b'{"configTable":{"NS":3}}', b"{nope"]
)
def test_decode_rejects_wrong_shapes(bad: bytes) -> None:
    with pytest.raises(KvConfigError, match="kvConfig"):
        decode_kv_file(bad)


@given(
    st.dictionaries(
        st.text(min_size=1),
        st.dictionaries(st.text(), st.text(), min_size=1),
    )
)
def test_round_trip(table: dict[str, dict[str, str]]) -> None:
    assert decode_kv_file(encode_kv_file(table)) == table


def test_save_load_and_backup(tmp_path: Path) -> None:
    path = tmp_path / "namesrv" / "kvConfig.json"
    assert load_kv_file(path) == {}
    save_kv_file(path, {"NS": {"k": "1"}})
    save_kv_file(path, {"NS": {"k": "2"}})
    assert load_kv_file(path) == {"NS": {"k": "2"}}
    assert json.loads(path.with_name("kvConfig.json.bak").read_text()) == {
        "configTable": {"NS": {"k": "1"}}
    }
    assert not path.with_name("kvConfig.json.tmp").exists()
    # A torn file falls back to the previous version.
    path.write_text('{"configTable":{"NS":{"k":')
    assert load_kv_file(path) == {"NS": {"k": "1"}}


def test_load_refuses_when_file_and_backup_are_damaged(tmp_path: Path) -> None:
    path = tmp_path / "kvConfig.json"
    path.write_text("garbage")
    with pytest.raises(ConfigFileError, match="kvConfig"):
        load_kv_file(path)
