"""Generated Grafana dashboard and ServiceMonitor."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from shipyard.monitoring.dashboards import grafana_dashboard, service_monitor


def _exprs(dashboard: dict) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_dashboard_covers_traffic_latency_errors_queue_drift_and_performance() -> None:
    board = grafana_dashboard("churn", ["age", "plan"])
    titles = [p["title"] for p in board["panels"]]
    for title in (
        "Predictions per second",
        "Errors",
        "Prediction latency",
        "Inference queue length",
        "Drift score per feature",
        "Model performance",
    ):
        assert title in titles
    exprs = _exprs(board)
    assert any('rate(model_predictions_total{model="churn"}[1m])' in e for e in exprs)
    assert any(e.startswith("histogram_quantile(0.99") for e in exprs)
    assert 'model_feature_drift{model="churn",feature_name="age"}' in exprs
    assert 'model_feature_drift{model="churn",feature_name="plan"}' in exprs
    assert any("inference_queue_length" in e for e in exprs)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:  # nothing overflows Grafana's 24-column grid
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
    json.dumps(board)


def test_service_monitor_is_the_seeds_shape() -> None:
    sm = service_monitor("Churn", "ml")
    assert sm["kind"] == "ServiceMonitor" and sm["metadata"]["labels"]["release"] == "prometheus"
    assert sm["spec"]["selector"] == {"matchLabels": {"app": "churn"}}
    first, second = sm["spec"]["endpoints"]
    assert (first["path"], first["interval"]) == ("/metrics", "15s")
    assert second["path"] == "/model-metrics"
    assert second["metricRelabelings"] == [
        {"sourceLabels": ["__name__"], "regex": "model_.*", "action": "keep"}
    ]


def test_dashboard_cli(tmp_path: Path) -> None:
    from shipyard.cli.main import app

    runner = CliRunner()
    done = runner.invoke(
        app,
        [
            "monitor",
            "dashboard",
            "-m",
            "churn",
            "--features",
            "age,plan",
            "--out",
            str(tmp_path / "d.json"),
        ],
    )
    assert done.exit_code == 0, done.output
    assert json.loads((tmp_path / "d.json").read_text())["title"] == "Shipyard model: churn"
    done = runner.invoke(app, ["monitor", "dashboard", "-m", "churn", "--service-monitor"])
    assert done.exit_code == 0, done.output
    assert yaml.safe_load(done.output)["kind"] == "ServiceMonitor"
