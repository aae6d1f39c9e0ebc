"""Command-line plumbing shared by apps/namesrv.py and apps/broker.py.

Java's start scripts take ``-c <file>`` (a Java-properties config), ``-p`` (print every
config item and exit) and, for the broker, ``-n <namesrv addrs>``.  Here, in addition,
``--someKey=value`` (or ``--someKey value``) overrides any config key from the command line.
Properties are applied to attrs config classes whose fields are RocketMQ's keys
(protocol/properties.py); a key no config class knows is warned about, never silently
dropped.  ``run`` turns the trio program's end into an exit status: 0 after an orderly
stop (SIGINT/SIGTERM), 1 with a one-line reason otherwise.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import trio

from protocol.properties import (
    apply_properties,
    config_to_properties,
    format_properties,
    parse_properties,
)

T = TypeVar("T")

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)-5s %(name)s: %(message)s"


class CliError(Exception):
    """A bad command line or config file: reported in one line, exit status 1."""


def make_parser(
    prog: str, description: str, *, namesrv_option: bool = False
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog="Any config key can also be given as --key=value (after the file, so it wins).",
    )
    parser.add_argument("-c", "--configFile", metavar="FILE", help="Java-properties config file")
    parser.add_argument(
        "-p", "--printConfigItem", action="store_true", help="print the effective config and exit"
    )
    if namesrv_option:
        parser.add_argument(
            "-n",
            "--namesrvAddr",
            metavar="ADDRS",
            help="name server address list, e.g. 127.0.0.1:9876;10.0.0.2:9876",
        )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="default INFO",
    )
    return parser


def parse_args(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None = None
) -> tuple[argparse.Namespace, dict[str, str]]:
    """The parsed options and the ``--key=value`` / ``--key value`` config overrides."""
    args, rest = parser.parse_known_args(argv)
    overrides: dict[str, str] = {}
    i = 0
    while i < len(rest):
        item = rest[i]
        if not item.startswith("--") or len(item) == 2:
            parser.error(f"unexpected argument {item!r}")
        key, eq, value = item[2:].partition("=")
        if not eq:
            if i + 1 >= len(rest) or rest[i + 1].startswith("--"):
                parser.error(f"config override --{key} needs a value (--{key}=VALUE)")
            i += 1
            value = rest[i]
        overrides[key] = value
        i += 1
    return args, overrides


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)


def collect_properties(args: argparse.Namespace, overrides: dict[str, str]) -> dict[str, str]:
    """Config properties in precedence order: the -c file, then -n, then --key=value."""
    props: dict[str, str] = {}
    if args.configFile:
        path = Path(args.configFile)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot read config file {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise CliError(f"config file {path} is not UTF-8 text: {exc}") from None
        props.update(parse_properties(text))
        log.info("load config properties file OK, %s", path)
    if getattr(args, "namesrvAddr", None):
        props["namesrvAddr"] = args.namesrvAddr
    props.update(overrides)
    return props


def load_configs(
    props: dict[str, str], *defaults: Any, aliases: dict[str, str] | None = None
) -> list[Any]:
    """Apply ``props`` to every config in ``defaults``; warn about keys none of them knows.

    A key may belong to several configs (broker.conf mixes broker and store keys); it is
    applied to each that has it.
    """
    results, loads = [], []
    for default in defaults:
        try:
            config, load = apply_properties(default, props, aliases=aliases)
        except ValueError as exc:
            raise CliError(f"bad config value: {exc}") from None
        results.append(config)
        loads.append(load)
    for key in props:
        if all(key in load.unknown for load in loads):
            hint = next((load.unknown[key] for load in loads if load.unknown[key]), None)
            tip = f" (did you mean {hint!r}?)" if hint else ""
            log.warning("unknown config key %r ignored%s", key, tip)
    return results


def print_config(*configs: Any) -> None:
    """The effective config as Java-properties lines on stdout (what ``-p`` shows)."""
    for config in configs:
        sys.stdout.write(format_properties(config_to_properties(config)))
    sys.stdout.flush()


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def run(main: Callable[[], Awaitable[None]], *, name: str) -> int:
    """Run ``main`` under trio; 0 after it returns, 1 with a one-line reason if it fails."""
    try:
        trio.run(main)
    except KeyboardInterrupt:
        # Only before the signal watcher is installed; afterwards SIGINT is an orderly stop.
        log.info("%s interrupted during start-up", name)
        return 0
    except Exception as exc:
        leaves = _leaves(exc)
        reason = "; ".join(f"{type(e).__name__}: {e}" for e in leaves)
        log.debug("%s failed", name, exc_info=exc)
        sys.stderr.write(f"{name}: {reason}\n")
        return 1
    log.info("%s stopped", name)
    return 0


def prepare(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    build: Callable[[dict[str, str]], T],
) -> T:
    """Parse the command line, set up logging and build the config(s) with ``build``.

    Exits (``SystemExit``, like argparse) with status 0 after ``-p`` has printed the
    effective config, and with 1 and a one-line reason when the config is bad.
    """
    args, overrides = parse_args(parser, argv)
    setup_logging(args.log_level)
    try:
        config = build(collect_properties(args, overrides))
    except CliError as exc:
        sys.stderr.write(f"{parser.prog}: {exc}\n")
        raise SystemExit(1) from None
    if args.printConfigItem:
        print_config(*(config if isinstance(config, tuple) else (config,)))
        raise SystemExit(0)
    return config
