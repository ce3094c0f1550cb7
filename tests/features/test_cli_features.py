"""`shipyard features plan / apply / list / describe / historical` on a repo folder."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from shipyard.cli.main import app
from shipyard.features.registry import IncompatibleChangeError

REPO = """
from datetime import timedelta

import pandas as pd

from shipyard.features import (
    Entity, FeatureService, FeatureView, Field, FileSource, Float32, Float64, Int64,
    OnDemandFeatureView, RequestSource, ValueType,
)

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)

driver_stats = FeatureView(
    name="driver_stats",
    entities=[driver],
    schema=[Field(name="conv_rate", dtype={dtype}), Field(name="trips", dtype=Int64)],
    source=FileSource(path={path!r}, timestamp_field="event_timestamp"),
    ttl=timedelta(hours={ttl}),
)


def scaled(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({{"scaled_trips": frame["trips"] * frame["factor"]}})


scaled_trips = OnDemandFeatureView(
    name="scaled_trips",
    sources=[driver_stats[["trips"]], RequestSource("req", [Field("factor", Float64)])],
    schema=[Field("scaled_trips", Float64)],
    udf=scaled,
)

driver_model = FeatureService(name="driver_model", features=[driver_stats, scaled_trips])
"""

T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch, fresh_sqlite_url: str) -> None:
    from shipyard.cli import _common

    monkeypatch.setattr(_common.console, "width", 300)
    monkeypatch.setenv("SHIPYARD_DB", fresh_sqlite_url)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    data = tmp_path / "driver.parquet"
    pq.write_table(
        pa.table(
            {
                "driver_id": [1, 2],
                "event_timestamp": [T0, T0],
                "conv_rate": pa.array([0.5, 0.25], pa.float32()),
                "trips": [4, 8],
            }
        ),
        data,
    )
    folder = tmp_path / "repo_cli"
    folder.mkdir()
    write_repo(folder, data)
    return folder


def write_repo(folder: Path, data: Path, dtype: str = "Float32", ttl: int = 2) -> None:
    text = REPO.format(dtype=dtype, path=str(data), ttl=ttl)
    (folder / "definitions.py").write_text(textwrap.dedent(text))


def test_plan_apply_and_list(repo: Path) -> None:
    runner = CliRunner()
    planned = runner.invoke(app, ["features", "plan", str(repo)])
    assert planned.exit_code == 0, planned.output
    assert "added  feature view driver_stats -> v1" in planned.output
    assert "Plan: 4 added, 0 changed, 0 removed, 0 unchanged." in planned.output

    applied = runner.invoke(app, ["features", "apply", str(repo)])
    assert applied.exit_code == 0, applied.output
    assert "Applied." in applied.output

    again = runner.invoke(app, ["features", "plan", str(repo)])
    assert "Plan: 0 added, 0 changed, 0 removed, 4 unchanged." in again.output

    write_repo(repo, repo.parent / "driver.parquet", ttl=3)
    changed = runner.invoke(app, ["features", "apply", str(repo)])
    assert "changed  feature view driver_stats v1 -> v2" in changed.output
    assert "ttl_seconds: 7200.0 -> 10800.0" in changed.output

    listed = runner.invoke(app, ["features", "list"])
    assert "driver_stats" in listed.output and "driver_model" in listed.output
    described = runner.invoke(app, ["features", "describe", "driver_stats"])
    assert '"ttl_seconds": 10800.0' in described.output and "changed" in described.output


def test_incompatible_change_refused_then_forced(repo: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["features", "apply", str(repo)]).exit_code == 0
    write_repo(repo, repo.parent / "driver.parquet", dtype="Float64")
    planned = runner.invoke(app, ["features", "plan", str(repo)])
    assert "incompatible: field 'conv_rate' changes dtype Float32 -> Float64" in planned.output
    refused = runner.invoke(app, ["features", "apply", str(repo)])
    assert refused.exit_code != 0
    assert isinstance(refused.exception, IncompatibleChangeError)
    forced = runner.invoke(app, ["features", "apply", str(repo), "--force"])
    assert forced.exit_code == 0, forced.output


def test_main_prints_refusal_with_hint(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from shipyard.cli.main import main

    main_exit = None
    for argv in (["features", "apply", str(repo)],):
        try:
            main(argv)
        except SystemExit as exc:
            main_exit = exc.code
    write_repo(repo, repo.parent / "driver.parquet", dtype="Float64")
    with pytest.raises(SystemExit) as exited:
        main(["features", "apply", str(repo)])
    assert main_exit in (None, 0)
    assert exited.value.code == IncompatibleChangeError.exit_code
    err = capsys.readouterr().err
    assert "Incompatible change" in err and "--force" in err


def test_historical_writes_training_set(repo: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["features", "apply", str(repo)]).exit_code == 0
    entities = tmp_path / "entities.parquet"
    pq.write_table(
        pa.table(
            {
                "driver_id": [2, 1, 7],
                "event_timestamp": [T0 + timedelta(hours=1)] * 3,
                "factor": [0.5, 2.0, 1.0],
            }
        ),
        entities,
    )
    out = tmp_path / "train.parquet"
    result = runner.invoke(
        app, ["features", "historical", str(entities), "--service", "driver_model", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.column("trips").to_pylist() == [8, 4, None]
    assert table.column("scaled_trips").to_pylist() == [4.0, 8.0, None]
    assert (tmp_path / "train.parquet.sha256").exists()


def test_empty_repo_is_refused_rather_than_removing_everything(repo: Path, tmp_path: Path) -> None:
    from shipyard.errors import InvalidArgumentError

    runner = CliRunner()
    assert runner.invoke(app, ["features", "apply", str(repo)]).exit_code == 0
    empty = tmp_path / "empty_repo"
    empty.mkdir()
    (empty / "notes.py").write_text("x = 1\n")
    result = runner.invoke(app, ["features", "apply", str(empty)])
    assert isinstance(result.exception, InvalidArgumentError)
    assert "No feature definitions found" in str(result.exception)
    assert "driver_stats" in runner.invoke(app, ["features", "list"]).output
