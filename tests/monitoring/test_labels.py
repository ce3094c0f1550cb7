"""Delayed ground-truth labels: stored by request id (SQLite and PostgreSQL), posted over HTTP
or from a file, joined with the prediction log into performance gauges equal to sklearn's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from shipyard.errors import InvalidArgumentError
from shipyard.monitoring.labels import LabelStore, join_labels, read_labels_file
from shipyard.monitoring.performance import (
    classification_metrics,
    infer_task,
    positive_scores,
    regression_metrics,
)
from tests.monitoring.conftest import log_table


def test_labels_are_stored_replaced_and_typed(db_url: str, workspace: str) -> None:
    from shipyard.store.db import engine_for

    store = LabelStore(engine_for(db_url), workspace)
    assert store.put("churn", {"r1": 1, "r2": "yes", "r3": 2.5}) == 3
    assert store.put("churn", [("r1", 0)]) == 1  # a corrected label replaces the first
    assert store.get("churn", ["r1", "r2", "r3", "nope"]) == {"r1": 0, "r2": "yes", "r3": 2.5}
    assert store.get("other", ["r1"]) == {}
    assert store.count("churn") == 3


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"": 1}, "1 to 128 characters"),
        ({"r": None}, "missing or not finite"),
        ({"r": float("nan")}, "missing or not finite"),
        ({"r": [1]}, "must be a number"),
    ],
)
def test_bad_labels_are_refused(
    fresh_sqlite_url: str, labels: dict[str, Any], message: str
) -> None:
    from shipyard.store.db import engine_for

    with pytest.raises(InvalidArgumentError, match=message):
        LabelStore(engine_for(fresh_sqlite_url), "default").put("m", labels)


def test_post_labels_route_stores_them_and_checks_input(
    tmp_path: Path, fresh_sqlite_url: str
) -> None:
    from shipyard.config import Settings
    from shipyard.testing import platform_client

    settings = Settings(home=tmp_path / "home", db=fresh_sqlite_url)
    http = platform_client(settings)
    raw = http.client
    body = {
        "model": "churn",
        "labels": [{"request_id": "a", "label": 1}, {"request_id": "b", "label": "no"}],
    }
    response = raw.post("/api/v1/monitoring/labels", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"model": "churn", "stored": 2}
    count = raw.get("/api/v1/monitoring/labels/churn/count").json()
    assert count == {"model": "churn", "count": 2}
    bad = raw.post("/api/v1/monitoring/labels", json={"model": "churn", "labels": []})
    assert bad.status_code in (400, 422) and "error" in bad.json()
    nan = raw.post(
        "/api/v1/monitoring/labels",
        content=b'{"model":"m","labels":[{"request_id":"x","label":NaN}]}',
        headers={"Content-Type": "application/json"},
    )
    assert 400 <= nan.status_code < 500
    spec = raw.get("/openapi.json").json()["paths"]["/api/v1/monitoring/labels"]["post"]
    assert spec["x-shipyard-permission"] == "models:write"


def test_labels_cli_reads_csv_and_parquet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_sqlite_url: str
) -> None:
    from shipyard.cli.main import app
    from shipyard.client import Client
    from shipyard.store.db import engine_for

    monkeypatch.setenv("SHIPYARD_DB", fresh_sqlite_url)
    pd.DataFrame({"request_id": ["a", "b"], "label": [1, 0]}).to_csv(tmp_path / "l.csv")
    pd.DataFrame({"request_id": ["c"], "label": [1]}).to_parquet(tmp_path / "l.parquet")
    runner = CliRunner()
    for name in ("l.csv", "l.parquet"):
        done = runner.invoke(app, ["monitor", "labels", str(tmp_path / name), "-m", "churn"])
        assert done.exit_code == 0, done.output
    settings = Client().settings
    assert LabelStore(engine_for(settings.db), "default").count("churn") == 3
    with pytest.raises(InvalidArgumentError, match="no label column"):
        pd.DataFrame({"request_id": ["a"]}).to_csv(tmp_path / "bad.csv")
        read_labels_file(tmp_path / "bad.csv")


def test_join_labels_keeps_labeled_rows_in_log_order() -> None:
    table = log_table({"x": [1.0, 2.0, 3.0]}, request_ids=["a", "b", "c"])
    joined = join_labels(table, {"c": 1, "a": 0})
    assert joined.column("request_id").to_pylist() == ["a", "c"]
    assert joined.column("label").to_pylist() == [0, 1]
    assert join_labels(table, {}).num_rows == 0


# --- metrics against sklearn ----------------------------------------------------------------

labels_st = st.lists(st.integers(0, 1), min_size=1, max_size=80)


@settings(max_examples=80, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.integers(0, 1), st.integers(0, 1), st.floats(0.5, 1.0)),
        min_size=1,
        max_size=80,
    )
)
def test_binary_metrics_equal_sklearn(data: list[tuple[int, int, float]]) -> None:
    from sklearn import metrics as skm

    y, p, c = (np.array(v) for v in zip(*data, strict=True))
    got = classification_metrics(y, p, positive_scores(p, c, 1))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, p))
    assert got["precision"] == pytest.approx(skm.precision_score(y, p, zero_division=0))
    assert got["recall"] == pytest.approx(skm.recall_score(y, p, zero_division=0))
    assert got["f1"] == pytest.approx(skm.f1_score(y, p, zero_division=0))
    scores = positive_scores(p, c, 1)
    if len(set(y.tolist())) == 2:
        assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, scores))
    else:
        assert "roc_auc" not in got


@settings(max_examples=60, deadline=None)
@given(data=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=80))
def test_multiclass_metrics_equal_sklearn_macro(data: list[tuple[int, int]]) -> None:
    from sklearn import metrics as skm

    y, p = (np.array(v) for v in zip(*data, strict=True))
    if len(set(y.tolist()) | set(p.tolist())) <= 2:
        return
    got = classification_metrics(y, p)
    kw: dict[str, Any] = {"average": "macro", "zero_division": 0}
    assert got["precision"] == pytest.approx(skm.precision_score(y, p, **kw))
    assert got["recall"] == pytest.approx(skm.recall_score(y, p, **kw))
    assert got["f1"] == pytest.approx(skm.f1_score(y, p, **kw))


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)), min_size=1, max_size=80)
)
def test_regression_metrics_equal_sklearn(data: list[tuple[float, float]]) -> None:
    from sklearn import metrics as skm

    y, p = (np.array(v) for v in zip(*data, strict=True))
    got = regression_metrics(y, p)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, p), abs=1e-9)
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)), abs=1e-9)


def test_task_inference() -> None:
    assert infer_task([0, 1, 1], [1.0, 0.0, 1.0]) == "classification"
    assert infer_task(["a", "b"], ["a", "a"]) == "classification"
    assert infer_task([0.5, 1.25], [0.4, 1.0]) == "regression"


def test_monitor_exports_performance_of_labeled_rows(
    write_log: Callable[..., Any], artifacts_url: str, fresh_sqlite_url: str
) -> None:
    from prometheus_client import generate_latest
    from sklearn.metrics import accuracy_score, f1_score

    from shipyard.monitoring.monitor import Monitor
    from shipyard.monitoring.profiles import Profile
    from shipyard.store.db import engine_for

    rng = np.random.default_rng(4)
    n = 400
    preds = rng.integers(0, 2, n)
    ids = [f"req-{i}" for i in range(n)]
    write_log({"x": rng.normal(0, 1, n)}, predictions=preds, request_ids=ids)
    truth = np.where(rng.random(n) < 0.8, preds, 1 - preds)
    store = LabelStore(engine_for(fresh_sqlite_url), "default")
    store.put("churn", dict(zip(ids[:300], truth[:300].tolist(), strict=True)))
    monitor = Monitor(
        "churn",
        artifacts_url=artifacts_url,
        window="1h",
        references={"1": Profile.from_data({"x": rng.normal(0, 1, 2000)})},
        labels=store,
    )
    status = monitor.update().version("1")
    assert status.labeled == 300
    assert status.performance["accuracy"] == pytest.approx(accuracy_score(truth[:300], preds[:300]))
    assert status.performance["f1"] == pytest.approx(f1_score(truth[:300], preds[:300]))
    text = generate_latest(monitor.metrics.registry).decode()
    assert 'model_performance{metric="accuracy",model="churn",version="1"}' in text
    assert 'model_monitor_labeled_rows{model="churn",version="1"} 300.0' in text


def test_nul_characters_are_a_400_not_a_database_error(
    tmp_path: Path, fresh_sqlite_url: str
) -> None:
    from shipyard.config import Settings
    from shipyard.testing import platform_client

    raw = platform_client(Settings(home=tmp_path / "home", db=fresh_sqlite_url)).client
    for body in (
        {"model": "a\x00b", "labels": [{"request_id": "r", "label": 1}]},
        {"model": "m", "labels": [{"request_id": "r\x00", "label": 1}]},
        {"model": "m", "labels": [{"request_id": "r", "label": "x\x00"}]},
    ):
        response = raw.post("/api/v1/monitoring/labels", json=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "invalid_argument"
    assert raw.get("/api/v1/monitoring/labels/a%00b/count").status_code == 400
