"""Alert rules that promtool accepts and whose unit tests pass, and Shipyard's evaluator
raising the same alerts and firing a signed webhook."""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from shipyard.errors import InvalidArgumentError
from shipyard.monitoring.alerts import alert_rules, prometheus_rule, rule_groups, rules_yaml
from shipyard.monitoring.evaluator import (
    AlertEvaluator,
    CallbackTrigger,
    PipelineTrigger,
    Signal,
    WebhookTrigger,
    server_signals,
)
from shipyard.registry.events import SIGNATURE_HEADER, verify_signature


def _promtool(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, cwd=cwd, timeout=60, check=False
    )


def test_generated_rules_pass_promtool_check(promtool: str, tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(rules_yaml("churn", drift_share=0.3, drift_for="2m"))
    done = _promtool(promtool, "check", "rules", "rules.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 5 rules found" in done.stdout


# Series for promtool's unit tests: drift share rising above 0.5 at minute 3, a server whose
# requests turn 10% errors, a slow latency histogram and a long queue.
_TEST = """
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'model_dataset_drift_share{model="churn",version="3"}'
        values: '0.1 0.1 0.2 0.8 0.8 0.8 0.8 0.8 0.8 0.8 0.8'
      - series: 'model_dataset_drift_share{model="other",version="1"}'
        values: '0.9x10'
      - series: 'model_server_requests_total{route="/predict",method="POST",status="200"}'
        values: '0+90x20'
      - series: 'model_server_requests_total{route="/predict",method="POST",status="500"}'
        values: '0+10x20'
      - series: 'model_prediction_latency_seconds_bucket{model="churn",model_version="3",le="0.1"}'
        values: '0+10x20'
      - series: 'model_prediction_latency_seconds_bucket{model="churn",model_version="3",le="1"}'
        values: '0+100x20'
      - series: 'model_prediction_latency_seconds_bucket{model="churn",model_version="3",le="+Inf"}'
        values: '0+100x20'
      - series: 'inference_queue_length{model="churn"}'
        values: '5 5 500 500 500 500 500 500 500 500 500'
    alert_rule_test:
      - eval_time: 5m
        alertname: ModelDataDrift
        exp_alerts: []
      - eval_time: 9m
        alertname: ModelDataDrift
        exp_alerts:
          - exp_labels: {severity: warning, model: churn, version: "3"}
            exp_annotations:
              summary: "churn: Share of drifted features above threshold"
              description: "drift_share is 0.8, threshold 0.5, for more than 5m."
      - eval_time: 10m
        alertname: ModelHighErrorRate
        exp_alerts:
          - exp_labels: {severity: critical, model: churn}
            exp_annotations:
              summary: "churn: Share of failed requests above threshold"
              description: "error_rate is 0.1, threshold 0.05, for more than 5m."
      - eval_time: 16m
        alertname: ModelLatencyP99High
        exp_alerts:
          - exp_labels: {severity: warning, model: churn}
            exp_annotations:
              summary: "churn: p99 prediction latency above the SLO"
              description: "latency_p99_seconds is 0.99, threshold 0.5, for more than 10m."
      - eval_time: 4m
        alertname: ModelQueueBacklog
        exp_alerts: []
      - eval_time: 8m
        alertname: ModelQueueBacklog
        exp_alerts:
          - exp_labels: {severity: warning, model: churn}
            exp_annotations:
              summary: "churn: Inference queue longer than threshold"
              description: "queue_length is 500, threshold 100, for more than 5m."
"""


def test_generated_rules_pass_promtool_unit_tests(promtool: str, tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(rules_yaml("churn"))
    (tmp_path / "test.yml").write_text(_TEST)
    done = _promtool(promtool, "test", "rules", "test.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_prometheus_rule_manifest_wraps_the_same_groups() -> None:
    manifest = prometheus_rule("Churn Model", "ml", latency_p99_seconds=0.2)
    assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
    assert manifest["kind"] == "PrometheusRule"
    assert manifest["metadata"]["name"] == "shipyard-churn-model-alerts"
    assert manifest["metadata"]["namespace"] == "ml"
    assert manifest["metadata"]["labels"]["shipyard.dev/model"] == "Churn-Model"
    assert manifest["spec"] == rule_groups("Churn Model", latency_p99_seconds=0.2)
    exprs = {r["alert"]: r["expr"] for r in manifest["spec"]["groups"][0]["rules"]}
    assert exprs["ModelLatencyP99High"].endswith("> 0.2")
    yaml.safe_load(rules_yaml("m", kubernetes=True))


def test_unknown_or_bad_thresholds_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="Unknown alert thresholds: drift"):
        rule_groups("m", drift=0.3)
    with pytest.raises(InvalidArgumentError, match="not a duration"):
        rule_groups("m", drift_for="five minutes")


def test_rules_cli_writes_yaml(tmp_path: Path) -> None:
    from shipyard.cli.main import app

    done = CliRunner().invoke(
        app,
        [
            "monitor",
            "rules",
            "-m",
            "churn",
            "--set",
            "drift_share=0.25",
            "--kubernetes",
            "--out",
            str(tmp_path / "r.yaml"),
        ],
    )
    assert done.exit_code == 0, done.output
    manifest = yaml.safe_load((tmp_path / "r.yaml").read_text())
    drift = manifest["spec"]["groups"][0]["rules"][0]
    assert drift["expr"].endswith("> 0.25")


# --- the evaluator ---------------------------------------------------------------------------

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_evaluator_goes_pending_then_firing_then_resolved() -> None:
    events: list[Any] = []
    evaluator = AlertEvaluator(
        alert_rules(drift_share=0.5, drift_for="5m"), triggers=[CallbackTrigger(events.append)]
    )
    labels = {"model": "churn", "version": "3"}

    def drift(value: float, minute: float) -> list[Any]:
        return evaluator.observe([Signal("drift_share", value, labels)], now=_at(minute))

    assert drift(0.2, 0) == []
    assert drift(0.8, 1) == []  # pending
    assert drift(0.8, 5.9) == []
    fired = drift(0.8, 6)
    assert [(e.alert, e.state) for e in fired] == [("ModelDataDrift", "firing")]
    assert fired[0].since == _at(1) and fired[0].labels["severity"] == "warning"
    assert drift(0.9, 7) == []  # still firing: no repeat
    assert evaluator.firing() == [("ModelDataDrift", labels)]
    resolved = drift(0.1, 8)
    assert [(e.alert, e.state) for e in resolved] == [("ModelDataDrift", "resolved")]
    assert [e.state for e in events] == ["firing", "resolved"]
    # A dip resets the hold time.
    drift(0.8, 10)
    drift(0.1, 12)
    assert drift(0.8, 13) == [] and drift(0.8, 17) == []


def test_server_signals_give_error_rate_and_queue() -> None:
    before = (
        'model_server_requests_total{route="/predict",method="POST",status="200"} 100\n'
        'model_server_requests_total{route="/predict",method="POST",status="503"} 0\n'
        'inference_queue_length{model="churn"} 3\n'
    )
    after = before.replace('200"} 100', '200"} 190').replace('503"} 0', '503"} 10')
    signals = {s.signal: s.value for s in server_signals(after, "churn", previous=before)}
    assert signals == {"queue_length": 3.0, "error_rate": pytest.approx(0.1)}


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    _Receiver.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", _Receiver.received
    server.shutdown()
    server.server_close()


def test_evaluator_fires_a_signed_webhook(
    receiver: tuple[str, list[tuple[dict[str, str], bytes]]],
) -> None:
    url, received = receiver
    evaluator = AlertEvaluator(
        alert_rules(queue_length=10, queue_for="0s"),
        triggers=[WebhookTrigger(url, secret="s3cret", resolved=False)],
    )
    evaluator.observe([Signal("queue_length", 50, {"model": "churn"})], now=_at(0))
    evaluator.observe([Signal("queue_length", 1, {"model": "churn"})], now=_at(1))
    assert len(received) == 1
    headers, body = received[0]
    assert verify_signature("s3cret", body, headers[SIGNATURE_HEADER])
    assert headers["X-Shipyard-Event"] == "alert_firing"
    payload = json.loads(body)
    assert payload["alert"] == "ModelQueueBacklog" and payload["value"] == 50
    assert payload["labels"] == {"model": "churn", "severity": "warning"}


def test_a_failing_trigger_does_not_stop_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    import shipyard.pipelines.triggers as triggers

    calls: list[tuple[str, dict[str, str]]] = []

    def fake_fire_alert(alert: str, labels: dict[str, str], **kwargs: Any) -> list[str]:
        calls.append((alert, labels))
        return ["run-1"]

    monkeypatch.setattr(triggers, "fire_alert", fake_fire_alert)
    pipeline = PipelineTrigger(alerts=["ModelDataDrift"])
    evaluator = AlertEvaluator(
        alert_rules(drift_for="0s"),
        triggers=[WebhookTrigger("http://127.0.0.1:9/unreachable", timeout=0.5), pipeline],
    )
    evaluator.observe([Signal("drift_share", 1.0, {"model": "churn", "version": "2"})], _at(0))
    assert calls == [("ModelDataDrift", {"model": "churn", "version": "2"})]
    assert pipeline.started == ["run-1"]


def test_monitor_service_serves_gauges_and_alerts_on_real_drift(
    receiver: tuple[str, list[tuple[dict[str, str], bytes]]],
    write_log: Any,
    artifacts_url: str,
) -> None:
    import httpx
    import numpy as np

    from shipyard.monitoring.monitor import Monitor
    from shipyard.monitoring.profiles import Profile
    from shipyard.monitoring.service import MonitorService

    url, received = receiver
    rng = np.random.default_rng(5)
    reference = {"a": rng.normal(0, 1, 3000), "b": rng.normal(0, 1, 3000)}
    write_log({"a": rng.normal(3, 1, 500), "b": rng.normal(3, 1, 500)}, version="4")
    monitor = Monitor(
        "churn",
        artifacts_url=artifacts_url,
        window="1h",
        references={"4": Profile.from_data(reference)},
    )
    service = MonitorService(
        [monitor],
        evaluator=AlertEvaluator(
            alert_rules(drift_for="0s"), triggers=[WebhookTrigger(url, "k", resolved=False)]
        ),
        interval=60,
        metrics_port=0,
    ).start()
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not received:
            time.sleep(0.05)
        text = httpx.get(f"http://127.0.0.1:{service.metrics_port}/metrics", timeout=5).text
    finally:
        service.stop()
    assert 'model_dataset_drift_share{model="churn",version="4"} 1.0' in text
    alerts = [json.loads(body)["alert"] for _, body in received]
    assert alerts == ["ModelDataDrift"]
    assert json.loads(received[0][1])["labels"] == {
        "model": "churn",
        "version": "4",
        "severity": "warning",
    }
