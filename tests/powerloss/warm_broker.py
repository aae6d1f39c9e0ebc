"""``python tests/powerloss/warm_broker.py ARGS`` = ``python apps/broker.py ARGS``, imports first.

See warm.py: the broker's modules are imported before the test says go, then ``apps.broker.main``
runs with the same arguments a user gives it.
"""

import sys

import apps.broker

if sys.stdin.readline() != "go\n":
    sys.exit(0)  # the test went away or discarded this spare
sys.exit(apps.broker.main(sys.argv[1:]))
