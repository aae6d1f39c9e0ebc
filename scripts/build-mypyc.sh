#!/usr/bin/env bash
# Opt-in: compile the broker's typed, Trio-free hot modules (the codec of protocol/ and the
# append/dispatch/index paths of storage/) with mypyc, in place.  The extension modules land
# next to their .py files, and Python imports an extension before a source file of the same
# name, so the broker, the tools and the tests then run the compiled code; the .py files stay
# the pure-Python fallback: `--clean` removes the extensions and everything is as before.
#
#   bash scripts/build-mypyc.sh          # build (1-3 min on 2 busy cores)
#   bash scripts/build-mypyc.sh --clean  # back to pure Python
#   bash scripts/build-mypyc.sh --list   # the modules compiled
#
# mypyc comes with mypy (the test extra); a C compiler and Python's headers are needed.
# What it buys per message is measured in the README's performance section.
set -euo pipefail
cd "$(dirname "$0")/.."

MODULES=(
    protocol/errors.py
    protocol/codes.py
    protocol/msgid.py
    protocol/properties.py
    protocol/message.py
    protocol/command.py
    protocol/frame.py
    storage/errors.py
    storage/mapped_file.py
    storage/mapped_file_queue.py
    storage/dispatch.py
    storage/results.py
    storage/commitlog.py
    storage/consume_queue.py
    # IndexFile and MessageStore are compiled as non-native classes (@mypyc_attr): tests
    # replace their methods (tests/storage/test_index_crash.py, tests/actors/store,
    # tests/actors/broker/test_send.py), which a native class refuses or calls past
    storage/index_file.py
    storage/index_service.py
    storage/message_store.py
)

clean() {
    # every extension under protocol/ and storage/ (also of modules dropped from the list
    # since the last build, and the group's runtime library), and one an older build of this
    # script left at the repository root
    find protocol storage -name '*.cpython-*.so' -delete
    rm -f ./*__mypyc.cpython-*.so
}

case "${1:-}" in
--clean)
    clean
    echo "build-mypyc: removed the compiled modules (pure Python)"
    exit 0
    ;;
--list)
    printf '%s\n' "${MODULES[@]}"
    exit 0
    ;;
"") ;;
*)
    echo "usage: $0 [--clean|--list]" >&2
    exit 2
    ;;
esac

PY=$PWD/.venv/bin/python
[[ -x $PY ]] || PY=$(command -v "${PYTHON:-python3}")
clean
# mypyc's C and objects go under build/ (git-ignored).  The group's shared runtime library is
# named into the storage package (group_name): under its default, a top-level module at the
# repository root, a process started as `python apps/broker.py` or through a console script
# (repository root not on sys.path) could not import it.
mkdir -p build
cat >build/mypyc_setup.py <<'SETUP'
import sys

from mypyc.build import mypycify
from setuptools import setup

setup(
    name="trio-rocketmq-mypyc",
    ext_modules=mypycify(sys.argv.pop(1).split(), opt_level="3", group_name="storage._mypyc_hot"),
)
SETUP
"$PY" build/mypyc_setup.py "${MODULES[*]}" build_ext --inplace >build-mypyc.log 2>&1 || {
    tail -40 build-mypyc.log >&2
    echo "build-mypyc: failed (full log: build-mypyc.log); pure Python left in place" >&2
    clean
    exit 1
}
rm -f build-mypyc.log
# a check that the extensions are the modules imported, from outside the repository (as a
# console script or `python apps/broker.py` imports them: the repository root not on sys.path)
(cd / && "$PY" - "${MODULES[@]}") <<'EOF'
import importlib, sys
compiled = 0
for path in sys.argv[1:]:
    module = importlib.import_module(path[:-3].replace("/", "."))
    compiled += module.__file__.endswith(".so")
print(f"build-mypyc: {compiled} of {len(sys.argv) - 1} modules compiled and importable")
EOF
