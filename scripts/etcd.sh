#!/usr/bin/env bash
# A local etcd for automatic failover (README "Automatic failover").
#
#   bash scripts/etcd.sh install          # Debian's etcd-server/etcd-client if missing (idempotent)
#   bash scripts/etcd.sh start [DIR] [PORT]  # one node on 127.0.0.1:PORT (default 2379), data in DIR
#                                          # (default ./etcd-data); prints the pid, logs to DIR.log
#   bash scripts/etcd.sh stop [DIR]        # stops the node started with that DIR (by its pid file)
#
# Then set etcdEndpoints=127.0.0.1:2379 in every broker.conf of the group.  The tests start
# their own etcd processes (tests/failover/etcd_proc.py) and never use this one.
set -euo pipefail
cmd=${1:-start}
case "$cmd" in
install)
    if ! command -v etcd >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
        $SUDO apt-get install -y -q etcd-server etcd-client >/dev/null 2>&1 \
            || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q etcd-server etcd-client >/dev/null; }
        # the package may enable a system service; this project starts its own etcd processes
    fi
    ;;
start)
    dir=${2:-etcd-data}
    port=${3:-2379}
    peer=$((port + 1))
    mkdir -p "$dir"
    if [ -f "$dir/etcd.pid" ] && kill -0 "$(cat "$dir/etcd.pid")" 2>/dev/null; then
        echo "etcd already running, pid $(cat "$dir/etcd.pid")"; exit 0
    fi
    nohup etcd --name local --data-dir "$dir" \
        --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
        --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "local=http://127.0.0.1:$peer" >"$dir.log" 2>&1 &
    echo $! >"$dir/etcd.pid"
    for _ in $(seq 50); do
        if python3 -c "import sys,urllib.request; sys.exit(b'true' not in urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=1).read())" 2>/dev/null; then
            echo "etcd pid $(cat "$dir/etcd.pid") on 127.0.0.1:$port (data $dir, log $dir.log)"; exit 0
        fi
        sleep 0.2
    done
    echo "etcd did not become healthy; see $dir.log" >&2; exit 1
    ;;
stop)
    dir=${2:-etcd-data}
    if [ -f "$dir/etcd.pid" ]; then
        kill "$(cat "$dir/etcd.pid")" 2>/dev/null || true
        rm -f "$dir/etcd.pid"
    fi
    ;;
*)
    echo "usage: $0 install | start [DIR] [PORT] | stop [DIR]" >&2; exit 2
    ;;
esac
