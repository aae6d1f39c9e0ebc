"""SIGKILL at random moments while appending under SYNC_FLUSH; every acknowledged record survives.

A seeded loop: each round starts tests/crash/store_writer.py on the same store directory (so it
also recovers the previous round's crash), lets it acknowledge for a random while, SIGKILLs it,
then recovers the store here and checks: every acknowledged record is present byte for byte,
the commit log is a gapless run of whole records, and consume queues and index agree with it.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from protocol.message import decode_record
from storage.message_store import GetStatus, MessageStore
from tests.crash.store_writer import QUEUES, body_for, config
from tests.storage import layout_reader as lr

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROUNDS = 12
SEED = 20261127


def _run_and_kill(root: str, seed: int, rng: random.Random) -> list[str]:
    proc = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "tests", "crash", "store_writer.py"), root, str(seed)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line == "ready\n":
                ready.set()
            elif line.endswith("\n"):
                lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not ready.wait(30):
            raise AssertionError(
                f"writer never became ready: {proc.stderr.read() if proc.stderr else ''}"
            )
        time.sleep(rng.uniform(0.0, 0.4))
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    reader.join(5)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    return lines


def _check(root: str, acked: dict[str, tuple[int, int, int, str]]) -> None:
    cfg = config(root)
    store = MessageStore(cfg, store_host="127.0.0.1:10911")
    store.load()
    try:
        assert not store.last_exit_ok  # the abort file told recovery the writer crashed
        records = lr.read_commit_log(cfg.commit_log_dir, cfg.mappedFileSizeCommitLog)
        # a gapless run of whole records up to the recovered end
        expect = records[0].offset if records else 0
        for r in records:
            if r.offset != expect:
                assert r.offset % cfg.mappedFileSizeCommitLog == 0  # after a BLANK
            expect = r.offset + r.total
        assert store.max_phy_offset in (expect, expect + (-expect % cfg.mappedFileSizeCommitLog))
        by_offset = {r.offset: r for r in records}
        for key, (offset, size, queue, digest) in acked.items():
            rec = by_offset.get(offset)
            assert rec is not None, f"acknowledged {key} at {offset} is gone"
            assert (rec.total, hashlib.sha1(rec.raw).hexdigest()) == (size, digest)
            assert rec.body == body_for(key)
            assert rec.queue_id == queue
        for q in range(QUEUES):
            mine = [r for r in records if r.queue_id == q]
            assert [r.queue_offset for r in mine] == list(range(len(mine)))
            units = (
                lr.read_consume_queue(
                    os.path.join(cfg.consume_queue_dir, "CrashTopic", str(q)),
                    cfg.mappedFileSizeConsumeQueue,
                )
                if mine
                else []
            )
            assert [(u[1], u[2]) for u in units] == [(r.offset, r.total) for r in mine]
            if mine:
                got = store.get_message("g", "CrashTopic", q, len(mine) - 1, 1)
                assert got.status is GetStatus.FOUND
                assert decode_record(got.buffers[0]).commit_log_offset == mine[-1].offset
        for r in records[-50:]:
            key = r.properties["KEYS"]
            hits = store.query_message("CrashTopic", key, 4, 0, 2**62).records
            assert [decode_record(h).commit_log_offset for h in hits] == [r.offset]
    finally:
        store.shutdown()
    # the writer must see a crash again next round, not this clean shutdown
    open(cfg.abort_path, "w").close()


@pytest.mark.crash
def test_acknowledged_records_survive_sigkill(tmp_path) -> None:  # type: ignore[no-untyped-def]
    root = str(tmp_path / "store")
    rng = random.Random(SEED)
    acked: dict[str, tuple[int, int, int, str]] = {}
    started = time.monotonic()
    for round_ in range(ROUNDS):
        for line in _run_and_kill(root, SEED + round_, rng):
            _, off, size, queue, key, digest = line.split()
            acked[key] = (int(off), int(size), int(queue), digest)
        _check(root, acked)
        if time.monotonic() - started > 45:
            break
    assert len(acked) > 100
