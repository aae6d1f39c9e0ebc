"""Store actors: thin Trio loops around the synchronous MessageStore (storage/message_store.py).

- ``reput_dispatcher``: commit log -> consume queues and index; emits ``Arrived``.
- ``commit_log_flusher``: ASYNC_FLUSH periodic flush, or SYNC_FLUSH group commit.
- ``store_services``: consume-queue flusher, checkpointer and cleaner under one nursery.
"""

from actors.store.checkpoint import checkpointer
from actors.store.cleanup import cleaner
from actors.store.flush import FlushWake, commit_log_flusher, consume_queue_flusher
from actors.store.reput import reput_dispatcher
from actors.store.services import store_services

__all__ = [
    "FlushWake",
    "checkpointer",
    "cleaner",
    "commit_log_flusher",
    "consume_queue_flusher",
    "reput_dispatcher",
    "store_services",
]
