"""The live monitor: a window of the prediction log against each version's profile, exported
as Prometheus gauges; data quality; the CLI and the platform-server service."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from shipyard.monitoring.monitor import Monitor
from shipyard.monitoring.profiles import Profile
from shipyard.monitoring.quality import data_quality


def _gauges(registry: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client import generate_latest

    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    rng = np.random.default_rng(10)
    n = 5000
    return pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "income": rng.normal(50, 5, n),
            "plan": rng.choice(["basic", "pro"], n, p=[0.7, 0.3]),
            "prediction": rng.integers(0, 2, n).astype(float),
        }
    )


def test_update_sets_drift_quality_and_prediction_gauges_per_version(
    write_log: Callable[..., Any], artifacts_url: str, reference: pd.DataFrame
) -> None:
    rng = np.random.default_rng(11)
    n = 2000
    drifted_age = rng.normal(55, 10, n)  # shifted by 1.5 std
    drifted_age[:100] = np.nan
    income = rng.normal(50, 5, n)
    income[:10] = 80.0  # beyond the reference's range, too few to drift
    plan = rng.choice(["basic", "pro", "enterprise"], n, p=[0.6, 0.3, 0.1])
    write_log({"age": drifted_age, "income": income, "plan": plan}, version="2")
    write_log(
        {"age": rng.normal(40, 10, 500), "income": rng.normal(50, 5, 500), "plan": ["basic"] * 500},
        version="1",
    )
    profile = Profile.from_data(reference, categorical=["prediction"])
    monitor = Monitor(
        "churn", artifacts_url=artifacts_url, window="1h", references={"1": profile, "2": profile}
    )
    snapshot = monitor.update()
    assert snapshot.rows == 2500
    v2 = snapshot.version("2")
    assert v2.drift is not None and v2.drift.drifted_columns == ("age", "plan")
    assert v2.quality["age"].missing_share == pytest.approx(0.05)
    lo, hi = reference["income"].min(), reference["income"].max()
    expected = float(np.mean((income < lo) | (income > hi)))
    assert expected >= 0.005
    assert v2.quality["income"].out_of_range_share == pytest.approx(expected)
    assert v2.quality["plan"].new_categories == ("enterprise",)
    assert v2.prediction is not None and v2.prediction.test == "jensenshannon"
    assert v2.latency_p99_ms is not None and 1 <= v2.latency_p99_ms <= 5
    g = _gauges(monitor.metrics.registry)
    key = (("feature_name", "age"), ("model", "churn"), ("version", "2"))
    assert g[("model_feature_drift", key)] == pytest.approx(v2.drift["age"].score)
    assert g[("model_feature_drift_detected", key)] == 1.0
    assert g[("model_dataset_drift_share", (("model", "churn"), ("version", "2")))] == (
        pytest.approx(2 / 3)
    )
    assert g[("model_dataset_drift_share", (("model", "churn"), ("version", "1")))] < 0.5
    assert g[("model_feature_missing_share", key)] == pytest.approx(0.05)
    plan_key = (("feature_name", "plan"), ("model", "churn"), ("version", "2"))
    assert g[("model_feature_new_category_share", plan_key)] == pytest.approx(
        float(np.mean(plan == "enterprise"))
    )
    assert ("model_prediction_drift", (("model", "churn"), ("version", "2"))) in g
    assert g[("model_monitor_window_rows", (("model", "churn"), ("version", "1")))] == 500


def test_a_version_that_leaves_the_window_stops_being_reported(
    write_log: Callable[..., Any], artifacts_url: str, reference: pd.DataFrame
) -> None:
    from datetime import UTC, datetime, timedelta

    old = datetime.now(UTC) - timedelta(hours=3)
    write_log({"age": [40.0] * 50}, version="1", end=old, seconds=10)
    monitor = Monitor(
        "churn",
        artifacts_url=artifacts_url,
        window="1h",
        references={"1": Profile.from_data(reference)},
    )
    monitor.update(now=old + timedelta(minutes=1))
    assert any(k[0] == "model_feature_drift" for k in _gauges(monitor.metrics.registry))
    assert monitor.update().rows == 0
    assert not any(k[0] == "model_feature_drift" for k in _gauges(monitor.metrics.registry))


def test_a_count_window_takes_the_last_rows(
    write_log: Callable[..., Any], artifacts_url: str, reference: pd.DataFrame
) -> None:
    write_log({"age": np.arange(300.0)})
    monitor = Monitor(
        "churn",
        artifacts_url=artifacts_url,
        window="100rows",
        references={"1": Profile.from_data(reference)},
    )
    snapshot = monitor.update()
    assert snapshot.rows == 100
    table, _ = monitor.read_window()
    assert table.column("feature.age").to_pylist() == list(np.arange(200.0, 300.0))


def test_a_version_without_a_reference_gets_no_drift(
    write_log: Callable[..., Any], artifacts_url: str
) -> None:
    write_log({"age": [1.0, 2.0]}, version="7")
    monitor = Monitor("churn", artifacts_url=artifacts_url, window="1h", references={})
    status = monitor.update().version("7")
    assert status.drift is None and status.rows == 2


def test_data_quality_against_raw_reference() -> None:
    ref = pd.DataFrame({"x": [0.0, 1.0, 2.0], "c": ["a", "b", "a"]})
    cur = pd.DataFrame({"x": [-1.0, 0.5, None, 3.0], "c": ["a", "z", "z", None]})
    q = data_quality(ref, cur)
    assert q["x"].missing_share == 0.25
    assert q["x"].out_of_range_share == pytest.approx(2 / 3)
    assert q["c"].new_category_share == pytest.approx(2 / 3)
    assert q["c"].new_categories == ("z",)


def test_monitor_run_once_from_the_cli(
    write_log: Callable[..., Any],
    tmp_path: Path,
    reference: pd.DataFrame,
    monkeypatch: Any,
    fresh_sqlite_url: str,
) -> None:
    from shipyard.cli import _common
    from shipyard.cli.main import app

    monkeypatch.setattr(_common.console, "width", 200)
    monkeypatch.setenv("SHIPYARD_DB", fresh_sqlite_url)
    artifacts = tmp_path / "shipyard-home" / "artifacts"
    artifacts.mkdir(parents=True)
    from shipyard.monitoring.windows import write_log_part
    from tests.monitoring.conftest import log_table

    rng = np.random.default_rng(1)
    table = log_table({"age": rng.normal(70, 10, 300), "income": rng.normal(50, 5, 300)})
    write_log_part(artifacts.as_uri(), "default", "churn", table)
    Profile.from_data(reference).save(tmp_path / "p.json")
    done = CliRunner().invoke(
        app,
        [
            "monitor",
            "run",
            "-m",
            "churn",
            "--once",
            "--window",
            "1h",
            "--reference",
            str(tmp_path / "p.json"),
        ],
    )
    assert done.exit_code == 0, done.output
    assert "age" in done.output and "50%" in done.output


def test_the_platform_server_service_runs_only_when_enabled(
    tmp_path: Path, fresh_sqlite_url: str, monkeypatch: Any
) -> None:
    from shipyard.config import Settings
    from shipyard.monitoring.service import monitor_service
    from shipyard.testing import platform_client

    http = platform_client(Settings(home=tmp_path / "home", db=fresh_sqlite_url))
    app = http.client.app
    monkeypatch.delenv("SHIPYARD_MONITOR_MODELS", raising=False)
    assert monitor_service(app) is None
    assert http.client.get("/api/v1/monitoring/metrics").text == ""
    monkeypatch.setenv("SHIPYARD_MONITOR_MODELS", "churn")
    monkeypatch.setenv("SHIPYARD_MONITOR_INTERVAL", "0.2")
    stop = monitor_service(app)
    assert stop is not None
    try:
        import time

        deadline = time.monotonic() + 10
        text = ""
        while time.monotonic() < deadline and "model_monitor_last_update" not in text:
            time.sleep(0.1)
            text = http.client.get("/api/v1/monitoring/metrics").text
        assert 'model_monitor_last_update_timestamp_seconds{model="churn"}' in text
    finally:
        stop()


def test_a_feature_missing_from_the_whole_window_is_reported_not_fatal(
    write_log: Callable[..., Any], artifacts_url: str, reference: pd.DataFrame
) -> None:
    write_log({"age": [np.nan] * 20, "income": np.full(20, 50.0)})
    monitor = Monitor(
        "churn",
        artifacts_url=artifacts_url,
        window="1h",
        references={"1": Profile.from_data(reference)},
    )
    status = monitor.update().version("1")
    assert status.drift is not None and [r.column for r in status.drift.columns] == ["income"]
    assert status.quality["age"].missing_share == 1.0
