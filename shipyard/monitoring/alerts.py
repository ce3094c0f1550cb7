"""Alert rules for a served model, as Prometheus rules and as Shipyard's own evaluator sees them.

One :class:`AlertThresholds` drives both: :func:`prometheus_rule` renders a PrometheusRule
manifest (Prometheus Operator) and :func:`rule_groups` the plain rules file that
``promtool check rules`` reads; :func:`alert_rules` gives the same conditions to
:class:`~shipyard.monitoring.evaluator.AlertEvaluator`, so an alert fires in Shipyard
under the same condition, and after the same hold time, as in Prometheus.

======================  ============================================================  =====
alert                   condition                                                     for
======================  ============================================================  =====
ModelDataDrift          share of drifted features (``model_dataset_drift_share``)    5m
                        above ``drift_share``
ModelPredictionDrift    prediction drift score above ``prediction_drift``             5m
ModelHighErrorRate      5xx share of the model server's requests above ``error_rate`` 5m
ModelLatencyP99High     p99 of ``model_prediction_latency_seconds`` above the SLO     10m
ModelQueueBacklog       ``inference_queue_length`` above ``queue_length``             5m
======================  ============================================================  =====
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from shipyard.errors import InvalidArgumentError
from shipyard.monitoring import metrics as names

__all__ = [
    "AlertRule",
    "AlertThresholds",
    "alert_rules",
    "parse_duration",
    "prometheus_rule",
    "rule_groups",
    "rules_yaml",
]

_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration (``30s``, ``5m``, ``1h``).

    Raises:
        InvalidArgumentError: Anything else.
    """
    match = _DURATION.match(text.strip())
    if not match:
        raise InvalidArgumentError(
            f"{text!r} is not a duration.", hint="Use Prometheus durations: 30s, 5m, 1h."
        )
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@dataclass(frozen=True)
class AlertThresholds:
    """The thresholds and hold times of a model's alerts (see the module table).

    Attributes:
        drift_share: Share of drifted features that alerts.
        drift_for: How long it must hold.
        prediction_drift: Prediction drift score that alerts.
        error_rate: Share of 5xx responses that alerts.
        error_for: How long it must hold.
        latency_p99_seconds: The p99 latency SLO in seconds.
        latency_for: How long it must be broken.
        queue_length: Queue length that alerts.
        queue_for: How long it must hold.
        rate_window: Range of the ``rate()`` in the error and latency rules.
        requests_selector: Label matchers scoping the server's request counter, which
            has no ``model`` label (e.g. ``job="churn"``); empty: every scraped server.
    """

    drift_share: float = 0.5
    drift_for: str = "5m"
    prediction_drift: float = 0.1
    error_rate: float = 0.05
    error_for: str = "5m"
    latency_p99_seconds: float = 0.5
    latency_for: str = "10m"
    queue_length: float = 100
    queue_for: str = "5m"
    rate_window: str = "5m"
    requests_selector: str = ""

    def __post_init__(self) -> None:
        for key in ("drift_for", "error_for", "latency_for", "queue_for", "rate_window"):
            parse_duration(getattr(self, key))
        if not 0 <= self.drift_share <= 1 or not 0 <= self.error_rate <= 1:
            raise InvalidArgumentError("drift_share and error_rate are shares in [0, 1].")

    @classmethod
    def of(cls, **thresholds: Any) -> AlertThresholds:
        """Build from keyword arguments, naming an unknown key.

        Raises:
            InvalidArgumentError: An unknown threshold.
        """
        known = set(cls.__dataclass_fields__)
        unknown = set(thresholds) - known
        if unknown:
            raise InvalidArgumentError(
                f"Unknown alert thresholds: {', '.join(sorted(unknown))}.",
                hint=f"Known: {', '.join(sorted(known))}.",
            )
        return cls(**thresholds)


@dataclass(frozen=True)
class AlertRule:
    """One alert condition: ``signal > threshold`` held for ``for_seconds``.

    Attributes:
        name: The alert name (as in Prometheus).
        signal: What is compared: ``drift_share``, ``prediction_drift``, ``error_rate``,
            ``latency_p99_seconds`` or ``queue_length``.
        threshold: Alert when the signal is above this.
        for_seconds: How long it must hold before the alert fires.
        severity: ``warning`` or ``critical``.
        summary: One line for humans.
    """

    name: str
    signal: str
    threshold: float
    for_seconds: float
    severity: str
    summary: str


def _quote(model: str) -> str:
    return model.replace("\\", "\\\\").replace('"', '\\"')


def alert_rules(**thresholds: Any) -> list[AlertRule]:
    """The alert conditions Shipyard's evaluator checks (same as the Prometheus rules)."""
    t = AlertThresholds.of(**thresholds)
    return [
        AlertRule(
            "ModelDataDrift",
            "drift_share",
            t.drift_share,
            parse_duration(t.drift_for),
            "warning",
            "Share of drifted features above threshold",
        ),
        AlertRule(
            "ModelPredictionDrift",
            "prediction_drift",
            t.prediction_drift,
            parse_duration(t.drift_for),
            "warning",
            "Model output distribution drifted",
        ),
        AlertRule(
            "ModelHighErrorRate",
            "error_rate",
            t.error_rate,
            parse_duration(t.error_for),
            "critical",
            "Share of failed requests above threshold",
        ),
        AlertRule(
            "ModelLatencyP99High",
            "latency_p99_seconds",
            t.latency_p99_seconds,
            parse_duration(t.latency_for),
            "warning",
            "p99 prediction latency above the SLO",
        ),
        AlertRule(
            "ModelQueueBacklog",
            "queue_length",
            t.queue_length,
            parse_duration(t.queue_for),
            "warning",
            "Inference queue longer than threshold",
        ),
    ]


def _exprs(model: str, t: AlertThresholds) -> dict[str, tuple[str, str]]:
    m = _quote(model)
    w = t.rate_window
    scope = t.requests_selector.strip().strip(",")
    errors = ",".join(x for x in ('status=~"5.."', scope) if x)
    return {
        "ModelDataDrift": (
            f'max by (model, version) ({names.DATASET_DRIFT_SHARE}{{model="{m}"}}) '
            f"> {t.drift_share:g}",
            t.drift_for,
        ),
        "ModelPredictionDrift": (
            f'max by (model, version) ({names.PREDICTION_DRIFT}{{model="{m}"}}) '
            f"> {t.prediction_drift:g}",
            t.drift_for,
        ),
        "ModelHighErrorRate": (
            f"sum(rate({names.SERVER_REQUESTS}{{{errors}}}[{w}])) / "
            f"sum(rate({names.SERVER_REQUESTS}{'{' + scope + '}' if scope else ''}[{w}])) "
            f"> {t.error_rate:g}",
            t.error_for,
        ),
        "ModelLatencyP99High": (
            f"histogram_quantile(0.99, sum by (model, le) "
            f'(rate({names.SERVER_LATENCY}_bucket{{model="{m}"}}[{w}]))) '
            f"> {t.latency_p99_seconds:g}",
            t.latency_for,
        ),
        "ModelQueueBacklog": (
            f'max by (model) ({names.SERVER_QUEUE}{{model="{m}"}}) > {t.queue_length:g}',
            t.queue_for,
        ),
    }


def rule_groups(model: str, **thresholds: Any) -> dict[str, Any]:
    """The Prometheus rules file content (``groups:``) for ``model``'s alerts.

    Args:
        model: The served model's name (the ``model`` label of its metrics).
        **thresholds: Fields of :class:`AlertThresholds`.

    Returns:
        A dict to dump as YAML; ``promtool check rules`` accepts it.
    """
    if not model:
        raise InvalidArgumentError("The model name is empty.")
    t = AlertThresholds.of(**thresholds)
    exprs = _exprs(model, t)
    rules = []
    for rule in alert_rules(**thresholds):
        expr, hold = exprs[rule.name]
        rules.append(
            {
                "alert": rule.name,
                "expr": expr,
                "for": hold,
                "labels": {"severity": rule.severity, "model": model},
                "annotations": {
                    "summary": f"{model}: {rule.summary}",
                    "description": f"{rule.signal} is {{{{ $value }}}}, threshold "
                    f"{rule.threshold:g}, for more than {hold}.",
                },
            }
        )
    return {"groups": [{"name": f"shipyard-model-{model}", "rules": rules}]}


def prometheus_rule(model: str, namespace: str = "default", **thresholds: Any) -> dict[str, Any]:
    """A PrometheusRule manifest (monitoring.coreos.com/v1) with ``model``'s alerts.

    Example::

        yaml.safe_dump(prometheus_rule("churn", "ml", drift_share=0.3, latency_p99_seconds=0.2))

    Args:
        model: The served model's name.
        namespace: The Kubernetes namespace.
        **thresholds: Fields of :class:`AlertThresholds`.
    """
    name = re.sub(r"[^a-z0-9-]+", "-", f"shipyard-{model}-alerts".lower()).strip("-")[:253]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/part-of": "shipyard",
                "shipyard.dev/model": re.sub(r"[^A-Za-z0-9._-]+", "-", model)[:63].strip("-._"),
            },
            "annotations": {
                "shipyard.dev/thresholds": ",".join(
                    f"{k}={v}" for k, v in asdict(AlertThresholds.of(**thresholds)).items()
                )
            },
        },
        "spec": rule_groups(model, **thresholds),
    }


def rules_yaml(
    model: str, *, kubernetes: bool = False, namespace: str = "default", **thresholds: Any
) -> str:
    """The rules as YAML text: a plain rules file, or the PrometheusRule manifest."""
    import yaml

    doc = (
        prometheus_rule(model, namespace, **thresholds)
        if kubernetes
        else rule_groups(model, **thresholds)
    )
    return yaml.safe_dump(doc, sort_keys=False, width=1000)
