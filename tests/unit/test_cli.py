"""mip6term CLI: argument parsing and the one-error-line/non-zero-exit rule (no root needed)."""

from __future__ import annotations

import pytest

from provisioning import cli
from provisioning.errors import ProvisioningError


def test_parser_testbed_up_defaults() -> None:
    args = cli.build_parser().parse_args(["testbed", "up"])
    assert (args.prefix, args.no_agents, args.ha_refuse) == ("m6", False, False)


def test_parser_testbed_up_flags() -> None:
    args = cli.build_parser().parse_args(
        ["testbed", "up", "--prefix", "t7", "--no-agents", "--ha-refuse"])
    assert (args.prefix, args.no_agents, args.ha_refuse) == ("t7", True, True)


def test_parser_exec_keeps_command_after_double_dash() -> None:
    args = cli.build_parser().parse_args(["testbed", "exec", "cn", "--", "curl", "-s", "-o", "x"])
    assert args.node == "cn"
    assert [a for a in args.argv if a != "--"] == ["curl", "-s", "-o", "x"]


def test_parser_move_and_timeout() -> None:
    args = cli.build_parser().parse_args(["move", "home", "--timeout", "3.5", "--prefix", "q"])
    assert (args.target, args.timeout, args.prefix) == ("home", 3.5, "q")


@pytest.mark.parametrize("argv", [["move", "e"], ["move", "a", "--timeout", "x"], ["bogus"],
                                  ["testbed"], ["agent"]])
def test_bad_arguments_exit_2_with_one_error_line(argv: list[str],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("mip6term")
    assert "error:" in err[-1]


@pytest.mark.parametrize("argv", [["status", "--prefix", "Bad!"],
                                  ["agent", "restart", "--prefix", "9x"],
                                  ["move", "a", "--prefix", "UPPER"]])
def test_invalid_prefix_is_one_error_line(argv: list[str],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("mip6term: error: invalid prefix")


def test_move_rejects_non_positive_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["move", "a", "--timeout", "0"]) == 1
    assert "--timeout must be positive" in capsys.readouterr().err


def test_provisioning_error_becomes_exit_1(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    def boom(args: object) -> int:
        raise ProvisioningError("the switch is on fire")

    monkeypatch.setitem(cli._COMMANDS, "status", boom)
    assert cli.main(["status"]) == 1
    assert capsys.readouterr().err == "mip6term: error: the switch is on fire\n"


def test_status_without_agents_fails_cleanly(monkeypatch: pytest.MonkeyPatch, tmp_path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "STATE_ROOT", str(tmp_path))
    assert cli.main(["status", "--prefix", "nobed"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mip6term: error: no agent answered")
    assert err.count("\n") == 1


def test_python_dash_m_provisioning_runs_the_cli() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "provisioning", "--help"], capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0
    assert "testbed" in out.stdout and "move" in out.stdout
