"""Shipyard's own alert evaluator: the conditions of :mod:`shipyard.monitoring.alerts`,
checked on the monitor's windows and the model server's metrics, firing triggers.

Each (alert, model, version) moves ``inactive -> pending -> firing`` like a Prometheus
alert: pending when its condition first holds, firing once it has held for the rule's
``for``, and back to inactive (a ``resolved`` notification) when it stops holding. On
firing, every trigger runs: :class:`WebhookTrigger` POSTs a JSON body signed like registry
webhooks (``X-Shipyard-Signature: sha256=<HMAC>``), :class:`PipelineTrigger` starts the
continuous-training pipelines bound to the alert through
``shipyard.pipelines.triggers.fire_alert``.

Signals: ``drift_share``, ``prediction_drift`` and ``latency_p99_seconds`` (the logged
latency) come from a :class:`~shipyard.monitoring.monitor.MonitorSnapshot`;
``error_rate`` and ``queue_length`` from the model server's ``/metrics`` text
(:func:`server_signals`, the error rate from the counters' increase between two scrapes).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from shipyard.monitoring import metrics as names
from shipyard.monitoring.alerts import AlertRule, alert_rules

if TYPE_CHECKING:
    from shipyard.monitoring.monitor import MonitorSnapshot

__all__ = [
    "AlertEvaluator",
    "AlertEvent",
    "CallbackTrigger",
    "PipelineTrigger",
    "Signal",
    "Trigger",
    "WebhookTrigger",
    "server_signals",
    "snapshot_signals",
]

logger = logging.getLogger(__name__)

FIRING, RESOLVED = "firing", "resolved"


@dataclass(frozen=True)
class Signal:
    """One observed value of a signal, for one model (and version)."""

    signal: str
    value: float
    labels: Mapping[str, str]


@dataclass(frozen=True)
class AlertEvent:
    """What triggers receive: an alert that started firing or resolved."""

    alert: str
    state: str
    labels: Mapping[str, str]
    value: float
    threshold: float
    severity: str
    summary: str
    since: datetime
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert": self.alert,
            "state": self.state,
            "labels": dict(self.labels),
            "value": self.value,
            "threshold": self.threshold,
            "severity": self.severity,
            "summary": self.summary,
            "since": self.since.isoformat(),
            "at": self.at.isoformat(),
        }


class Trigger(Protocol):
    """Anything with ``fire(event)``; exceptions are logged, never raised to the loop."""

    def fire(self, event: AlertEvent) -> None: ...


@dataclass
class WebhookTrigger:
    """POST each event as JSON to ``url``, signed with ``secret`` when given.

    Args:
        url: The receiver.
        secret: HMAC-SHA256 key; the signature goes in ``X-Shipyard-Signature``.
        timeout: Seconds per POST.
        resolved: Also send ``resolved`` events.
    """

    url: str
    secret: str = ""
    timeout: float = 10.0
    resolved: bool = True

    def fire(self, event: AlertEvent) -> None:
        import httpx

        from shipyard.registry.events import SIGNATURE_HEADER, sign_body

        if event.state == RESOLVED and not self.resolved:
            return
        body = json.dumps(event.to_dict(), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "shipyard-alerts",
            "X-Shipyard-Event": f"alert_{event.state}",
        }
        if self.secret:
            headers[SIGNATURE_HEADER] = sign_body(self.secret, body)
        response = httpx.post(self.url, content=body, headers=headers, timeout=self.timeout)
        response.raise_for_status()


@dataclass
class PipelineTrigger:
    """Start the pipelines bound to the alert (continuous training) on firing events.

    Args:
        alerts: Only these alerts start pipelines (default: all).
        settings: Where the pipelines' metadata store is (default: environment).
        workspace: Whose alert triggers (default: the settings' workspace).
    """

    alerts: Sequence[str] = ()
    settings: Any = None
    workspace: str | None = None
    started: list[str] = field(default_factory=list)

    def fire(self, event: AlertEvent) -> None:
        if event.state != FIRING or (self.alerts and event.alert not in self.alerts):
            return
        from shipyard.pipelines.triggers import fire_alert

        labels = {k: v for k, v in event.labels.items() if k != "severity"}
        options = {"settings": self.settings, "workspace": self.workspace}
        # The contract is fire_alert(alert_name, labels); the options only when given.
        extra = {k: v for k, v in options.items() if v is not None}
        self.started.extend(fire_alert(event.alert, labels, **extra))


@dataclass
class CallbackTrigger:
    """Call a Python function with each event (notebooks, tests, custom integrations)."""

    callback: Callable[[AlertEvent], None]

    def fire(self, event: AlertEvent) -> None:
        self.callback(event)


@dataclass
class _State:
    since: datetime
    firing: bool = False
    value: float = 0.0


class AlertEvaluator:
    """Evaluates alert rules on observed signals and fires triggers on state changes.

    Example::

        evaluator = AlertEvaluator(alert_rules(drift_share=0.3, drift_for="1m"),
                                   triggers=[WebhookTrigger(url, secret)])
        evaluator.observe(snapshot_signals(monitor.update()))

    Args:
        rules: The conditions (default: :func:`~shipyard.monitoring.alerts.alert_rules`).
        triggers: What runs on a firing (and resolved) event.
    """

    def __init__(
        self, rules: Iterable[AlertRule] | None = None, triggers: Iterable[Trigger] = ()
    ) -> None:
        self.rules = list(rules) if rules is not None else alert_rules()
        self.triggers = list(triggers)
        self._states: dict[tuple[str, tuple[tuple[str, str], ...]], _State] = {}
        self._lock = threading.Lock()

    def firing(self) -> list[tuple[str, dict[str, str]]]:
        """The alerts firing now, with their labels."""
        with self._lock:
            return [(name, dict(labels)) for (name, labels), s in self._states.items() if s.firing]

    def observe(self, signals: Iterable[Signal], now: datetime | None = None) -> list[AlertEvent]:
        """Update the alert states with the latest values; returns (and sends) the events.

        A (rule, labels) pair without a value in ``signals`` keeps its state: a missing
        scrape neither fires nor resolves an alert. Only signals observed in this call are
        evaluated.
        """
        now = now or datetime.now(UTC)
        events: list[AlertEvent] = []
        with self._lock:
            for signal in signals:
                for rule in self.rules:
                    if rule.signal != signal.signal:
                        continue
                    event = self._step(rule, signal, now)
                    if event is not None:
                        events.append(event)
        for event in events:
            for trigger in self.triggers:
                try:
                    trigger.fire(event)
                except Exception:
                    logger.exception("alert trigger %r failed for %s", trigger, event.alert)
        return events

    def _step(self, rule: AlertRule, signal: Signal, now: datetime) -> AlertEvent | None:
        key = (rule.name, tuple(sorted(signal.labels.items())))
        state = self._states.get(key)
        if signal.value > rule.threshold:
            if state is None:
                state = self._states[key] = _State(since=now)
            state.value = signal.value
            if not state.firing and (now - state.since).total_seconds() >= rule.for_seconds:
                state.firing = True
                return self._event(rule, signal, FIRING, state.since, now)
            return None
        if state is not None:
            del self._states[key]
            if state.firing:
                return self._event(rule, signal, RESOLVED, state.since, now)
        return None

    @staticmethod
    def _event(
        rule: AlertRule, signal: Signal, state: str, since: datetime, now: datetime
    ) -> AlertEvent:
        return AlertEvent(
            alert=rule.name,
            state=state,
            labels={**signal.labels, "severity": rule.severity},
            value=signal.value,
            threshold=rule.threshold,
            severity=rule.severity,
            summary=rule.summary,
            since=since,
            at=now,
        )


def snapshot_signals(snapshot: MonitorSnapshot) -> list[Signal]:
    """The drift and latency signals of one monitor update, per version."""
    out = []
    for status in snapshot.versions:
        labels = {"model": snapshot.model, "version": status.version}
        if status.drift is not None:
            out.append(Signal("drift_share", status.drift.share_drifted, labels))
        if status.prediction is not None and status.prediction.p_value is None:
            out.append(Signal("prediction_drift", status.prediction.score, labels))
        if status.latency_p99_ms is not None:
            out.append(Signal("latency_p99_seconds", status.latency_p99_ms / 1000, labels))
    return out


@dataclass
class _Counts:
    total: float = 0.0
    errors: float = 0.0


def _server_counts(text: str, model: str) -> tuple[_Counts, float | None]:
    from prometheus_client.parser import text_string_to_metric_families

    counts = _Counts()
    queue: float | None = None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("model", model) != model:
                continue
            if sample.name == names.SERVER_REQUESTS:
                counts.total += sample.value
                if str(sample.labels.get("status", "")).startswith("5"):
                    counts.errors += sample.value
            elif sample.name == names.SERVER_QUEUE:
                queue = sample.value if queue is None else max(queue, sample.value)
    return counts, queue


class ServerScraper:
    """Reads a model server's ``/metrics`` and turns it into ``error_rate`` and
    ``queue_length`` signals (the rate from the increase since the previous scrape)."""

    def __init__(self, metrics_url: str, model: str, *, timeout: float = 5.0) -> None:
        self.metrics_url = metrics_url
        self.model = model
        self.timeout = timeout
        self._previous: _Counts | None = None

    def signals(self) -> list[Signal]:
        import httpx

        text = httpx.get(self.metrics_url, timeout=self.timeout).text
        return self.signals_from_text(text)

    def signals_from_text(self, text: str) -> list[Signal]:
        counts, queue = _server_counts(text, self.model)
        out = []
        labels = {"model": self.model}
        if queue is not None:
            out.append(Signal("queue_length", queue, labels))
        previous, self._previous = self._previous, counts
        if previous is not None:
            total = counts.total - previous.total
            errors = counts.errors - previous.errors
            if total > 0 and errors >= 0:  # a restart resets counters: skip that step
                out.append(Signal("error_rate", errors / total, labels))
        return out


def server_signals(text: str, model: str, previous: str | None = None) -> list[Signal]:
    """Signals from a model server's metrics text (and an earlier scrape, for the rate)."""
    scraper = ServerScraper("", model)
    if previous is not None:
        scraper.signals_from_text(previous)
    return scraper.signals_from_text(text)
