"""Orderly shutdown: a SIGINT/SIGTERM watcher actor and shielded, bounded cleanup.

A shutdown is a cancellation with a reason.  ``signal_watcher`` turns the first signal
into ``scope.cancel(reason="received SIGTERM")`` (or a callback); the supervision tree's
nesting then stops everything in the reverse order of start-up.  Cleanup that must run
even though we are being cancelled (final flush, unregister from the name servers) goes
inside ``bounded_cleanup``: shielded, so the cancellation cannot abort it, and bounded,
so a hung peer or disk cannot hold the process forever.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import trio

log = logging.getLogger(__name__)

DEFAULT_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def signal_watcher(
    target: trio.CancelScope | Callable[[str], object],
    *,
    signals: Sequence[int] = DEFAULT_SIGNALS,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """On the first of ``signals``, cancel ``target`` (or call it) with the reason.

    Later signals are logged and otherwise ignored: the shutdown already under way is
    bounded, and a second Ctrl-C must not skip the final flush.  Must run in the main
    thread (``trio.open_signal_receiver``'s rule), so it belongs in ``apps/``' trees.
    """
    triggered = False
    with trio.open_signal_receiver(*signals) as received:
        task_status.started()
        async for signum in received:
            signame = signal.Signals(signum).name
            if triggered:
                log.warning("received %s again: shutdown already in progress", signame)
                continue
            triggered = True
            reason = f"received {signame}"
            log.info("%s: shutting down", reason)
            if isinstance(target, trio.CancelScope):
                target.cancel(reason=reason)
            else:
                target(reason)


@contextmanager
def bounded_cleanup(seconds: float, what: str) -> Iterator[trio.CancelScope]:
    """Run the block shielded from outside cancellation, but for at most ``seconds``.

    Use it in ``finally`` blocks of actors that must leave state behind cleanly::

        finally:
            with bounded_cleanup(5.0, "final flush"):
                await trio.to_thread.run_sync(store.flush_commit_log)

    Running out of time is logged as a warning and the block is abandoned (the
    ``Cancelled`` stays inside the scope); the caller's own cancellation continues after.
    """
    with trio.move_on_after(seconds, shield=True) as scope:
        yield scope
    if scope.cancelled_caught:
        log.warning("%s did not finish within %gs; abandoned", what, seconds)
