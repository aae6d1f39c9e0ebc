"""Packaging (issue 18): console scripts, py.typed, conf/ after install, and dependencies:
runtime ones are what the installed code imports; benchmark-only ones stay an extra."""

from __future__ import annotations

import ast
import importlib
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGES = ("protocol", "storage", "actors", "apps")
# distribution name -> import name, where they differ
IMPORT_NAME = {"trio-util": "trio_util", "prometheus-client": "prometheus_client", "PyYAML": "yaml"}


def requirement_name(req: str) -> str:
    return re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0]


def imported_top_level(paths: list[Path]) -> dict[str, set[str]]:
    """top-level module -> the files that import it."""
    seen: dict[str, set[str]] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                seen.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return seen


def installed_sources() -> list[Path]:
    return [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]


def test_console_scripts_point_at_callables() -> None:
    scripts = PYPROJECT["project"]["scripts"]
    assert {"rmq-namesrv", "rmq-broker", "rmqadmin", "rmq-bench-producer"} <= set(scripts)
    for name, target in scripts.items():
        module, _, func = target.partition(":")
        assert callable(getattr(importlib.import_module(module), func)), name


def test_every_package_is_typed_and_conf_is_shipped() -> None:
    assert set(PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]) == {
        f"{p}*" for p in PACKAGES
    }
    for pkg in PACKAGES:
        assert (ROOT / pkg / "py.typed").is_file(), pkg
    [(target, files)] = PYPROJECT["tool"]["setuptools"]["data-files"].items()
    assert target.endswith("/conf")
    for name in files:
        assert (ROOT / name).is_file(), name
    shipped = {Path(f).name for f in files}
    assert {"broker.conf", "namesrv.conf", "rmq-broker.service", "Containerfile"} <= shipped


def test_runtime_dependencies_are_what_the_installed_code_imports() -> None:
    imports = imported_top_level(installed_sources())
    for req in PYPROJECT["project"]["dependencies"]:
        dist = requirement_name(req)
        module = IMPORT_NAME.get(dist, dist)
        assert module in imports, f"{dist} is a runtime dependency that nothing imports"


def test_benchmark_only_dependencies_are_an_extra() -> None:
    runtime = {requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    bench = {requirement_name(r) for r in PYPROJECT["project"]["optional-dependencies"]["bench"]}
    assert bench
    assert not bench & runtime
    imports = imported_top_level(installed_sources())
    for dist in bench:
        users = imports.get(IMPORT_NAME.get(dist, dist), set())
        assert users
        assert all(Path(u).name.startswith(("_bench", "bench_")) for u in users), users
