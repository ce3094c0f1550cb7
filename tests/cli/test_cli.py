"""The `shipyard` command: one user journey through runs, models and artifacts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import shipyard
from shipyard.cli.main import main


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    code = 0
    try:
        main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def populated() -> dict[str, str]:
    """Two tracked runs and a registered model with two versions in a fresh home."""
    shipyard.set_experiment("cli-demo")
    x = np.random.default_rng(0).normal(size=(60, 3))
    y = (x[:, 0] > 0).astype(int)
    ids = {}
    for name, accuracy in (("good", 0.95), ("weak", 0.55)):
        with shipyard.start_run(run_name=name) as run:
            shipyard.log_params({"C": 1.0 if name == "good" else 0.01})
            shipyard.log_metrics({"accuracy": accuracy})
            shipyard.log_text("hello", "notes/readme.txt")
            shipyard.log_model(
                LogisticRegression().fit(x, y), "model", registered_model_name="churn"
            )
        ids[name] = run.info.run_id
    return ids


def test_runs_list_show_and_compare(
    populated: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "runs", "list", "-e", "cli-demo", "-f", "metrics.accuracy > 0.9")
    assert code == 0
    assert populated["good"] in out and populated["weak"] not in out

    code, out, _ = run_cli(capsys, "runs", "show", populated["good"])
    assert code == 0
    assert "accuracy" in out and "0.95" in out and "notes" in out

    code, out, _ = run_cli(capsys, "runs", "compare", populated["good"], populated["weak"])
    assert code == 0
    assert "*metrics.accuracy" in out and "*params.C" in out


def test_models_gate_refuses_then_promotes(
    populated: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = run_cli(capsys, "models", "gate", "churn", "champion", "accuracy >= 0.9")
    assert code == 0

    code, _, err = run_cli(capsys, "models", "promote", "churn", "2", "--to", "champion")
    assert code == 4
    assert "Promotion refused" in err and "accuracy >= 0.9 (was 0.55)" in err

    code, out, _ = run_cli(capsys, "models", "promote", "churn", "1", "--to", "champion")
    assert code == 0 and "churn@champion: - -> 1" in out

    code, out, _ = run_cli(capsys, "models", "show", "churn")
    assert "@champion" in out and "accuracy >= 0.9" in out

    code, out, _ = run_cli(capsys, "models", "versions", "churn")
    assert code == 0 and "sklearn" in out

    code, out, _ = run_cli(capsys, "models", "history", "churn")
    assert code == 0 and "@champion" in out

    code, out, _ = run_cli(capsys, "models", "list")
    assert "churn" in out and "@champion=1" in out


def test_artifacts_ls_and_get(
    populated: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run_id = populated["good"]
    code, out, _ = run_cli(capsys, "artifacts", "ls", run_id)
    assert code == 0 and "notes/" in out and "model/" in out

    dest = tmp_path / "out"
    code, out, _ = run_cli(capsys, "artifacts", "get", run_id, "notes", "--dest", str(dest))
    assert code == 0
    assert (dest / "notes" / "readme.txt").read_text() == "hello"


def test_unknown_run_says_how_to_find_one(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "runs", "show", "0" * 32)
    assert code == 3
    assert "does not exist" in err and "shipyard runs list" in err


def test_workspaces_and_experiments(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "workspaces", "create", "team-a")[0] == 0
    code, out, _ = run_cli(capsys, "workspaces", "list")
    assert "team-a" in out and "default" in out

    assert run_cli(capsys, "experiments", "create", "exp-a", "-w", "team-a")[0] == 0
    _, out_a, _ = run_cli(capsys, "experiments", "list", "-w", "team-a")
    _, out_default, _ = run_cli(capsys, "experiments", "list")
    assert "exp-a" in out_a and "exp-a" not in out_default

    code, _, err = run_cli(capsys, "workspaces", "create", "Bad Name")
    assert code == 2 and "Invalid workspace name" in err


def test_bad_filter_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "runs", "list", "-f", "metrics.acc >>> 1")
    assert code == 2
    assert "position" in err
