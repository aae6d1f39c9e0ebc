"""apps/_cli.py: the option and config plumbing the name server and the broker share."""

from __future__ import annotations

import logging
from pathlib import Path

import attrs
import pytest

from apps import _cli


@attrs.frozen
class One:
    listenPort: int = 9876
    flag: bool = False


@attrs.frozen
class Two:
    storePathRootDir: str = "/store"
    flag: bool = False


def parse(*argv: str, namesrv_option: bool = False) -> tuple[object, dict[str, str]]:
    parser = _cli.make_parser("t", "test", namesrv_option=namesrv_option)
    return _cli.parse_args(parser, list(argv))


def test_overrides_in_both_spellings() -> None:
    args, overrides = parse("-p", "--listenPort=1", "--flag", "true", "--x=a=b")
    assert overrides == {"listenPort": "1", "flag": "true", "x": "a=b"}
    assert args.printConfigItem  # type: ignore[attr-defined]


@pytest.mark.parametrize("argv", [["stray"], ["--flag"], ["--flag", "--other=1"]])
def test_bad_overrides_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2


def test_precedence_file_then_n_then_overrides(tmp_path: Path) -> None:
    conf = tmp_path / "b.conf"
    conf.write_text("namesrvAddr=file:1\nlistenPort=1\nflag=true\n")
    args, overrides = parse("-c", str(conf), "-n", "cli:2", "--listenPort=3", namesrv_option=True)
    props = _cli.collect_properties(args, overrides)  # type: ignore[arg-type]
    assert props == {"namesrvAddr": "cli:2", "listenPort": "3", "flag": "true"}


def test_missing_file_is_a_cli_error(tmp_path: Path) -> None:
    args, overrides = parse("-c", str(tmp_path / "absent.conf"))
    with pytest.raises(_cli.CliError, match="cannot read config file"):
        _cli.collect_properties(args, overrides)  # type: ignore[arg-type]


def test_keys_shared_between_configs_and_unknown_keys(caplog: pytest.LogCaptureFixture) -> None:
    props = {"listenPort": "1", "storePathRootDir": "/x", "flag": "true", "listenprot": "2"}
    with caplog.at_level(logging.WARNING):
        one, two = _cli.load_configs(props, One(), Two())
    assert one == One(listenPort=1, flag=True)
    assert two == Two(storePathRootDir="/x", flag=True)
    # Known to one config is enough; only keys nobody knows are warned about.
    assert [r.getMessage() for r in caplog.records] == [
        "unknown config key 'listenprot' ignored (did you mean 'listenPort'?)"
    ]


def test_bad_value_is_a_cli_error() -> None:
    with pytest.raises(_cli.CliError, match="listenPort: expected an integer"):
        _cli.load_configs({"listenPort": "x"}, One())


def test_prepare_prints_and_exits(capsys: pytest.CaptureFixture[str]) -> None:
    parser = _cli.make_parser("t", "test")
    with pytest.raises(SystemExit) as exc:
        _cli.prepare(
            parser,
            ["-p", "--listenPort=5"],
            lambda p: tuple(_cli.load_configs(p, One(), Two())),
        )
    assert exc.value.code == 0
    assert (
        capsys.readouterr().out == "listenPort=5\nflag=false\nstorePathRootDir=/store\nflag=false\n"
    )


def test_run_reports_failure_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    async def boom() -> None:
        raise OSError(98, "Address already in use")

    assert _cli.run(boom, name="t") == 1
    assert capsys.readouterr().err == "t: OSError: [Errno 98] Address already in use\n"

    async def fine() -> None:
        pass

    assert _cli.run(fine, name="t") == 0
