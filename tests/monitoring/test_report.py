"""Drift reports: one self-contained HTML page and the same facts as JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from shipyard.monitoring.profiles import Profile
from shipyard.monitoring.report import build_report


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    n = 3000
    ref = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "city": rng.choice(["paris", "lyon", "<nice>"], n),
            "score": rng.uniform(0, 1, n),
        }
    )
    cur = pd.DataFrame(
        {
            "age": rng.normal(50, 10, 1000),
            "city": rng.choice(["paris", "lyon", "lille"], 1000),
            "score": rng.uniform(0, 1, 1000),
        }
    )
    return ref, cur


def _assert_self_contained(page: str) -> None:
    assert "<script" not in page.lower()
    assert not re.search(r"(src|href)\s*=", page, re.IGNORECASE)
    assert "http://" not in page and "https://" not in page
    assert "@import" not in page


@pytest.mark.parametrize("as_profile", [False, True], ids=["raw", "profile"])
def test_report_has_a_chart_and_verdict_per_column(
    frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path, as_profile: bool
) -> None:
    ref, cur = frames
    reference = Profile.from_data(ref) if as_profile else ref
    report = build_report(reference, cur, title="Churn <drift>", meta={"model": "churn"})
    html_path, json_path = report.save(tmp_path / "out")
    page = html_path.read_text()
    _assert_self_contained(page)
    assert page.count("<svg") == 3
    assert "Churn &lt;drift&gt;" in page and "&lt;nice&gt;" in page  # escaped
    assert "Dataset drift detected" in page
    data = json.loads(json_path.read_text())
    by_column = {c["column"]: c for c in data["columns"]}
    assert by_column["age"]["drifted"] and by_column["age"]["test"] == "wasserstein"
    assert by_column["age"]["threshold"] == 0.1
    assert by_column["city"]["new_categories"] == ["lille"]
    assert not by_column["score"]["drifted"]
    assert data["dataset"]["n_drifted"] == 2 and data["dataset"]["drifted"]
    chart = by_column["age"]["chart"]
    assert sum(chart["reference"]) == pytest.approx(1.0)
    assert sum(chart["current"]) == pytest.approx(1.0)
    for c in data["columns"]:
        assert f"{c['score']:.4g}" in page


def test_report_cli_from_files_and_from_the_prediction_log(
    frames: tuple[pd.DataFrame, pd.DataFrame],
    tmp_path: Path,
    write_log: Callable[..., Any],
    artifacts_url: str,
    monkeypatch: Any,
) -> None:
    from shipyard.cli.main import app

    ref, cur = frames
    ref.to_parquet(tmp_path / "ref.parquet")
    cur.to_csv(tmp_path / "cur.csv", index=False)
    runner = CliRunner()
    done = runner.invoke(
        app,
        [
            "monitor",
            "report",
            "-m",
            "churn",
            "--reference",
            str(tmp_path / "ref.parquet"),
            "--current",
            str(tmp_path / "cur.csv"),
            "--out",
            str(tmp_path / "r1"),
        ],
    )
    assert done.exit_code == 0, done.output
    assert "DRIFT" in done.output and (tmp_path / "r1" / "report.html").is_file()

    # The current window from the prediction log of the default artifact root.
    monkeypatch.setenv("SHIPYARD_ARTIFACTS", artifacts_url)
    write_log({"age": cur["age"].to_numpy(), "city": cur["city"].to_numpy()})
    Profile.from_data(ref[["age", "city"]]).save(tmp_path / "p.json")
    done = runner.invoke(
        app,
        [
            "monitor",
            "report",
            "-m",
            "churn",
            "--reference",
            str(tmp_path / "p.json"),
            "--current",
            "window:1h",
            "--out",
            str(tmp_path / "r2"),
        ],
    )
    assert done.exit_code == 0, done.output
    data = json.loads((tmp_path / "r2" / "report.json").read_text())
    assert data["meta"]["current"].startswith("prediction log")
    assert [c["column"] for c in data["columns"]] == ["age", "city"]


def test_the_monitoring_tour_writes_its_report(tmp_path: Path, capsys: Any) -> None:
    from tests.monitoring.test_prometheus import load_tour

    html_path = load_tour().main(["--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert f"HTML report: {html_path}" in out
    assert "gives the same verdicts" in out
    _assert_self_contained(html_path.read_text())
