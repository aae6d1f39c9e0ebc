"""A broker process that imports apps/broker.py and then waits for one line on stdin - the
path of its broker.conf - before it starts the broker (``python -m tests.failover.standby``).

The fault tests restart a killed broker by waking such a process: a restart then costs the
broker's own start-up (store recovery, lease, registration) but not Python's imports, which
take seconds on a loaded 2-core machine and would otherwise dominate every round.  The
process that is killed is always a running broker, as a user runs it; an empty line or end of
input ends a standby that is no longer needed."""

from __future__ import annotations

import sys

from apps import broker


def main() -> int:
    conf = sys.stdin.readline().strip()
    if not conf:
        return 0
    return broker.main(["-c", conf])


if __name__ == "__main__":
    sys.exit(main())
