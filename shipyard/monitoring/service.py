"""Running monitors: the loop behind ``shipyard monitor run`` and the platform server's
background service.

:class:`MonitorService` updates each :class:`~shipyard.monitoring.monitor.Monitor` every
``interval`` seconds on one thread, feeds the alert evaluator, and (optionally) serves the
gauges on ``/metrics`` of its own port. Inside the platform server it runs only when
``SHIPYARD_MONITOR_MODELS`` names the models to watch (comma-separated); then
``SHIPYARD_MONITOR_INTERVAL`` (seconds, default 30), ``SHIPYARD_MONITOR_WINDOW`` (default
10m), ``SHIPYARD_MONITOR_METRICS_PORT`` (default: no port of its own; the gauges are at
``GET /api/v1/monitoring/metrics``) and ``SHIPYARD_MONITOR_WEBHOOK`` (+ ``_SECRET``) apply.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from shipyard.monitoring.evaluator import (
    AlertEvaluator,
    ServerScraper,
    WebhookTrigger,
    snapshot_signals,
)
from shipyard.monitoring.metrics import MonitorMetrics
from shipyard.monitoring.monitor import Monitor, MonitorSnapshot

__all__ = ["MonitorService", "monitor_service"]

logger = logging.getLogger(__name__)


class MonitorService:
    """Monitors (sharing one metrics registry), an evaluator and an optional /metrics port.

    Args:
        monitors: The monitors to update.
        evaluator: Alert evaluator fed after every update (optional).
        scrapers: Model server scrapers for error rate and queue signals (optional).
        interval: Seconds between updates.
        metrics_port: Serve the gauges on this port (0: a free one; None: no server).
        metrics_host: Address to bind the metrics server to.
    """

    def __init__(
        self,
        monitors: Sequence[Monitor],
        *,
        evaluator: AlertEvaluator | None = None,
        scrapers: Iterable[ServerScraper] = (),
        interval: float = 30.0,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
        on_update: Callable[[MonitorSnapshot], None] | None = None,
    ) -> None:
        self.monitors = list(monitors)
        self.evaluator = evaluator
        self.scrapers = list(scrapers)
        self.interval = interval
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self.on_update = on_update
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._server: Any = None

    @property
    def registry(self) -> Any:
        """The Prometheus registry the monitors' gauges live on."""
        return self.monitors[0].metrics.registry if self.monitors else None

    def tick(self) -> list[MonitorSnapshot]:
        """One round: update every monitor, scrape servers, evaluate alerts."""
        snapshots = []
        signals = []
        for monitor in self.monitors:
            try:
                snapshot = monitor.update()
            except Exception:
                logger.exception("monitor update of %s failed", monitor.model)
                continue
            snapshots.append(snapshot)
            signals += snapshot_signals(snapshot)
            if self.on_update is not None:
                self.on_update(snapshot)
        for scraper in self.scrapers:
            try:
                signals += scraper.signals()
            except Exception as exc:
                logger.warning("scraping %s failed: %s", scraper.metrics_url, exc)
        if self.evaluator is not None:
            self.evaluator.observe(signals)
        return snapshots

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self.interval)

    def start(self) -> MonitorService:
        """Serve the metrics (when a port is set) and start the update thread."""
        if self.metrics_port is not None and self.registry is not None:
            from prometheus_client import start_http_server

            self._server, _ = start_http_server(
                self.metrics_port, addr=self.metrics_host, registry=self.registry
            )
            self.metrics_port = int(self._server.server_port)
        self._thread = threading.Thread(target=self._loop, name="shipyard-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and the metrics server."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def wait(self) -> None:
        """Block until :meth:`stop` (or Ctrl-C in the CLI)."""
        while not self._stop.wait(0.5):
            pass


def monitor_service(app: Any) -> Callable[[], None] | None:
    """Background service factory of the platform server (``SERVICE_FACTORIES``).

    Returns None unless ``SHIPYARD_MONITOR_MODELS`` is set.
    """
    models = [m.strip() for m in os.environ.get("SHIPYARD_MONITOR_MODELS", "").split(",")]
    models = [m for m in models if m]
    if not models:
        return None
    from shipyard.client import Client
    from shipyard.monitoring.labels import LabelStore

    state = app.state.platform
    settings = state.settings
    workspace = os.environ.get("SHIPYARD_MONITOR_WORKSPACE", settings.workspace)
    client = Client(settings, workspace=workspace)
    metrics = MonitorMetrics()
    labels = LabelStore(state.engine, workspace)
    window = os.environ.get("SHIPYARD_MONITOR_WINDOW", "10m")
    monitors = [
        Monitor(
            model,
            artifacts_url=settings.artifacts,
            workspace=workspace,
            window=window,
            labels=labels,
            metrics=metrics,
            client=client,
        )
        for model in models
    ]
    triggers = []
    webhook = os.environ.get("SHIPYARD_MONITOR_WEBHOOK")
    if webhook:
        triggers.append(
            WebhookTrigger(webhook, os.environ.get("SHIPYARD_MONITOR_WEBHOOK_SECRET", ""))
        )
    port = os.environ.get("SHIPYARD_MONITOR_METRICS_PORT")
    service = MonitorService(
        monitors,
        evaluator=AlertEvaluator(triggers=triggers),
        interval=float(os.environ.get("SHIPYARD_MONITOR_INTERVAL", "30")),
        metrics_port=int(port) if port else None,
    )
    app.state.shipyard_monitor = service
    service.start()
    logger.info("monitoring %s every %ss", ", ".join(models), service.interval)
    return service.stop
