"""The live monitor: read the latest window of a served model's prediction log, compare it with
the version's reference profile, and set the Prometheus gauges.

One :meth:`Monitor.update` per interval. Each model version in the window is compared with
its own reference (the profile attached to that version, see
:mod:`shipyard.monitoring.profiles`): per-feature drift, the share of drifted features,
prediction drift when the profile has a ``prediction`` column, data quality, and, for rows
whose ground truth arrived, the model's performance. ``shipyard monitor run`` loops over it
and serves the gauges on ``/metrics``; the platform server can run the same loop (see
:mod:`shipyard.monitoring.service`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.errors import NotFoundError
from shipyard.monitoring.columns import CategoricalSample, ColumnSample, column_sample
from shipyard.monitoring.drift import DEFAULT_DRIFT_SHARE, DatasetDrift, detect_drift
from shipyard.monitoring.metrics import MonitorMetrics
from shipyard.monitoring.profiles import Profile
from shipyard.monitoring.quality import ColumnQuality, column_quality
from shipyard.monitoring.reference import Reference
from shipyard.monitoring.windows import (
    FEATURE_PREFIX,
    latest_window,
    read_prediction_log,
    timestamps_us,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from shipyard.monitoring.detectors import DriftResult
    from shipyard.monitoring.labels import LabelStore

__all__ = ["Monitor", "MonitorSnapshot", "VersionStatus"]

logger = logging.getLogger(__name__)

#: How far back a count window looks for its rows.
COUNT_LOOKBACK = timedelta(days=1)

ReferenceLoader = Callable[[str], "Profile | Reference | None"]


@dataclass(frozen=True)
class VersionStatus:
    """What one update found for one model version.

    Attributes:
        version: The model version (as logged).
        rows: Rows of this version in the window.
        drift: Feature drift (None when the version has no reference).
        prediction: Prediction drift (None without a ``prediction`` reference column).
        quality: Data quality per feature.
        performance: Metric name to value on the labeled rows.
        labeled: Rows with a label.
        latency_p99_ms: The 99th percentile of the logged latency.
    """

    version: str
    rows: int
    drift: DatasetDrift | None
    prediction: DriftResult | None
    quality: Mapping[str, ColumnQuality]
    performance: Mapping[str, float]
    labeled: int
    latency_p99_ms: float | None


@dataclass(frozen=True)
class MonitorSnapshot:
    """The result of one :meth:`Monitor.update`."""

    model: str
    at: datetime
    window_start: datetime | None
    window_end: datetime | None
    rows: int
    versions: tuple[VersionStatus, ...] = field(default_factory=tuple)
    seconds: float = 0.0

    def version(self, version: str) -> VersionStatus:
        for status in self.versions:
            if status.version == version:
                return status
        raise KeyError(version)


class Monitor:
    """Drift, data quality and performance gauges of one served model.

    Example::

        monitor = Monitor("churn", artifacts_url=settings.artifacts, window="10m")
        snapshot = monitor.update()
        snapshot.versions[0].drift.share_drifted

    Args:
        model: The registered (and served) model name.
        artifacts_url: The artifact root holding the prediction log.
        workspace: The model's workspace.
        window: ``"10m"``-style duration or ``"5000rows"``-style count (see
            :func:`~shipyard.monitoring.windows.parse_window`).
        references: Version to its reference (a Profile or Reference), or a function of
            the version returning one (None: no drift for that version); default: the
            profile attached to the version in the registry.
        labels: Where ground-truth labels are read (optional).
        metrics: The gauges to set; new ones on a registry of their own when None.
        thresholds: Per-feature drift thresholds.
        drift_share: The share of drifted features at which the dataset counts as drifted.
        task: ``classification``, ``regression`` or None (inferred from the labels).
        client: Client used by the default reference loader.
    """

    def __init__(
        self,
        model: str,
        *,
        artifacts_url: str,
        workspace: str = "default",
        window: str = "10m",
        references: Mapping[str, Profile | Reference] | ReferenceLoader | None = None,
        labels: LabelStore | None = None,
        metrics: MonitorMetrics | None = None,
        thresholds: Mapping[str, float] | None = None,
        drift_share: float = DEFAULT_DRIFT_SHARE,
        task: str | None = None,
        client: Any = None,
    ) -> None:
        from shipyard.monitoring.windows import parse_window

        self.model = model
        self.artifacts_url = artifacts_url
        self.workspace = workspace
        self.window_by, self.window_size = parse_window(window)
        self.labels = labels
        self.metrics = metrics or MonitorMetrics()
        self.thresholds = dict(thresholds or {})
        self.drift_share = drift_share
        self.task = task
        self._client = client
        if references is None:
            self._loader: ReferenceLoader = self._registry_reference
        elif callable(references):
            self._loader = references
        else:
            fixed = dict(references)
            self._loader = fixed.get
        self._references: dict[str, Reference | None] = {}
        self._profiles: dict[str, Profile | None] = {}
        self._series: set[tuple[str, ...]] = set()
        self._parts: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Monitor({self.model!r}, window={self.window_by}:{self.window_size:g})"

    # -- references -------------------------------------------------------------------------

    def _registry_reference(self, version: str) -> Profile | None:
        from shipyard.monitoring.profiles import load_profile

        if not version.isdigit():
            return None
        try:
            return load_profile(self.model, version=int(version), client=self._client)
        except NotFoundError:
            logger.warning("model %s version %s has no reference profile", self.model, version)
            return None

    def reference(self, version: str) -> Reference | None:
        """The prepared reference of ``version`` (loaded once), or None."""
        if version not in self._references:
            loaded = self._loader(version)
            if isinstance(loaded, Profile):
                self._profiles[version] = loaded
                loaded = loaded.reference()
            self._references[version] = loaded
        return self._references[version]

    # -- one update ---------------------------------------------------------------------------

    def read_window(self, now: datetime | None = None) -> tuple[pa.Table, datetime | None]:
        """The current window's log rows, and the window's start."""
        now = now or datetime.now(UTC)
        if self.window_by == "time":
            start = now - timedelta(seconds=self.window_size)
            table = read_prediction_log(
                self.artifacts_url, self.workspace, self.model, start, now, cache=self._parts
            )
            return table, start
        table = read_prediction_log(
            self.artifacts_url,
            self.workspace,
            self.model,
            now - COUNT_LOOKBACK,
            now,
            cache=self._parts,
        )
        if table.num_rows == 0:
            return table, None
        window = latest_window(
            timestamps_us(table), size=int(self.window_size), by="count", now=now
        )
        return table.slice(window.lo, window.rows), window.start

    def update(self, now: datetime | None = None, table: pa.Table | None = None) -> MonitorSnapshot:
        """Compare the current window with the references and set the gauges.

        Args:
            now: The window's end (default: now).
            table: The window's log rows, when already read (tests, benchmarks).
        """
        began = time.perf_counter()
        now = now or datetime.now(UTC)
        start: datetime | None
        if table is None:
            table, start = self.read_window(now)
        else:
            start = None
        statuses = []
        if table.num_rows:
            import pyarrow.compute as pc

            versions = table.column("version")
            distinct = pc.unique(versions).to_pylist()
            for version in distinct:
                # Shadow and canary rows carry their own version: each is compared with
                # its own reference.
                rows = table.filter(pc.equal(versions, version)) if len(distinct) > 1 else table
                statuses.append(self._version_status(str(version), rows))
        snapshot = MonitorSnapshot(
            model=self.model,
            at=now,
            window_start=start,
            window_end=now,
            rows=table.num_rows,
            versions=tuple(statuses),
            seconds=time.perf_counter() - began,
        )
        with self._lock:
            self._publish(snapshot)
        return snapshot

    def _version_status(self, version: str, rows: pa.Table) -> VersionStatus:
        reference = self.reference(version)
        drift = prediction = None
        quality: Mapping[str, ColumnQuality] = {}
        if reference is not None:
            compared = [c for c in reference.columns if FEATURE_PREFIX + c in rows.column_names]
            if compared:
                # Each current column is cleaned and sorted (or counted) once, for both
                # the drift tests and the quality checks.
                current = {
                    c: _current_sample(rows.column(FEATURE_PREFIX + c), c, reference.kind(c).value)
                    for c in compared
                }
                # A feature with no value in the window (all missing) has no drift score;
                # its missing share (1.0) is what the quality gauges report.
                testable = [c for c in compared if current[c].n and reference[c].n]
                thresholds = {k: v for k, v in self.thresholds.items() if k in testable}
                if testable:
                    drift = detect_drift(
                        reference,
                        current,
                        columns=testable,
                        thresholds=thresholds,
                        drift_share=self.drift_share,
                    )
                quality = {c: column_quality(reference[c], current[c]) for c in compared}
            if "prediction" in reference and "prediction" in rows.column_names:
                prediction = self._prediction_drift(reference, rows)
        performance, labeled = self._performance(rows)
        latency = None
        if "latency_ms" in rows.column_names and rows.num_rows:
            values = rows.column("latency_ms").to_numpy(zero_copy_only=False)
            values = values[np.isfinite(values)]
            latency = float(np.percentile(values, 99)) if values.size else None
        return VersionStatus(
            version=version,
            rows=rows.num_rows,
            drift=drift,
            prediction=prediction,
            quality=quality,
            performance=performance,
            labeled=labeled,
            latency_p99_ms=latency,
        )

    def _prediction_drift(self, reference: Reference, rows: pa.Table) -> DriftResult | None:
        from shipyard.errors import InvalidArgumentError
        from shipyard.monitoring.drift import column_drift

        sample = reference["prediction"]
        column = "prediction"
        # The log keeps a class both as a number (prediction) and as text (prediction_label):
        # compare with whichever matches the reference's labels, so 1 meets 1, "yes" "yes".
        if isinstance(sample, CategoricalSample) and "prediction_label" in rows.column_names:
            texts = any(isinstance(c, str) for c in sample.categories.tolist())
            column = "prediction_label" if texts else column
        values = rows.column(column).to_pandas()
        try:
            return column_drift(reference["prediction"], values, name="prediction")
        except InvalidArgumentError:  # no predictions in the window
            return None

    def _performance(self, rows: pa.Table) -> tuple[dict[str, float], int]:
        if self.labels is None or rows.num_rows == 0:
            return {}, 0
        from shipyard.monitoring import performance as perf
        from shipyard.monitoring.labels import join_labels

        known = self.labels.get(self.model, rows.column("request_id").to_pylist())
        joined = join_labels(rows, known)
        if joined.num_rows == 0:
            return {}, 0
        truth = np.asarray(joined.column("label").to_pylist())
        use_label = "prediction_label" in joined.column_names and truth.dtype.kind in "US"
        predicted = np.asarray(
            joined.column("prediction_label" if use_label else "prediction").to_pylist()
        )
        task = self.task or perf.infer_task(truth, predicted)
        if task == "regression":
            return perf.regression_metrics(truth, predicted), joined.num_rows
        scores = None
        labels = np.unique(np.concatenate([truth.astype(str), predicted.astype(str)]))
        if "confidence" in joined.column_names and labels.size == 2:
            confidence = joined.column("confidence").to_numpy(zero_copy_only=False)
            positive = perf._positive(np.unique(np.concatenate([truth, predicted])))
            scores = perf.positive_scores(predicted, confidence, positive)
        return perf.classification_metrics(truth, predicted, scores), joined.num_rows

    # -- gauges ---------------------------------------------------------------------------------

    def _publish(self, snapshot: MonitorSnapshot) -> None:
        m = self.metrics
        model = self.model
        seen: set[tuple[str, ...]] = set()

        def put(gauge: Any, value: float, *labels: str) -> None:
            gauge.labels(*labels).set(value)
            seen.add((gauge._name, *labels))

        for s in snapshot.versions:
            v = s.version
            put(m.window_rows, s.rows, model, v)
            if s.drift is not None:
                put(m.dataset_drift_share, s.drift.share_drifted, model, v)
                put(m.dataset_drift, float(s.drift.drifted), model, v)
                for r in s.drift.columns:
                    put(m.feature_drift, r.score, model, v, r.column)
                    put(m.feature_drift_detected, float(r.drifted), model, v, r.column)
            if s.prediction is not None:
                put(m.prediction_drift, s.prediction.score, model, v)
                put(m.prediction_drift_detected, float(s.prediction.drifted), model, v)
            for name, q in s.quality.items():
                put(m.missing_share, q.missing_share, model, v, name)
                put(m.out_of_range_share, q.out_of_range_share, model, v, name)
                put(m.new_category_share, q.new_category_share, model, v, name)
            if self.labels is not None:
                put(m.labeled_rows, s.labeled, model, v)
            for metric, value in s.performance.items():
                put(m.performance, value, model, v, metric)
        # Versions that left the window stop being reported rather than freezing.
        by_name = {g._name: g for g in vars(m).values() if hasattr(g, "_name")}
        for key in self._series - seen:
            gauge = by_name.get(key[0])
            if gauge is not None:
                with contextlib.suppress(KeyError):
                    gauge.remove(*key[1:])
        self._series = seen
        m.last_update.labels(model).set(snapshot.at.timestamp())
        m.update_seconds.labels(model).set(snapshot.seconds)

    # -- the loop ---------------------------------------------------------------------------------

    def run(
        self,
        stop: threading.Event,
        interval: float = 30.0,
        on_update: Callable[[MonitorSnapshot], None] | None = None,
    ) -> None:
        """Update every ``interval`` seconds until ``stop`` is set; a failed update is logged
        and retried at the next tick."""
        while not stop.is_set():
            try:
                snapshot = self.update()
                if on_update is not None:
                    on_update(snapshot)
            except Exception:
                logger.exception("monitor update of %s failed", self.model)
            stop.wait(interval)


def _current_sample(column: Any, name: str, kind: str) -> ColumnSample:
    """One log column as a sample: numbers through numpy, labels counted by Arrow (no
    pandas round trip, the costliest step of a 10k-row update otherwise)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    numeric = pa.types.is_floating(column.type) or pa.types.is_integer(column.type)
    if kind == "numeric" and numeric:
        values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        return column_sample(values, name=name, kind=kind)
    if kind == "categorical" and not pa.types.is_floating(column.type):
        counts = pc.value_counts(column.combine_chunks())
        labels = counts.field("values")
        tallies = counts.field("counts").to_numpy(zero_copy_only=False).astype(np.int64)
        present = labels.is_valid().to_numpy(zero_copy_only=False)
        categories = np.empty(int(present.sum()), dtype=object)
        categories[:] = labels.filter(labels.is_valid()).to_pylist()
        return CategoricalSample(name, categories, tallies[present], int(column.null_count))
    return column_sample(column.to_pandas(), name=name, kind=kind)


def feature_names(table: pa.Table) -> list[str]:
    """The model input names logged in a prediction log table."""
    return [
        c.removeprefix(FEATURE_PREFIX) for c in table.column_names if c.startswith(FEATURE_PREFIX)
    ]
