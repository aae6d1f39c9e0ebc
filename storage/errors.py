"""Store exceptions: startup and I/O failures.  The put/get hot paths return status enums instead."""

from __future__ import annotations


class StoreError(Exception):
    """The store cannot load or continue (bad file sizes, unreadable directory, ...)."""


class StoreLockedError(StoreError):
    """Another broker holds the store's ``lock`` file ("Lock failed, MQ already started")."""
