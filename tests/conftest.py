"""Suite-wide settings: hypothesis profiles (derandomized and bounded under CI), and how the
tests are spread over pytest-xdist's workers."""

import os

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


# With pytest-xdist (scripts/test.sh runs two workers, ``--dist loadgroup``) each test goes to a
# worker together with the rest of its module, so a module's fixtures start once.  The compat
# tests are one group: they share one Apache name server and broker per session (a JVM each),
# and two of those at once would only slow both workers down.  Heaviest groups first, so that
# no long group starts last while the other worker has nothing left to do.
_HEAVY_FIRST = ("compat", "powerloss", "failover", "netns", "crash", "sim")


def _group(item: pytest.Item) -> str:
    path = item.path.relative_to(item.config.rootpath).as_posix()
    parts = path.split("/")
    if len(parts) > 1 and parts[1] == "compat":
        return "compat"
    return path


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        parts = item.path.relative_to(config.rootpath).parts
        sub = parts[1] if len(parts) > 1 else ""
        return _HEAVY_FIRST.index(sub) if sub in _HEAVY_FIRST else len(_HEAVY_FIRST)

    items.sort(key=rank)  # stable: the order within a group is kept
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_group(item)))
