"""Crash-safe config persistence: tmp + fsync + rename, .bak fallback, never a silent reset."""

import json

import pytest

from storage.json_store import ConfigFileError, load_text, save_text


def test_missing_file_is_a_fresh_store(tmp_path):
    assert load_text(tmp_path / "topics.json", json.loads) is None


def test_save_then_load_round_trip_and_keeps_previous_as_bak(tmp_path):
    path = tmp_path / "config" / "topics.json"
    save_text(path, '{"v":1}')
    save_text(path, '{"v":2}')
    assert load_text(path, json.loads) == {"v": 2}
    assert json.loads((tmp_path / "config" / "topics.json.bak").read_text()) == {"v": 1}
    assert not (tmp_path / "config" / "topics.json.tmp").exists()


@pytest.mark.parametrize("damage", ["", '{"v":', "\x00\x00\x00"])
def test_damaged_file_falls_back_to_bak(tmp_path, damage):
    path = tmp_path / "consumerOffset.json"
    save_text(path, '{"v":1}')
    save_text(path, '{"v":2}')
    path.write_text(damage)  # what a crash in the middle of a non-atomic write leaves
    assert load_text(path, json.loads) == {"v": 1}


def test_missing_file_after_crash_between_renames_uses_bak(tmp_path):
    path = tmp_path / "topics.json"
    save_text(path, '{"v":1}')
    save_text(path, '{"v":2}')
    path.unlink()
    assert load_text(path, json.loads) == {"v": 1}


def test_unreadable_file_and_bak_raise_instead_of_resetting(tmp_path):
    path = tmp_path / "consumerOffset.json"
    path.write_text("{garbage")
    (tmp_path / "consumerOffset.json.bak").write_text("{more garbage")
    with pytest.raises(ConfigFileError, match=r"consumerOffset\.json"):
        load_text(path, json.loads)


def test_stale_tmp_file_is_ignored(tmp_path):
    path = tmp_path / "topics.json"
    save_text(path, '{"v":1}')
    (tmp_path / "topics.json.tmp").write_text('{"v":"half')
    assert load_text(path, json.loads) == {"v": 1}
    save_text(path, '{"v":3}')
    assert load_text(path, json.loads) == {"v": 3}
