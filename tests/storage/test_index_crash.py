"""The index after a process crash: what a SIGKILL can leave in the mapping, and what reput's
replay then makes of it.

A crash image here is the index file's bytes copied at a chosen instant: a SIGKILL leaves
exactly that in the page cache, so loading the copy is loading what the next process finds.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.dispatch import DispatchRequest
from storage.index_file import IndexFile
from storage.index_service import IndexService

SLOTS = 1  # every key in one chain: a cut chain loses every older key
ENTRIES = 64


def _image(f: IndexFile, path: Path) -> None:
    path.write_bytes(bytes(f.mm))


def _request(offset: int, keys: str | None, uniq: str | None = None) -> DispatchRequest:
    return DispatchRequest(
        topic="T",
        queue_id=0,
        commit_log_offset=offset,
        size=100,
        tags_code=0,
        store_timestamp=1_700_000_000_000 + offset,
        queue_offset=offset // 100,
        sys_flag=0,
        prepared_transaction_offset=0,
        keys=keys,
        uniq_key=uniq,
    )


@settings(max_examples=40, deadline=None)
@given(before=st.integers(1, 40), lost=st.integers(1, 5))
def test_puts_the_header_never_covered_do_not_cut_the_chain(
    tmp_path_factory: pytest.TempPathFactory, before: int, lost: int
) -> None:
    """A crash after a put wrote its entry and slot but not the header: the slot points past
    the count.  Replaying those records must keep every older key reachable (a slot equal to
    the count made the replayed entry link to itself, and the chain behind it was lost)."""
    tmp = tmp_path_factory.mktemp("idx")
    f = IndexFile.create(str(tmp / "live"), SLOTS, ENTRIES)
    for i in range(before):
        f.put(f"T#k{i}", i * 100, 1_700_000_000_000)
        f.write_header()
    for i in range(before, before + lost):
        f.put(f"T#k{i}", i * 100, 1_700_000_000_000)  # the header write never happens
    _image(f, tmp / "crashed")
    f.close()

    g = IndexFile.open(str(tmp / "crashed"), SLOTS, ENTRIES)
    try:
        assert g.index_count == before + 1
        assert g.end_phy_offset == (before - 1) * 100
        for i in range(before, before + lost):  # replay from the header's end
            g.put(f"T#k{i}", i * 100, 1_700_000_000_000)
            g.write_header()
        for i in range(before + lost):
            assert g.select(f"T#k{i}", 4, 0, 2**62) == [i * 100], i
    finally:
        g.close()


def test_a_crash_between_a_records_keys_indexes_the_record_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """UNIQ_KEY went in, KEYS did not: the header must not claim the record, or replay skips
    it and its KEYS are never queryable."""
    live = tmp_path / "live"
    service = IndexService(str(live), SLOTS, ENTRIES)
    service.build(_request(0, "a0", "u0"), 0)
    record = _request(100, "a1 b1", "u1")

    puts = 0
    real_put = IndexFile.put

    def dies_after_one_key(self: IndexFile, key: str, phy: int, ts: int) -> bool:
        nonlocal puts
        if phy == record.commit_log_offset:
            puts += 1
            if puts == 2:
                for fl in service.files:
                    _image(fl, tmp_path / "crashed" / os.path.basename(fl.path))
                raise KeyboardInterrupt  # the process dies here
        return real_put(self, key, phy, ts)

    (tmp_path / "crashed").mkdir()
    monkeypatch.setattr(IndexFile, "put", dies_after_one_key)
    with pytest.raises(KeyboardInterrupt):
        service.build(record, 0)
    monkeypatch.undo()
    service.close()

    again = IndexService(str(tmp_path / "crashed"), SLOTS, ENTRIES)
    again.load(last_exit_ok=False)
    try:
        assert again.indexed_upto <= record.commit_log_offset
        again.build(record, 0)  # reput's replay
        for key in ("u0", "a0"):
            assert again.query("T", key, 4, 0, 2**62).phy_offsets == [0]
        for key in ("u1", "a1", "b1"):
            assert again.query("T", key, 4, 0, 2**62).phy_offsets == [100], key
    finally:
        again.close()


def test_a_records_keys_go_into_one_file(tmp_path: Path) -> None:
    """A record whose keys do not fit in what is left of a file starts the next one, so one
    header covers all of its keys and the finished file is handed back to be flushed."""
    service = IndexService(str(tmp_path), SLOTS, 4)  # three entries a file (entry 0 unused)
    assert service.build(_request(0, "a0", "u0"), 0) is None
    first = service.files[0]
    finished = service.build(_request(100, "a1 b1", "u1"), 0)
    assert finished is first
    assert len(service.files) == 2
    assert (first.index_count, first.end_phy_offset) == (3, 0)
    assert (service.files[1].index_count, service.files[1].begin_phy_offset) == (4, 100)
    for key in ("u1", "a1", "b1"):
        assert service.query("T", key, 4, 0, 2**62).phy_offsets == [100]
    service.close()
    shutil.rmtree(tmp_path)
