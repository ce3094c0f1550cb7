"""``shipyard pipelines run|list|show|logs|resume|cancel`` in a fresh SHIPYARD_HOME."""

from __future__ import annotations

import re

import pytest

from shipyard.cli.main import main
from shipyard.pipelines import pipeline, step


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    from shipyard.cli import _common

    monkeypatch.setattr(_common.console, "width", 300)
    monkeypatch.setattr(_common.err_console, "width", 300)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@step
def greet(name: str, times: int) -> str:
    print(f"hello {name} x{times}")
    return name * times


@step
def shout(text: str) -> str:
    if text.startswith("fail"):
        raise RuntimeError(f"cannot shout {text!r}")
    return text.upper()


@pipeline
def hello(name: str = "ship", times: int = 1):
    shout(text=greet(name=name, times=times).output)


def _run_id(out: str) -> str:
    match = re.search(r"Started run ([0-9a-f]{32})", out)
    assert match, out
    return match.group(1)


def test_run_show_list_and_logs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys, "pipelines", "run", "test_cli_pipelines:hello", "-p", "name=42", "-p", "times=2"
    )
    assert code == 0, out + err
    run_id = _run_id(out)
    assert "succeeded" in out and "4242" in out

    code, out, _ = run_cli(
        capsys, "pipelines", "run", "test_cli_pipelines:hello", "-p", "name=42", "-p", "times=2"
    )
    rerun = _run_id(out)
    code, out, _ = run_cli(capsys, "pipelines", "show", rerun)
    assert code == 0
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("│ ")}
    assert "cached" in rows["greet"] and "yes" in rows["greet"]

    code, out, _ = run_cli(capsys, "pipelines", "list")
    assert run_id in out and rerun in out

    code, out, _ = run_cli(capsys, "pipelines", "logs", run_id, "greet")
    assert code == 0
    assert "hello 42 x2" in out


def test_a_failed_run_exits_1_and_prints_the_resume_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_cli(
        capsys, "pipelines", "run", "test_cli_pipelines:hello", "-p", "name=fail"
    )
    assert code == 1
    run_id = _run_id(out)
    assert "cannot shout 'fail'" in out
    assert f"shipyard pipelines resume {run_id}" in out

    code, out, _ = run_cli(capsys, "pipelines", "resume", run_id)
    assert code == 1  # still broken: the same parameter fails again
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines()]
    rows = {c[0]: c[1:3] for c in cells if len(c) > 3}
    assert rows["greet"] == ["succeeded", "1"]  # finished the first time, not run again
    assert rows["shout"] == ["failed", "2"]

    code, out, _ = run_cli(capsys, "pipelines", "cancel", run_id)
    assert code == 0 and "failed" in out


def test_bad_input_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "pipelines", "run", "test_cli_pipelines:hello", "-p", "nme=x")
    assert code == 2
    assert "has no parameter 'nme'. Did you mean 'name'?" in err

    code, _, err = run_cli(capsys, "pipelines", "run", "no_such_module_here:p")
    assert code == 1 and "Cannot import module 'no_such_module_here'" in err

    code, _, err = run_cli(capsys, "pipelines", "show", "0" * 32)
    assert code == 3 and "does not exist" in err

    code, _, err = run_cli(capsys, "pipelines", "logs", "0" * 32)
    assert code == 3
