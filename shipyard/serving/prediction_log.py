"""The prediction log: every (or a sampled share of) prediction, as rolling Parquet files.

Layout under the artifact root, one folder per model and day::

    prediction-logs/<workspace>/<model>/date=YYYY-MM-DD/part-<ts_ms>-<uuid8>.parquet

Columns: ``request_id``, ``ts`` (timestamp[us, UTC]), ``model``, ``version``,
``variant`` (champion, shadow, canary), ``latency_ms``, ``prediction`` (float64),
``prediction_label`` (string), ``confidence`` (nullable), ``features_sha256`` (sha256 of
the canonical JSON of ``{feature: value}``, the same hash prediction audit records hold)
and one ``feature.<name>`` column per model input.

Durability: each batch is appended to a local spool file as JSON lines (one write,
flushed to the OS before the writer returns), so a crashed server loses nothing it had
logged, and a batch costs one ``orjson.dumps`` instead of building Arrow arrays. The
spool becomes a Parquet file (read back by Arrow's JSON reader) when it reaches
``roll_rows`` rows or ``roll_seconds`` of age, on :meth:`PredictionLogWriter.close`, and,
for spools a dead process left behind, on the next start (:func:`recover_spool`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from shipyard.serving.protocol import dumps, loads

__all__ = [
    "LOG_PREFIX",
    "PredictionLogWriter",
    "base_schema",
    "feature_rows",
    "features_sha256",
    "prediction_rows",
    "recover_spool",
]

logger = logging.getLogger("shipyard.serving")

LOG_PREFIX = "prediction-logs"
_SPOOL_SUFFIX = ".jsonl"


def base_schema() -> pa.Schema:
    """The columns every prediction log file has, before the ``feature.*`` columns."""
    return pa.schema(
        [
            ("request_id", pa.string()),
            ("ts", pa.timestamp("us", tz="UTC")),
            ("model", pa.string()),
            ("version", pa.string()),
            ("variant", pa.string()),
            ("latency_ms", pa.float64()),
            ("prediction", pa.float64()),
            ("prediction_label", pa.string()),
            ("confidence", pa.float64()),
            ("features_sha256", pa.string()),
        ]
    )


def _json_value(value: Any) -> str:
    """One value as ``json.dumps`` writes it (floats by ``repr``, NaN as ``NaN``)."""
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        return float.__repr__(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    return json.dumps(value, ensure_ascii=False)


_key_cache: dict[tuple[str, ...], tuple[list[int], list[str]]] = {}


def _sorted_keys(names: Sequence[str]) -> tuple[list[int], list[str]]:
    cached = _key_cache.get(tuple(names))
    if cached is None:
        order = sorted(range(len(names)), key=lambda i: names[i])
        keys = [json.dumps(names[i], ensure_ascii=False) + ":" for i in order]
        cached = _key_cache.setdefault(tuple(names), (order, keys))
    return cached


def features_sha256(
    names: Sequence[str], rows: Sequence[Sequence[Any]], *, finite_floats: bool = False
) -> list[str]:
    """sha256 of the canonical JSON of ``{name: value}`` for each row.

    Byte for byte what :func:`shipyard.security.audit.payload_sha256` hashes (sorted
    keys, no spaces, ``ensure_ascii=False``), built without a dict or ``json.dumps`` per
    row, since it runs for every logged prediction.

    Args:
        finite_floats: every value is a finite float (a checked float batch), so each is
            written by ``float.__repr__`` directly.
    """
    order, keys = _sorted_keys(names)
    sha256 = hashlib.sha256
    out = []
    if finite_floats:
        identity = order == list(range(len(order)))
        for row in rows:
            values = row if identity else [row[i] for i in order]
            text = ",".join(map(str.__add__, keys, map(float.__repr__, values)))
            out.append(sha256(("{" + text + "}").encode()).hexdigest())
        return out
    for row in rows:
        text = ",".join(k + _json_value(row[i]) for k, i in zip(keys, order, strict=True))
        out.append(sha256(("{" + text + "}").encode("utf-8", "surrogatepass")).hexdigest())
    return out


def feature_rows(batch: Any, names: Sequence[str]) -> tuple[list[str], list[list[Any]]]:
    """Feature names and row values (Python scalars) of a batch (2-D array or DataFrame)."""
    if isinstance(batch, np.ndarray):
        width = batch.shape[1] if batch.ndim == 2 else 1
        cols = list(names) if len(names) == width else [f"x{i}" for i in range(width)]
        return cols, batch.reshape(len(batch), -1).tolist()
    cols = [str(c) for c in batch.columns]
    return cols, batch.astype(object).to_numpy().tolist()


def prediction_rows(
    *,
    model: str,
    version: str,
    batch: Any,
    feature_names: Sequence[str],
    predictions: np.ndarray,
    probabilities: np.ndarray | None,
    request_ids: Sequence[str],
    variants: Sequence[str],
    latencies_ms: Sequence[float],
    ts_us: Sequence[int],
) -> tuple[pa.Schema, list[dict[str, Any]]]:
    """The log's schema and rows for one model call's inputs and outputs."""
    cols, rows = feature_rows(batch, feature_names)
    floats = (
        isinstance(batch, np.ndarray) and batch.dtype.kind == "f" and bool(np.isfinite(batch).all())
    )
    hashes = features_sha256(cols, rows, finite_floats=floats)
    labels = predictions.tolist() if predictions.ndim == 1 else [None] * len(rows)
    confidence = (
        probabilities.max(axis=1).tolist()
        if probabilities is not None and probabilities.ndim == 2
        else [None] * len(rows)
    )
    keys = [f"feature.{c}" for c in cols]
    if isinstance(batch, np.ndarray) and batch.dtype.kind in "biuf":
        numeric = (True,) * len(cols)
    else:
        numeric = tuple(
            all(isinstance(r[j], int | float) or r[j] is None for r in rows)
            for j in range(len(cols))
        )
    schema = _schema_for(tuple(keys), numeric)
    out = []
    for k, row in enumerate(rows):
        label = labels[k]
        if isinstance(label, bool | int | float):
            number, text = float(label), str(label)
        elif label is None:
            number, text = None, None
        else:
            number, text = None, label.decode() if isinstance(label, bytes) else str(label)
        record: dict[str, Any] = {
            "request_id": request_ids[k],
            "ts": ts_us[k],
            "model": model,
            "version": version,
            "variant": variants[k],
            "latency_ms": latencies_ms[k],
            "prediction": number,
            "prediction_label": text,
            "confidence": confidence[k],
            "features_sha256": hashes[k],
        }
        record.update(zip(keys, row, strict=True))
        out.append(record)
    return schema, out


_schemas: dict[tuple[tuple[str, ...], tuple[bool, ...]], pa.Schema] = {}


def _schema_for(keys: tuple[str, ...], numeric: tuple[bool, ...]) -> pa.Schema:
    """The log schema for these feature columns (cached: built once per model)."""
    schema = _schemas.get((keys, numeric))
    if schema is None:
        fields = list(base_schema())
        for key, is_number in zip(keys, numeric, strict=True):
            fields.append(pa.field(key, pa.float64() if is_number else pa.string()))
        schema = _schemas.setdefault((keys, numeric), pa.schema(fields))
    return schema


@dataclass
class _Spool:
    path: Path
    schema: pa.Schema
    file: BinaryIO
    rows: int = 0
    opened: float = 0.0


def _schema_line(schema: pa.Schema) -> bytes:
    return dumps({"schema": [[f.name, str(f.type)] for f in schema]}) + b"\n"


_TYPES = {"string": pa.string(), "double": pa.float64(), "timestamp[us, tz=UTC]": pa.int64()}


def _read_spool(path: Path) -> pa.Table | None:
    """The rows of a spool file, up to a torn last line (a crash mid-append)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    head, _, body = data.partition(b"\n")
    try:
        fields = loads(head)["schema"]
    except (ValueError, KeyError, TypeError):
        return None
    end = body.rfind(b"\n")
    body = body[: end + 1] if end >= 0 else b""
    names = [name for name, _ in fields]
    read_schema = pa.schema([(name, _TYPES.get(kind, pa.string())) for name, kind in fields])
    if not body:
        table = read_schema.empty_table()
    else:
        options = pa_json.ParseOptions(
            explicit_schema=read_schema, unexpected_field_behavior="ignore"
        )
        try:
            table = pa_json.read_json(io.BytesIO(body), parse_options=options)
        except pa.ArrowInvalid:
            logger.exception("spool %s is unreadable; it is kept for inspection", path)
            return None
    table = table.select(names)
    ts = names.index("ts")
    return table.set_column(ts, "ts", table.column("ts").cast(pa.timestamp("us", tz="UTC")))


def _publish(table: pa.Table, artifacts_url: str, workspace: str, model: str) -> list[str]:
    """Write ``table`` as Parquet files, one per UTC day of its ``ts``; returns keys."""
    from shipyard.store.artifacts import ArtifactStore

    if table.num_rows == 0:
        return []
    store = ArtifactStore(artifacts_url)
    days = np.asarray(table.column("ts").cast(pa.int64()).to_numpy(zero_copy_only=False))
    days = days // 86_400_000_000
    keys = []
    for day in np.unique(days):
        part = table.filter(pa.array(days == day))
        date = datetime.fromtimestamp(int(day) * 86400, UTC).strftime("%Y-%m-%d")
        first_ms = int(part.column("ts")[0].value // 1000)
        key = (
            f"{LOG_PREFIX}/{workspace}/{model}/date={date}/"
            f"part-{first_ms}-{uuid.uuid4().hex[:8]}.parquet"
        )
        buffer = io.BytesIO()
        pq.write_table(part, buffer, compression="zstd")
        store.put_bytes(buffer.getvalue(), key)
        keys.append(key)
    return keys


def _spool_owner(path: Path) -> int | None:
    head = path.name.split("-", 1)[0]
    return int(head) if head.isdigit() else None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_spool(spool_dir: Path, artifacts_url: str) -> list[str]:
    """Publish the spool files that processes no longer running left behind.

    Each file is claimed by renaming it first, so several workers starting at once never
    publish one twice.

    Returns:
        The artifact keys written.
    """
    keys: list[str] = []
    if not spool_dir.is_dir():
        return keys
    for path in sorted(spool_dir.glob(f"*/*/*{_SPOOL_SUFFIX}*")):
        owner = _spool_owner(path)
        if path.name.endswith(_SPOOL_SUFFIX) and owner is not None and _alive(owner):
            continue
        if not path.name.endswith(_SPOOL_SUFFIX):
            claimer = path.name.rpartition("-")[2]
            if claimer.isdigit() and _alive(int(claimer)):
                continue  # being recovered by a live process
        claimed = path.with_name(
            f"{path.name.split(_SPOOL_SUFFIX)[0]}{_SPOOL_SUFFIX}.claim-{os.getpid()}"
        )
        try:
            os.rename(path, claimed)
        except OSError:
            continue
        workspace, model = path.parent.parent.name, path.parent.name
        table = _read_spool(claimed)
        if table is not None:
            keys += _publish(table, artifacts_url, workspace, _unquote(model))
        claimed.unlink(missing_ok=True)
    return keys


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def _unquote(name: str) -> str:
    from urllib.parse import unquote

    return unquote(name)


class PredictionLogWriter:
    """Appends prediction batches durably and publishes them as Parquet files.

    Thread-safe; the model server calls it from one background thread.

    Example::

        writer = PredictionLogWriter(settings.artifacts, "default", spool_dir=home / "spool")
        writer.append("fraud", *prediction_rows(...))
        writer.close()   # publishes what is spooled

    Args:
        artifacts_url: the artifact root the Parquet files go under.
        workspace: the workspace folder of the layout.
        spool_dir: local folder of the spool files (one per model and process).
        roll_rows: publish a model's spool once it holds this many rows.
        roll_seconds: ... or once it is this old.
    """

    def __init__(
        self,
        artifacts_url: str,
        workspace: str,
        *,
        spool_dir: str | os.PathLike[str],
        roll_rows: int = 100_000,
        roll_seconds: float = 300.0,
    ) -> None:
        self.artifacts_url = artifacts_url
        self.workspace = workspace
        self.spool_dir = Path(spool_dir)
        self.roll_rows = roll_rows
        self.roll_seconds = roll_seconds
        self._spools: dict[str, _Spool] = {}
        self._lock = threading.Lock()
        self.published: list[str] = []
        self.rows_written = 0

    def __repr__(self) -> str:
        return f"PredictionLogWriter({self.workspace!r}, spool={str(self.spool_dir)!r})"

    def _open(self, model: str, schema: pa.Schema) -> _Spool:
        folder = self.spool_dir / _quote(self.workspace) / _quote(model)
        folder.mkdir(parents=True, exist_ok=True)
        path = (
            folder
            / f"{os.getpid()}-{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}{_SPOOL_SUFFIX}"
        )
        file = open(path, "ab", buffering=0)  # noqa: SIM115 - kept open across appends
        file.write(_schema_line(schema))
        return _Spool(path, schema, file, opened=time.monotonic())

    def append(self, model: str, schema: pa.Schema, rows: Sequence[dict[str, Any]]) -> None:
        """Append rows (see :func:`prediction_rows`) to ``model``'s spool, written to the
        OS in one call before returning."""
        if not rows:
            return
        data = b"\n".join(dumps(row) for row in rows) + b"\n"
        with self._lock:
            spool = self._spools.get(model)
            if spool is not None and spool.schema is not schema and not spool.schema.equals(schema):
                self._roll(model)
                spool = None
            if spool is None:
                spool = self._spools[model] = self._open(model, schema)
            spool.file.write(data)
            spool.rows += len(rows)
            self.rows_written += len(rows)
            if spool.rows >= self.roll_rows:
                self._roll(model)

    def try_append(self, model: str, schema: pa.Schema, rows: Sequence[dict[str, Any]]) -> bool:
        """:meth:`append` without waiting: False, having written nothing, when the writer
        is busy (rolling), or ``model`` has no open spool of this schema with room."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            spool = self._spools.get(model)
            if (
                spool is None
                or (spool.schema is not schema and not spool.schema.equals(schema))
                or spool.rows + len(rows) >= self.roll_rows
            ):
                return False
            spool.file.write(b"\n".join(dumps(row) for row in rows) + b"\n")
            spool.rows += len(rows)
            self.rows_written += len(rows)
            return True
        finally:
            self._lock.release()

    def maybe_roll(self) -> list[str]:
        """Publish every spool older than ``roll_seconds``; returns the keys written."""
        now = time.monotonic()
        keys: list[str] = []
        with self._lock:
            for model in [
                m for m, s in self._spools.items() if now - s.opened >= self.roll_seconds
            ]:
                keys += self._roll(model)
        return keys

    def roll(self) -> list[str]:
        """Publish every spool now; returns the keys written."""
        keys: list[str] = []
        with self._lock:
            for model in list(self._spools):
                keys += self._roll(model)
        return keys

    def _roll(self, model: str) -> list[str]:
        spool = self._spools.pop(model)
        spool.file.close()
        table = _read_spool(spool.path)
        keys: list[str] = []
        if table is not None and table.num_rows:
            try:
                keys = _publish(table, self.artifacts_url, self.workspace, model)
            except Exception:
                # Keep the spool: the next start publishes it (recover_spool).
                logger.exception("publishing the prediction log of %s failed", model)
                with contextlib.suppress(OSError):
                    os.rename(spool.path, spool.path.with_name("0-" + spool.path.name))
                return []
        spool.path.unlink(missing_ok=True)
        self.published += keys
        return keys

    def close(self) -> list[str]:
        """Publish everything spooled (graceful shutdown)."""
        return self.roll()
