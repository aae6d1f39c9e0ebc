"""Suite-wide settings: hypothesis profiles (derandomized and bounded under CI), and how the
tests are spread over pytest-xdist's workers."""

import os
from collections.abc import Generator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


# With pytest-xdist (scripts/test.sh runs two workers, ``--dist loadfile``) each module goes to
# one worker, so a module's fixtures start once and a module's tests can compare across its
# parametrizations (tests/compat/test_acl.py's differential).  Heaviest directories first, so
# that no long module starts last while the other worker has nothing left to do.
# (``--dist loadgroup`` with ``xdist_group`` marks did not group anything under pytest 9.2 and
# xdist 3.8, not even static marks: every test was scheduled alone until session 5.)
_HEAVY_FIRST = ("compat", "powerloss", "failover", "netns", "crash", "sim")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        parts = item.path.relative_to(config.rootpath).parts
        sub = parts[1] if len(parts) > 1 else ""
        return _HEAVY_FIRST.index(sub) if sub in _HEAVY_FIRST else len(_HEAVY_FIRST)

    items.sort(key=rank)  # stable: the order within a module is kept


# Disk: the brokers that tests start preallocate their mapped files, so a test that forgets
# tests/store_sizes.py (or small_store) costs hundreds of MB per run, and a suite of such tests
# filled a CI disk.  A test whose tmp_path holds more than this at its end is an error.
DISK_BUDGET = 256 << 20


def _allocated(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None]:
    funcargs = getattr(item, "funcargs", {})
    path = funcargs.get("tmp_path")
    used = _allocated(path) if isinstance(path, Path) else 0
    yield
    if used > DISK_BUDGET:
        raise AssertionError(
            f"{item.nodeid} left {used >> 20} MiB allocated under tmp_path (budget "
            f"{DISK_BUDGET >> 20} MiB): give its brokers tests/store_sizes.SMALL_FILES"
        )
