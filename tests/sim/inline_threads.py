"""Worker-thread calls run inline in a simulation, so a seed decides every interleaving.

The broker runs blocking store work in trio worker threads (fdatasync, file creation, config
writes).  Under the autojump clock a thread is invisible: virtual time may jump while it
runs, and when it finishes depends on the machine, so two runs of one seed would differ.  In
a simulation ``trio.to_thread.run_sync`` calls the function on the event loop instead (a
checkpoint before and after, like the real thing).  The SYNC_FLUSH flush thread
(actors/store/flush.py ``group_commit_thread``), which lives as long as the flusher and waits
on a ``threading.Event``, becomes a task that runs the same loop and waits on a trio event
the ring's ``set`` also sets.  Modules that captured ``trio.to_thread.run_sync`` as a default
argument at import (actors/broker/persist.py's ``offload``) get theirs replaced too.
"""

from __future__ import annotations

import inspect
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trio

from actors.store import flush as flush_module


async def inline_run_sync(fn: Callable[..., Any], *args: Any, **_: Any) -> Any:
    if fn is flush_module.group_commit_thread:
        return await _group_commit_task(*args)
    await trio.lowlevel.checkpoint_if_cancelled()
    result = fn(*args)
    await trio.lowlevel.cancel_shielded_checkpoint()
    return result


def install(monkeypatch: pytest.MonkeyPatch) -> int:
    """Patch ``trio.to_thread.run_sync`` and every default argument the project's modules
    captured from it at import (``offload: Offload = trio.to_thread.run_sync``, also attrs
    fields, whose defaults live in the generated ``__init__``); return how many defaults."""
    original = trio.to_thread.run_sync
    monkeypatch.setattr(trio.to_thread, "run_sync", inline_run_sync)
    patched = 0
    for fn in _project_functions():
        defaults = fn.__defaults__
        if defaults and any(d is original for d in defaults):
            new = tuple(inline_run_sync if d is original else d for d in defaults)
            monkeypatch.setattr(fn, "__defaults__", new)
            patched += 1
        kwdefaults = fn.__kwdefaults__
        if kwdefaults and any(d is original for d in kwdefaults.values()):
            new_kw = {k: inline_run_sync if d is original else d for k, d in kwdefaults.items()}
            monkeypatch.setattr(fn, "__kwdefaults__", new_kw)
            patched += 1
    return patched


def _project_functions() -> Iterator[Any]:
    seen: set[int] = set()
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(("actors.", "storage.", "apps.")):
            continue
        for obj in list(vars(module).values()):
            members = list(vars(obj).values()) if inspect.isclass(obj) else [obj]
            for member in members:
                fn = getattr(member, "__func__", member)
                if inspect.isfunction(fn) and id(fn) not in seen:
                    seen.add(id(fn))
                    yield fn


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
