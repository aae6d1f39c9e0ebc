"""One client instance per client id in a process (Java's MQClientManager).

Producers and consumers whose client ids are equal (``clientIP@instanceName``, §8.2) share
one ``ClientInstance`` (per Trio run, and per transport: two simulated hosts of tests/sim,
each with its own network view, never share one): one remoting client (one connection per broker and name server),
one route refresher, one heartbeat carrying every group of the instance, one offset
persister.  The first ``async with`` of a client starts the instance, the last one to leave
stops it and waits until its connections are closed.

Where the instance runs: its users may live in different tasks (a producer in one, a
consumer in another), each with its own ``async with`` that may end before or after the
others, so no user's nursery can own it.  It runs in a Trio system task, the one scope
that encloses all of them, in a copy of the first user's context (so it connects through
the same transport as its users, actors/remoting/transport.py).  It stays structured: the
task ends when the last user leaves (or when the run ends), and if the instance fails, the
failure is raised into every user's block (a watcher task in the user's own nursery) as
a ``ClientError`` whose cause is the instance's error.

Java's instance takes its settings from the first client that creates it; so does this
one (timeouts, TLS context, intervals).  A later client whose name servers, credentials or
TLS on/off differ gets a clear error instead of silently talking through the first one's.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio

from actors.client.errors import ClientError
from actors.client.instance import (
    ClientConfig,
    ClientInstance,
    collapse_single,
    open_client_instance,
)
from actors.remoting.transport import Transport, current_transport

log = logging.getLogger(__name__)

# How long the last user waits for the instance to close its connections.
STOP_BUDGET = 5.0


@attrs.define(eq=False)
class SharedInstance:
    """The registry's entry for one client id: the instance and who uses it."""

    config: ClientConfig
    transport: Transport
    users: int = 0
    instance: ClientInstance | None = None
    error: BaseException | None = None
    ready: trio.Event = attrs.Factory(trio.Event)  # running, or failed to start
    stop: trio.Event = attrs.Factory(trio.Event)  # the last user left
    done: trio.Event = attrs.Factory(trio.Event)  # the instance's task has ended


# Per Trio run: two runs in one process (tests) never see each other's instances.
_REGISTRY: trio.lowlevel.RunVar[dict[tuple[int, str], SharedInstance]] = trio.lowlevel.RunVar(
    "client_instances"
)


def _registry() -> dict[tuple[int, str], SharedInstance]:
    try:
        return _REGISTRY.get()
    except LookupError:
        table: dict[tuple[int, str], SharedInstance] = {}
        _REGISTRY.set(table)
        return table


def running_instances() -> dict[str, ClientInstance]:
    """client id -> the running instance (for tests and diagnostics)."""
    return {
        key[1]: entry.instance
        for key, entry in _registry().items()
        if entry.instance is not None and not entry.done.is_set()
    }


def _check_compatible(first: ClientConfig, later: ClientConfig) -> None:
    differences = []
    if first.namesrv_addrs != later.namesrv_addrs:
        differences.append(f"name servers {first.namesrv_addrs} vs {later.namesrv_addrs}")
    if first.credentials != later.credentials:
        differences.append("ACL credentials")
    if (first.tls is None) != (later.tls is None):
        differences.append("TLS on/off")
    if differences:
        raise ClientError(
            f"client id {first.client_id} is already used in this process with other settings "
            f"({'; '.join(differences)}): give this client another instance_name"
        )


async def _run_instance(key: tuple[int, str], entry: SharedInstance) -> None:
    """The system task: the instance from its first user's ``async with`` to its last's end."""
    try:
        async with open_client_instance(entry.config) as inst:
            entry.instance = inst
            entry.ready.set()
            await entry.stop.wait()
    except trio.Cancelled:
        raise  # the run is ending; the system nursery cancelled us
    except BaseException as exc:  # a system task must not raise: its users get it instead
        log.error("client instance %s failed: %r", entry.config.client_id, exc)
        entry.error = exc
    finally:
        if _registry().get(key) is entry:
            del _registry()[key]
        entry.ready.set()
        entry.done.set()


async def _join(config: ClientConfig) -> SharedInstance:
    transport = current_transport()
    key = (id(transport), config.client_id)
    registry = _registry()
    while True:
        entry = registry.get(key)
        if entry is None:
            entry = SharedInstance(config, transport)
            registry[key] = entry
            trio.lowlevel.spawn_system_task(
                _run_instance,
                key,
                entry,
                name=f"client instance {config.client_id}",
                context=contextvars.copy_context(),
            )
            break
        if entry.stop.is_set():
            # The last user of a former instance with this id is leaving: let it close its
            # connections first, so the brokers never see two live channels of one id.
            await entry.done.wait()
            continue
        _check_compatible(entry.config, config)
        break
    entry.users += 1
    return entry


def _leave(entry: SharedInstance) -> None:
    entry.users -= 1
    if entry.users == 0:
        entry.stop.set()


@asynccontextmanager
async def shared_client_instance(config: ClientConfig) -> AsyncIterator[ClientInstance]:
    """The running instance of ``config.client_id``, started if this is its first user."""
    entry = await _join(config)
    try:
        await entry.ready.wait()
        if entry.instance is None or entry.done.is_set():
            raise ClientError(
                f"client instance {config.client_id} could not start: {entry.error!r}"
            ) from entry.error
        failed = False

        async def watch() -> None:
            # The instance ended while this user still holds it: end the user's block too.
            nonlocal failed
            await entry.done.wait()
            if not entry.stop.is_set():
                failed = True
                nursery.cancel_scope.cancel(reason=f"client instance {config.client_id} failed")

        async with collapse_single(), trio.open_nursery() as nursery:
            nursery.start_soon(watch, name=f"watch client instance {config.client_id}")
            try:
                yield entry.instance
            finally:
                nursery.cancel_scope.cancel(reason="client closed")
        if failed:
            # Raised here, after the block unwound, rather than from the watcher: a user
            # nested in another user of the same instance then raises one error, not a group.
            raise ClientError(
                f"client instance {config.client_id} failed: {entry.error!r}"
            ) from entry.error
    finally:
        _leave(entry)
        if entry.stop.is_set():
            with trio.move_on_after(STOP_BUDGET, shield=True):
                await entry.done.wait()


__all__ = ["SharedInstance", "running_instances", "shared_client_instance"]
