"""``shipyard pipelines compile|schedule|backfill|trigger`` from the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from shipyard.cli.main import main
from shipyard.pipelines import pipeline, step

FLOW = f"{__name__}:tiny"


@step
def hello(who: str) -> str:
    return f"hello {who}"


@pipeline
def tiny(who: str = "cli"):
    hello(who=who)


@pytest.fixture(autouse=True)
def _close_step_workers() -> Iterator[None]:
    yield
    from shipyard.pipelines.worker import shutdown_pools

    shutdown_pools()


@dataclass
class Result:
    exit_code: int
    output: str


class Cli:
    """Runs ``shipyard`` in-process the way the console script does (errors as exit codes)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def invoke(self, argv: list[str]) -> Result:
        code = 0
        try:
            main(argv)
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = self.capsys.readouterr()
        return Result(code, out + err)


@pytest.fixture
def runner(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fresh_sqlite_url: str,
    artifacts_url: str,
) -> Cli:
    from shipyard.cli import _common

    monkeypatch.setenv("SHIPYARD_DB", fresh_sqlite_url)
    monkeypatch.setenv("SHIPYARD_ARTIFACTS", artifacts_url)
    monkeypatch.setattr(_common.console, "width", 300)
    monkeypatch.setattr(_common.err_console, "width", 300)
    return Cli(capsys)


def test_compile_writes_kfp_yaml_and_airflow_dag(runner: Cli, tmp_path: Path) -> None:
    out = tmp_path / "tiny.yaml"
    done = runner.invoke(
        ["pipelines", "compile", FLOW, "--target", "kfp", "--out", str(out), "--image", "me/img:2"],
    )
    assert done.exit_code == 0, done.output
    spec = yaml.safe_load(out.read_text())
    assert spec["pipelineInfo"]["name"] == "tiny"
    assert spec["deploymentSpec"]["executors"]["exec-hello"]["container"]["image"] == "me/img:2"
    dag = tmp_path / "tiny_dag.py"
    done = runner.invoke(
        [
            *("pipelines", "compile", FLOW, "-t", "airflow", "-o", str(dag)),
            *("--schedule", "@daily", "--owner", "mlops_team", "--tag", "ml", "--tag", "training"),
        ],
    )
    assert done.exit_code == 0, done.output
    source = dag.read_text()
    compile(source, str(dag), "exec")
    assert "schedule='@daily'" in source and "'owner': 'mlops_team'" in source.replace('"', "'")
    assert "tags=['ml', 'training']" in source
    bad = runner.invoke(["pipelines", "compile", FLOW, "--target", "argo"])
    assert bad.exit_code == 2
    assert "Unknown target 'argo'" in bad.output


def test_schedule_commands_create_list_pause_and_delete(runner: Cli) -> None:
    done = runner.invoke(
        ["pipelines", "schedule", "create", "nightly", FLOW, "--cron", "@daily", "-p", "who=ops"],
    )
    assert done.exit_code == 0, done.output
    assert "next fire" in done.output
    listed = runner.invoke(["pipelines", "schedule", "list"])
    assert "nightly" in listed.output and "@daily" in listed.output
    assert runner.invoke(["pipelines", "schedule", "pause", "nightly"]).exit_code == 0
    assert "True" in runner.invoke(["pipelines", "schedule", "list"]).output
    assert runner.invoke(["pipelines", "schedule", "resume", "nightly"]).exit_code == 0
    bad = runner.invoke(["pipelines", "schedule", "create", "x", FLOW, "--cron", "often"])
    assert bad.exit_code == 2
    assert "not a cron schedule" in bad.output
    assert runner.invoke(["pipelines", "schedule", "delete", "nightly"]).exit_code == 0
    missing = runner.invoke(["pipelines", "schedule", "delete", "nightly"])
    assert missing.exit_code == 3


def test_backfill_runs_one_run_per_day(runner: Cli) -> None:
    from shipyard.pipelines.executor import list_runs

    created = runner.invoke(
        [
            *("pipelines", "schedule", "create", "daily", FLOW),
            "--cron",
            "@daily",
            "--max-active-runs",
            "2",
        ],
    )
    assert created.exit_code == 0, created.output
    done = runner.invoke(
        ["pipelines", "backfill", "daily", "--start", "2024-02-01", "--end", "2024-02-03"],
    )
    assert done.exit_code == 0, done.output
    assert "Backfilled 3 run(s)" in done.output
    shown = runner.invoke(["pipelines", "schedule", "show", "daily"])
    assert shown.exit_code == 0, shown.output
    assert shown.output.count("backfill") == 3 and "2024-02-03T00:00:00+00:00" in shown.output
    runs = list_runs()
    assert sorted(r.scheduled_time.date().isoformat() for r in runs if r.scheduled_time) == [
        "2024-02-01",
        "2024-02-02",
        "2024-02-03",
    ]
    assert {r.status for r in runs} == {"succeeded"}


def test_trigger_commands(runner: Cli, tmp_path: Path) -> None:
    done = runner.invoke(
        [
            *("pipelines", "trigger", "create", "arrivals", FLOW, "--on", "data"),
            *("--path", str(tmp_path / "*.csv"), "-p", "who={name}"),
        ],
    )
    assert done.exit_code == 0, done.output
    done = runner.invoke(
        [
            *("pipelines", "trigger", "create", "drift", FLOW, "--on", "alert"),
            *("--alert", "feature_drift", "--label", "model=churn"),
        ],
    )
    assert done.exit_code == 0, done.output
    listed = runner.invoke(["pipelines", "trigger", "list"])
    assert "arrivals" in listed.output and "drift" in listed.output
    assert json.loads('{"model": "churn"}')["model"] in listed.output
    assert runner.invoke(["pipelines", "trigger", "delete", "drift"]).exit_code == 0
