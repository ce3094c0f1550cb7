"""ModelServer: what a model server app runs on, apart from HTTP.

It holds the deployments (champion, canary, shadow per served name), a micro-batcher
per loaded version, the metrics, the prediction log and the alias watcher, and it
drains all of them on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.errors import ConfigError, ModelNotFoundError, ShipyardError
from shipyard.serving.batching import INLINE_ROWS, BatchItem, MicroBatcher, OverloadedError
from shipyard.serving.metrics import ServingMetrics
from shipyard.serving.repository import parse_model_uri
from shipyard.serving.rollout import CANARY, CHAMPION, SHADOW, Deployment, Rollout, Target
from shipyard.serving.served import ServedModel

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.security import SecurityService
    from shipyard.serving.kafka_sink import KafkaPredictionSink
    from shipyard.serving.prediction_log import PredictionLogWriter
    from shipyard.serving.repository import ModelRepository

__all__ = ["ModelServer", "ServeOptions"]

logger = logging.getLogger("shipyard.serving")


@dataclass(frozen=True)
class ServeOptions:
    """Knobs of a model server (``shipyard serve --help`` lists them).

    Attributes:
        max_batch_size: most rows per model call.
        max_latency_ms: longest a forming batch keeps collecting arriving requests.
        max_queue: requests waiting per model before answering 503.
        log_sample: share of requests written to the prediction log (0 turns it off).
        log_roll_rows / log_roll_seconds: when a prediction log file is published.
        poll_seconds: how often aliases are re-resolved in the registry (0: never).
        audit_predictions: audit record per prediction for every model (otherwise only
            for versions tagged ``shipyard.audit_predictions=true``).
        drain_seconds: how long shutdown waits for queued requests.
        log_kafka_topic / log_kafka_bootstrap: also send logged predictions to this Kafka
            topic (JSON, keyed by request id).
    """

    max_batch_size: int = 64
    max_latency_ms: float = 2.0
    max_queue: int = 256
    log_sample: float = 1.0
    log_roll_rows: int = 100_000
    log_roll_seconds: float = 300.0
    poll_seconds: float = 10.0
    audit_predictions: bool = False
    drain_seconds: float = 30.0
    log_kafka_topic: str | None = None
    log_kafka_bootstrap: str | None = None


class ModelServer:
    """Deployments, batchers, metrics, prediction log and alias watching of one app.

    Args:
        repository: the loaded models.
        settings: artifact root (prediction log), home (spool), workspace.
        options: batching, logging and polling knobs.
        rollouts: per served name, champion/canary/shadow URIs; every other name in the
            repository is served by its default version alone.
        security: the SecurityService that authenticates callers and records audit
            (None: auth off and no audit).
    """

    def __init__(
        self,
        repository: ModelRepository,
        settings: Settings,
        options: ServeOptions | None = None,
        *,
        rollouts: list[Rollout] | None = None,
        security: SecurityService | None = None,
    ) -> None:
        self.repository = repository
        self.settings = settings
        self.options = options or ServeOptions()
        self.security = security
        self.workspace = repository.client.workspace
        self.metrics = ServingMetrics()
        self.deployments: dict[str, Deployment] = {}
        self.log: PredictionLogWriter | None = None
        # Prediction log and audit records are written here, off the event loop (its
        # thread starts with the first logged batch).
        self._log_executor = ThreadPoolExecutor(1, thread_name_prefix="shipyard-predlog")
        if self.options.log_sample > 0:
            from shipyard.serving.prediction_log import PredictionLogWriter

            self.log = PredictionLogWriter(
                settings.artifacts,
                self.workspace,
                spool_dir=self.spool_dir,
                roll_rows=self.options.log_roll_rows,
                roll_seconds=self.options.log_roll_seconds,
            )
        self.kafka: KafkaPredictionSink | None = None
        if self.options.log_kafka_topic and self.options.log_sample > 0:
            from shipyard.serving.kafka_sink import KafkaPredictionSink

            if not self.options.log_kafka_bootstrap:
                raise ConfigError(
                    "A Kafka topic for the prediction log needs the brokers too.",
                    hint="Pass --log-kafka-bootstrap host:port.",
                )
            self.kafka = KafkaPredictionSink(
                self.options.log_kafka_bootstrap, self.options.log_kafka_topic
            )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._queue_gauges: dict[str, Any] = {}
        self.shadow_errors = 0
        self._retired: list[MicroBatcher] = []
        self._watcher: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._build(rollouts or [])
        self.started = False

    @property
    def spool_dir(self) -> Path:
        return self.settings.home / "prediction-spool"

    # -- deployments ---------------------------------------------------------------------

    def _target(self, served: ServedModel, variant: str, uri: str, percent: float = 0.0) -> Target:
        return Target(uri or served.uri, variant, served, self._batcher(served), percent)

    def _batcher(self, served: ServedModel) -> MicroBatcher:
        batcher = MicroBatcher(
            served.run,
            max_batch_size=self.options.max_batch_size,
            max_latency_ms=self.options.max_latency_ms,
            max_queue=self.options.max_queue,
            name=f"{served.name}-v{served.version}",
        )
        batcher.on_batch = self._after_batch(served, batcher)
        self.metrics.load_seconds.labels(served.name, served.version).set(served.load_seconds)
        return batcher

    def _build(self, rollouts: list[Rollout]) -> None:
        by_name: dict[str, Rollout] = {}
        for rollout in rollouts:
            name = parse_model_uri(rollout.champion)[0]
            by_name[name] = rollout
        for name in self.repository.names():
            champion = self.repository.get(name)
            rollout = by_name.get(name)
            uri = rollout.champion if rollout is not None else champion.uri
            deployment = Deployment(name, self._target(champion, CHAMPION, uri))
            if rollout is not None:
                if rollout.canary:
                    served = self._find(name, rollout.canary)
                    deployment.canary = self._target(
                        served, CANARY, rollout.canary, rollout.canary_percent
                    )
                    deployment.set_canary_percent(rollout.canary_percent)
                if rollout.shadow:
                    served = self._find(name, rollout.shadow)
                    deployment.shadow = self._target(served, SHADOW, rollout.shadow)
            self.deployments[name] = deployment
            for target in deployment.targets():
                self._mark(target, 1)

    def _find(self, name: str, uri: str) -> ServedModel:
        for served in self.repository.index():
            if served.name == name and served.uri == uri:
                return served
        version = str(self.repository.resolve(uri).version)
        if self.repository.ready(name, version):
            return self.repository.get(name, version)  # loaded for another URI
        raise ModelNotFoundError(
            f"{uri} is not loaded; load it into the repository before serving it.",
            hint="ModelRepository.load(uri, default=False) loads a canary or shadow version.",
        )

    def _mark(self, target: Target, value: int) -> None:
        self.metrics.loaded.labels(target.served.name, target.version, target.variant).set(value)

    def deployment(self, name: str | None) -> Deployment:
        """The deployment ``name`` (the only one when None and a single name is served)."""
        if name is None:
            if len(self.deployments) == 1:
                return next(iter(self.deployments.values()))
            raise ModelNotFoundError(
                f"This server serves {len(self.deployments)} models; say which one.",
                hint=f'Add "model": one of {", ".join(sorted(self.deployments))}.',
            )
        found = self.deployments.get(name)
        if found is None:
            # Not served at start: loaded into the repository since (gRPC repository
            # API), or unknown (raises the not-served error, with suggestions).
            served = self.repository.get(name)
            found = self.deployments.setdefault(
                name, Deployment(name, self._target(served, CHAMPION, served.uri))
            )
            self._mark(found.champion, 1)
        return found

    def target_for(self, name: str, version: str) -> Target | None:
        deployment = self.deployment(name)
        for target in deployment.targets():
            if target.version == version:
                return target
        return None

    # -- predictions ---------------------------------------------------------------------

    async def submit(
        self, target: Target, batch: Any, rows: int, meta: dict[str, Any]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Queue a request's rows on the target's batcher; 503 when the queue is full."""
        batcher = target.batcher
        queue = self._queue_gauges.get(target.served.name)
        if queue is None:
            queue = self._queue_gauges[target.served.name] = self.metrics.queue.labels(
                target.served.name
            )
        try:
            queue.set(batcher.in_flight + 1)
            return await batcher.submit(batch, rows, meta)
        except OverloadedError:
            self.metrics.rejected.labels(target.served.name).inc()
            raise
        finally:
            queue.set(batcher.in_flight)

    def mirror(self, deployment: Deployment, batch: Any, rows: int, meta: dict[str, Any]) -> None:
        """Send a copy of a request to the shadow, without waiting for it."""
        shadow = deployment.shadow
        if shadow is None:
            return
        task = asyncio.get_running_loop().create_task(
            self._shadow(shadow, batch, rows, {**meta, "variant": SHADOW, "audit": False})
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _shadow(self, target: Target, batch: Any, rows: int, meta: dict[str, Any]) -> None:
        try:
            await self.submit(target, batch, rows, meta)
        except OverloadedError:
            pass  # counted in model_rejected_requests_total; the champion answered
        except Exception as exc:  # the shadow's failure is never the caller's
            self.shadow_errors += 1
            logger.warning(
                "shadow %s version %s failed: %s", target.served.name, target.version, exc
            )

    def _after_batch(self, served: ServedModel, batcher: MicroBatcher) -> Any:
        metrics = self.metrics
        classify = served.classes is not None
        queue = metrics.queue.labels(served.name)

        def after(items: list[BatchItem], batch: Any, pred: np.ndarray, proba: Any) -> None:
            now = time.perf_counter()
            rows = sum(i.rows for i in items)
            metrics.record_batch(
                served.name,
                served.version,
                pred,
                [now - i.started for i in items],
                rows,
                classify,
            )
            queue.set(batcher.in_flight)
            logged = [i for i in items if i.meta.get("log") or i.meta.get("audit")]
            if not logged:
                return
            if rows <= INLINE_ROWS and self._append_now(served, items, batch, pred, proba, now):
                return
            self._log_executor.submit(self._write_log, served, items, batch, pred, proba, now)

        return after

    def _write_log(
        self,
        served: ServedModel,
        items: list[BatchItem],
        batch: Any,
        pred: np.ndarray,
        proba: np.ndarray | None,
        done: float,
    ) -> None:
        try:
            self._log_batch(served, items, batch, pred, proba, done)
        except Exception:
            logger.exception("writing the prediction log of %s failed", served.name)

    def _append_now(
        self,
        served: ServedModel,
        items: list[BatchItem],
        batch: Any,
        pred: np.ndarray,
        proba: np.ndarray | None,
        done: float,
    ) -> bool:
        """Log a few rows right here when that is a plain append to an open spool (cheaper
        than waking the log thread); False leaves it to the thread (audit records, Kafka,
        a spool to open or roll, the writer busy rolling)."""
        if self.log is None or self.kafka is not None or any(i.meta.get("audit") for i in items):
            return False
        found = self._log_rows(served, items, batch, pred, proba, done)
        return found is None or self.log.try_append(served.name, *found)

    def _log_batch(
        self,
        served: ServedModel,
        items: list[BatchItem],
        batch: Any,
        pred: np.ndarray,
        proba: np.ndarray | None,
        done: float,
    ) -> None:
        for start, item in _starts(items):
            if item.meta.get("audit"):
                self._audit(served, item, batch, pred, start)
        if self.log is None:
            return
        found = self._log_rows(served, items, batch, pred, proba, done)
        if found is None:
            return
        self.log.append(served.name, *found)
        if self.kafka is not None:
            self.kafka.send(found[1])

    def _log_rows(
        self,
        served: ServedModel,
        items: list[BatchItem],
        batch: Any,
        pred: np.ndarray,
        proba: np.ndarray | None,
        done: float,
    ) -> tuple[Any, list[dict[str, Any]]] | None:
        """The prediction log rows of a batch's sampled requests (None: none sampled)."""
        from shipyard.serving.prediction_log import prediction_rows

        keep: list[int] = []
        ids: list[str] = []
        variants: list[str] = []
        latencies: list[float] = []
        ts: list[int] = []
        start = 0
        for item in items:
            meta = item.meta
            if meta.get("log"):
                rid = meta.get("request_id", "")
                latency = (done - item.started) * 1000.0
                for k in range(item.rows):
                    keep.append(start + k)
                    ids.append(rid if item.rows == 1 else f"{rid}:{k}")
                    variants.append(meta.get("variant", CHAMPION))
                    latencies.append(latency)
                    ts.append(meta.get("ts_us", 0))
            start += item.rows
        if not keep:
            return None
        if len(keep) != start:
            index = np.asarray(keep)
            batch = batch[index] if isinstance(batch, np.ndarray) else batch.iloc[index]
            pred = pred[index]
            proba = None if proba is None else proba[index]
        return prediction_rows(
            model=served.name,
            version=served.version,
            batch=batch,
            feature_names=served.feature_names,
            predictions=pred,
            probabilities=proba,
            request_ids=ids,
            variants=variants,
            latencies_ms=latencies,
            ts_us=ts,
        )

    def _audit(
        self, served: ServedModel, item: BatchItem, batch: Any, pred: np.ndarray, start: int
    ) -> None:
        from shipyard.serving.prediction_log import feature_rows

        if self.security is None:  # a version tagged for audit arrived after start
            from shipyard.server.auth import security_service

            self.security = security_service(self.settings)
        rows = (
            batch[start : start + item.rows]
            if isinstance(batch, np.ndarray)
            else (batch.iloc[start : start + item.rows])
        )
        cols, values = feature_rows(rows, served.feature_names)
        features = [dict(zip(cols, row, strict=True)) for row in values]
        prediction = pred[start : start + item.rows].tolist()
        self.security.audit.log_prediction(
            item.meta.get("actor") or "anonymous",
            served.name,
            served.version,
            features[0] if item.rows == 1 else features,
            prediction[0] if item.rows == 1 else prediction,
            workspace=self.workspace,
        )

    # -- alias watching --------------------------------------------------------------------

    async def refresh(self) -> list[tuple[str, str, str]]:
        """Re-resolve every aliased URI; load and swap in versions that moved.

        Returns:
            (name, old version, new version) for each swap.
        """
        loop = asyncio.get_running_loop()
        swaps = []
        for deployment in list(self.deployments.values()):
            for target in deployment.targets():
                if "@" not in target.uri:
                    continue
                try:
                    version = await loop.run_in_executor(None, self.repository.resolve, target.uri)
                except ShipyardError as exc:
                    logger.warning("cannot resolve %s: %s", target.uri, exc.message)
                    continue
                if str(version.version) == target.version:
                    continue
                old = target.version
                try:
                    served = await loop.run_in_executor(None, self._load, version, target)
                except Exception:
                    logger.exception("loading %s version %s failed", version.name, version.version)
                    continue
                self._swap(deployment, target, served)
                swaps.append((deployment.name, old, served.version))
        return swaps

    def _load(self, version: Any, target: Target) -> ServedModel:
        return self.repository.load_version(
            version, name=target.served.name, uri=target.uri, default=False
        )

    def _swap(self, deployment: Deployment, target: Target, served: ServedModel) -> None:
        old_served, old_batcher = target.served, target.batcher
        self._mark(target, 0)
        target.served, target.batcher = served, self._batcher(served)
        self._mark(target, 1)
        if target.variant == CHAMPION:
            self.repository.add(served, default=True)
        logger.info(
            "%s %s moved from version %s to %s",
            deployment.name,
            target.variant,
            old_served.version,
            served.version,
        )
        task = asyncio.get_running_loop().create_task(
            self._retire(deployment, old_served, old_batcher)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _retire(
        self, deployment: Deployment, served: ServedModel, batcher: MicroBatcher
    ) -> None:
        """Finish the old version's queued requests, then stop serving it."""
        await batcher.close(self.options.drain_seconds)
        if all(t.served is not served for t in deployment.targets()):
            self.repository.unload(served.name, served.version)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.options.poll_seconds)
            try:
                await self.refresh()
            except Exception:
                logger.exception("refreshing aliases failed")

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            if self.log is not None:
                await loop.run_in_executor(self._log_executor, self.log.maybe_roll)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Publish spools dead processes left, start the alias watcher and the log roller."""
        loop = asyncio.get_running_loop()
        if self.log is not None:
            from shipyard.serving.prediction_log import recover_spool

            try:
                await loop.run_in_executor(
                    None, recover_spool, self.spool_dir, self.settings.artifacts
                )
            except Exception:
                logger.exception("recovering prediction log spools failed")
            self._ticker = loop.create_task(self._tick())
        if self.options.poll_seconds > 0:
            self._watcher = loop.create_task(self._watch())
        self.started = True

    async def stop(self) -> None:
        """Drain: finish queued requests and shadows, then publish the prediction log."""
        for task in (self._watcher, self._ticker):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        batchers = [t.batcher for d in self.deployments.values() for t in d.targets()]
        await asyncio.gather(*(b.close(self.options.drain_seconds) for b in batchers))
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self.options.drain_seconds)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._log_executor.shutdown, True)
        if self.log is not None:
            await loop.run_in_executor(None, self.log.close)
        if self.kafka is not None:
            await loop.run_in_executor(None, self.kafka.close)
        self.started = False

    def ready(self) -> bool:
        return bool(self.deployments)


def _starts(items: list[BatchItem]) -> list[tuple[int, BatchItem]]:
    """Each item with the offset of its first row in the batch."""
    found, start = [], 0
    for item in items:
        found.append((start, item))
        start += item.rows
    return found
