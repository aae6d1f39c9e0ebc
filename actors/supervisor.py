"""Supervision: named child actors, restart policies, ordered shutdown.

Two pieces:

* ``supervise(name, actor, *args, policy=...)`` is itself an actor.  It runs ``actor``
  and, when it raises an ``Exception``, logs the crash with the actor's name and runs it
  again after an exponential backoff - one-for-one.  More than ``max_restarts`` crashes
  within ``within_seconds`` escalate: ``ActorFailed`` (caused by the last crash) goes to
  the parent.  ``Cancelled`` is a ``BaseException`` and always passes straight through.
* ``open_supervisor(name)`` is a nursery of named children started in order with
  ``await sup.start(name, actor, ...)``.  Leaving the block - normally, by cancellation or
  because a child escalated - stops the children one at a time in the reverse order of
  their start, each with a reason, waiting for each to finish before cancelling the next:
  the server stops accepting before the store's final flush, never the other way round.

Use a restart policy for network-facing loops (registrar, HA client, route refresher),
never for store actors: a store error means stop writing and escalate (``policy=None``).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

log = logging.getLogger(__name__)

Actor = Callable[..., Awaitable[object]]


class ActorFailed(Exception):
    """A supervised actor crashed more often than its policy allows; ``__cause__`` is the last crash."""

    def __init__(self, name: str, crashes: int, within: float) -> None:
        super().__init__(f"actor {name!r} crashed {crashes} times within {within:g}s; escalating")
        self.name = name
        self.crashes = crashes


@attrs.frozen(kw_only=True)
class RestartPolicy:
    """At most ``max_restarts`` restarts in any ``within_seconds`` window, then escalate.

    The delay before restart n of a crash streak is ``backoff_initial * 2**(n-1)``, capped
    at ``backoff_max``; a streak ends (the backoff resets) once ``within_seconds`` passed
    without a crash.
    """

    max_restarts: int = attrs.field(default=3, validator=attrs.validators.ge(0))
    within_seconds: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    backoff_initial: float = attrs.field(default=0.1, validator=attrs.validators.ge(0))
    backoff_max: float = attrs.field(default=10.0, validator=attrs.validators.ge(0))


@attrs.define
class RestartTracker:
    """The policy's arithmetic, pure: feed crash times, get a delay or None (escalate)."""

    policy: RestartPolicy
    _recent: collections.deque[float] = attrs.field(factory=collections.deque, init=False)

    def crashed(self, now: float) -> float | None:
        """Record a crash at ``now``; the delay before restarting, or None to escalate."""
        window_start = now - self.policy.within_seconds
        while self._recent and self._recent[0] <= window_start:
            self._recent.popleft()
        if len(self._recent) >= self.policy.max_restarts:
            return None
        self._recent.append(now)
        streak = len(self._recent)
        delay: float = self.policy.backoff_initial * 2.0 ** (streak - 1)
        return min(delay, self.policy.backoff_max)

    @property
    def recent(self) -> int:
        return len(self._recent)


@attrs.define(eq=False)
class _StartedRelay:
    """Passes the first ``started()`` of the actor on to ``supervise``'s own task_status.

    A restarted actor calls ``started()`` again; the parent was told long ago, so later
    values are dropped.  Actors under a restart policy should therefore hand out handles
    that survive a restart (channels or values created by the parent and passed in).
    """

    name: str
    outer: trio.TaskStatus[Any]
    told: bool = False

    def started(self, value: Any = None) -> None:
        if not self.told:
            self.told = True
            self.outer.started(value)


async def supervise(
    name: str,
    actor: Actor,
    *args: object,
    policy: RestartPolicy | None = None,
    task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``actor(*args, task_status=...)``, restarting it on crashes under ``policy``.

    ``policy=None`` means no restarts: the first crash escalates as is.  A crash before
    the first ``started()`` counts like any other, so the parent's ``nursery.start``
    waits through restarts and gets ``ActorFailed`` if the actor never comes up.  A
    normal return ends supervision (logged); it is not restarted.
    """
    relay = _StartedRelay(name, task_status)
    tracker = RestartTracker(policy) if policy is not None else None
    while True:
        try:
            await actor(*args, task_status=relay)
        except Exception as exc:
            if tracker is None:
                log.error("actor %s crashed", name, exc_info=exc)
                raise
            delay = tracker.crashed(trio.current_time())
            if delay is None:
                assert policy is not None
                log.error(
                    "actor %s crashed (%d restarts within %gs already); escalating",
                    name,
                    policy.max_restarts,
                    policy.within_seconds,
                    exc_info=exc,
                )
                raise ActorFailed(name, policy.max_restarts + 1, policy.within_seconds) from exc
            log.error(
                "actor %s crashed; restart %d in %.3gs", name, tracker.recent, delay, exc_info=exc
            )
            await trio.sleep(delay)
            continue
        log.info("actor %s finished", name)
        return


@attrs.define(eq=False)
class _Child:
    name: str
    scope: trio.CancelScope
    done: trio.Event = attrs.field(factory=trio.Event)


@attrs.define(eq=False)
class Supervisor:
    """Named children in start order; see ``open_supervisor``."""

    name: str
    _nursery: trio.Nursery
    _children: list[_Child] = attrs.field(factory=list, init=False)

    @property
    def children(self) -> list[str]:
        """Names of the children still running, in start order."""
        return [child.name for child in self._children if not child.done.is_set()]

    async def start(
        self,
        name: str,
        actor: Actor,
        *args: object,
        policy: RestartPolicy | None = None,
    ) -> Any:
        """Start ``actor`` as child ``name``; return what it passed to ``started()``.

        Returns once the child can serve, so the next ``start`` may depend on it.
        """
        child = _Child(name, trio.CancelScope())
        self._children.append(child)
        value = await self._nursery.start(
            self._run_child, child, actor, args, policy, name=f"{self.name}/{name}"
        )
        # Started: from now on only the supervisor's ordered stop may cancel this child,
        # so a cancellation of the whole tree still stops children in reverse order.
        child.scope.shield = True
        return value

    async def _run_child(
        self,
        child: _Child,
        actor: Actor,
        args: tuple[object, ...],
        policy: RestartPolicy | None,
        *,
        task_status: trio.TaskStatus[Any],
    ) -> None:
        try:
            with child.scope:
                await supervise(child.name, actor, *args, policy=policy, task_status=task_status)
        finally:
            child.done.set()

    async def stop(self, reason: str) -> None:
        """Stop every child, last started first, each finishing before the next is cancelled."""
        with trio.CancelScope(shield=True):
            for child in reversed(self._children):
                if child.done.is_set():
                    continue
                log.debug("%s: stopping %s (%s)", self.name, child.name, reason)
                child.scope.cancel(reason=f"{self.name}: {reason}")
                await child.done.wait()


@asynccontextmanager
async def open_supervisor(name: str) -> AsyncIterator[Supervisor]:
    """A supervisor for the duration of the block; leaving it stops the children in reverse.

    A child that escalates cancels the block's body; the remaining children are still
    stopped in reverse order, then the failure propagates (inside an ExceptionGroup, as
    anything leaving a nursery does).
    """
    async with trio.open_nursery() as nursery:
        sup = Supervisor(name, nursery)
        try:
            yield sup
        finally:
            await sup.stop("shutting down")
