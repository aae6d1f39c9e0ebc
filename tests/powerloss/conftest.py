"""The ``lazy_mount`` fixture: a LazyFS mount under the test's tmp dir, always unmounted after.

Where FUSE cannot work the tests skip with the reason, except under CI (``CI`` set), where they
must run: there a missing FUSE is a failure of the setup, not a reason to pass.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.powerloss.mount import LazyMount, MountFailed, fuse_unavailable_reason


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"power-loss harness cannot run under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture
def lazy_mount(tmp_path: Path) -> Iterator[LazyMount]:
    reason = fuse_unavailable_reason()
    if reason is not None:
        _unavailable(reason)
    mount = LazyMount(tmp_path)
    try:
        try:
            mount.mount()
        except MountFailed as exc:
            _unavailable(f"mounting a FUSE file system failed here: {exc}")
        yield mount
    finally:
        mount.cleanup()
