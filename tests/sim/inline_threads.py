"""Worker-thread calls run inline in a simulation, so a seed decides every interleaving.

The broker runs blocking store work in trio worker threads (fdatasync, file creation, config
writes).  Under the autojump clock a thread is invisible: virtual time may jump while it
runs, and when it finishes depends on the machine, so two runs of one seed would differ.  In
a simulation ``trio.to_thread.run_sync`` calls the function on the event loop instead (a
checkpoint before and after, like the real thing).  The SYNC_FLUSH flush thread
(actors/store/flush.py ``group_commit_thread``), which lives as long as the flusher and waits
on a ``threading.Event``, becomes a task that runs the same loop and waits on a trio event
the ring's ``set`` also sets.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import trio

from actors.store import flush as flush_module


async def inline_run_sync(fn: Callable[..., Any], *args: Any, **_: Any) -> Any:
    if fn is flush_module.group_commit_thread:
        return await _group_commit_task(*args)
    await trio.lowlevel.checkpoint_if_cancelled()
    result = fn(*args)
    await trio.lowlevel.cancel_shielded_checkpoint()
    return result


async def _group_commit_task(
    store: Any, ring: threading.Event, stop: threading.Event, post: Callable[[int], None]
) -> None:
    wake = trio.Event()
    ring_set = ring.set

    def set_and_wake() -> None:
        ring_set()
        wake.set()

    ring.set = set_and_wake  # type: ignore[method-assign]
    try:
        while not stop.is_set():
            ring.clear()
            if store.max_phy_offset > store.flushed_offset:
                post(store.flush_commit_log(0))
                if store.next_file_needed():
                    store.prepare_next_file()
                await trio.lowlevel.checkpoint()
            else:
                wake = trio.Event()
                if not ring.is_set():
                    await wake.wait()
    finally:
        ring.set = ring_set  # type: ignore[method-assign]
