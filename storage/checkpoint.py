"""StoreCheckpoint (§5.6): three timestamps in a 4096-byte file, rewritten in place and synced."""

from __future__ import annotations

import os
import struct

import attrs

SIZE = 4096
_FIELDS = struct.Struct(">qqq")


@attrs.define
class StoreCheckpoint:
    path: str
    physic_msg_timestamp: int = 0
    logics_msg_timestamp: int = 0
    index_msg_timestamp: int = 0

    @classmethod
    def load(cls, path: str) -> StoreCheckpoint:
        cp = cls(path)
        try:
            with open(path, "rb") as f:
                data = f.read(_FIELDS.size)
        except FileNotFoundError:
            return cp
        if len(data) == _FIELDS.size:
            cp.physic_msg_timestamp, cp.logics_msg_timestamp, cp.index_msg_timestamp = (
                _FIELDS.unpack(data)
            )
        return cp

    @property
    def min_timestamp(self) -> int:
        """min(physic, logics) - 3 s, not below 0: where abnormal recovery may start."""
        return max(0, min(self.physic_msg_timestamp, self.logics_msg_timestamp) - 3000)

    @property
    def min_timestamp_index(self) -> int:
        return min(self.min_timestamp, self.index_msg_timestamp)

    def flush(self) -> None:
        """Write the three fields (the rest of the 4 KiB page stays zero) and fdatasync."""
        data = _FIELDS.pack(
            self.physic_msg_timestamp, self.logics_msg_timestamp, self.index_msg_timestamp
        )
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size < SIZE:
                os.ftruncate(fd, SIZE)
            os.pwrite(fd, data, 0)
            os.fdatasync(fd)
        finally:
            os.close(fd)
