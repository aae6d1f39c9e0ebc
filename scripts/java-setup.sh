#!/usr/bin/env bash
# Java 17 + Maven for the compat tests (pytest -m java), then one online build of
# tests/compat/java so later runs work offline from ~/.m2 (cache ~/.m2 in CI).
set -euo pipefail

need_install=()
command -v java >/dev/null 2>&1 || need_install+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null 2>&1 || need_install+=(maven)
if ((${#need_install[@]})); then
    sudo_cmd=()
    [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -q
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${need_install[@]}"
fi

java_major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
if [[ -z $java_major || $java_major -lt 11 ]]; then
    echo "java-setup: need Java 11+ (17 tested), found: $(java -version 2>&1 | head -1)" >&2
    exit 1
fi

cd "$(dirname "$0")/../tests/compat/java"
mvn -B -q package
echo "java-setup: built $(pwd)/client/target/compat-client-1.0.jar and both classpaths"
