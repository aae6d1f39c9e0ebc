"""signal_watcher (real signals to this process) and bounded_cleanup (autojump_clock)."""

from __future__ import annotations

import logging
import os
import signal

import pytest
import trio

from actors.shutdown import bounded_cleanup, signal_watcher


async def test_sigterm_cancels_the_scope_with_a_reason() -> None:
    with trio.fail_after(5):
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                await nursery.start(signal_watcher, scope)
                os.kill(os.getpid(), signal.SIGTERM)
                await trio.sleep_forever()
    assert scope.cancelled_caught


class _EventOnRecord(logging.Handler):
    """Sets an event when a record containing ``text`` is logged."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.event = trio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


async def test_signal_calls_the_callback_once() -> None:
    reasons: list[str] = []
    first = trio.Event()

    def on_signal(reason: str) -> None:
        reasons.append(reason)
        first.set()

    again = _EventOnRecord("shutdown already in progress")
    logger = logging.getLogger("actors.shutdown")
    logger.addHandler(again)
    try:
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                await nursery.start(signal_watcher, on_signal)
                os.kill(os.getpid(), signal.SIGINT)
                await first.wait()
                # trio coalesces a signal that is still pending, so send the second one
                # after the first was handled; its only effect is a warning.
                os.kill(os.getpid(), signal.SIGINT)
                await again.event.wait()
                nursery.cancel_scope.cancel()
    finally:
        logger.removeHandler(again)
    assert reasons == ["received SIGINT"]


async def test_bounded_cleanup_survives_cancellation(autojump_clock: trio.abc.Clock) -> None:
    done: list[float] = []
    with trio.CancelScope() as scope:
        scope.cancel(reason="shutdown")
        try:
            await trio.sleep_forever()
        finally:
            with bounded_cleanup(5, "flush"):
                await trio.sleep(2)
                done.append(trio.current_time())
    assert done == [2]


async def test_bounded_cleanup_gives_up_after_its_bound(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING), bounded_cleanup(3, "unregister") as scope:
        await trio.sleep_forever()
    assert scope.cancelled_caught
    assert trio.current_time() == 3
    assert "unregister did not finish within 3s" in caplog.text
