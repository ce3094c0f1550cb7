"""Ground-truth labels that arrive after the prediction, stored by request id and joined with
the prediction log.

``LabelStore(engine, workspace).put(model, {"req-1": 1, ...})`` upserts (a corrected label
replaces the earlier one); :func:`read_labels_file` reads CSV, Parquet or JSON lines with
``request_id`` and ``label`` columns; :func:`join_labels` adds a ``label`` column to a
prediction log table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlalchemy.engine import Engine

__all__ = [
    "MAX_LABELS_PER_CALL",
    "LabelStore",
    "join_labels",
    "read_labels_file",
    "store_labels",
]

#: Labels one ``put`` accepts (the HTTP route's bound as well).
MAX_LABELS_PER_CALL = 100_000
_BATCH = 1000


def _encode(request_id: Any, label: Any) -> tuple[str, str]:
    rid = str(request_id)
    if not rid or len(rid) > 128 or "\x00" in rid:
        raise InvalidArgumentError(
            f"A request id must have 1 to 128 characters, got {rid[:40]!r}.",
            hint="Use the request_id the model server returned with the prediction.",
        )
    if hasattr(label, "item"):
        label = label.item()
    if label is None or (isinstance(label, float) and not math.isfinite(label)):
        raise InvalidArgumentError(f"The label of request {rid!r} is missing or not finite.")
    if not isinstance(label, bool | int | float | str):
        raise InvalidArgumentError(
            f"The label of request {rid!r} must be a number, a bool or a string, "
            f"not {type(label).__name__}."
        )
    if isinstance(label, str) and "\x00" in label:
        raise InvalidArgumentError(f"The label of request {rid!r} holds a NUL character.")
    return rid, json.dumps(label)


def _check_model(model: str) -> None:
    if not model or len(model) > 256 or "\x00" in model:
        raise InvalidArgumentError(
            "The model name must have 1 to 256 characters and no NUL.",
            hint="Use the registered model's name.",
        )


class LabelStore:
    """Labels of one workspace in the metadata database.

    Args:
        engine: The metadata store's engine (``engine_for(settings.db)``).
        workspace: The workspace.
    """

    def __init__(self, engine: Engine, workspace: str) -> None:
        self.engine = engine
        self.workspace = workspace

    def __repr__(self) -> str:
        return f"LabelStore(workspace={self.workspace!r})"

    def put(self, model: str, labels: Mapping[Any, Any] | Iterable[tuple[Any, Any]]) -> int:
        """Store labels by request id (replacing earlier ones); returns how many.

        Raises:
            InvalidArgumentError: An empty model name, a bad request id or label, or more
                than :data:`MAX_LABELS_PER_CALL` labels.
        """
        from shipyard.monitoring.schema import monitoring_labels
        from shipyard.store.db import now_ms

        _check_model(model)
        pairs = labels.items() if isinstance(labels, Mapping) else labels
        rows = dict(_encode(rid, label) for rid, label in pairs)
        if len(rows) > MAX_LABELS_PER_CALL:
            raise InvalidArgumentError(
                f"{len(rows)} labels in one call; at most {MAX_LABELS_PER_CALL}.",
                hint="Send them in several calls.",
            )
        at = now_ms()
        values = [
            {
                "workspace": self.workspace,
                "model": model,
                "request_id": rid,
                "label": text,
                "created_at": at,
            }
            for rid, text in rows.items()
        ]
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert
            stmt = insert(monitoring_labels)
            stmt = stmt.on_conflict_do_update(
                index_elements=["workspace", "model", "request_id"],
                set_={"label": stmt.excluded.label, "created_at": stmt.excluded.created_at},
            )
            for i in range(0, len(values), _BATCH):  # one round trip per batch
                conn.execute(stmt, values[i : i + _BATCH])
        return len(rows)

    def get(self, model: str, request_ids: Iterable[str]) -> dict[str, Any]:
        """The labels known for these request ids (ids without a label are left out)."""
        import sqlalchemy as sa

        from shipyard.monitoring.schema import monitoring_labels as t

        _check_model(model)
        ids = [r for r in dict.fromkeys(str(r) for r in request_ids) if "\x00" not in r]
        out: dict[str, Any] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(ids), _BATCH):
                query = sa.select(t.c.request_id, t.c.label).where(
                    t.c.workspace == self.workspace,
                    t.c.model == model,
                    t.c.request_id.in_(ids[i : i + _BATCH]),
                )
                for rid, text in conn.execute(query):
                    out[rid] = json.loads(text)
        return out

    def count(self, model: str) -> int:
        """How many labels ``model`` has."""
        import sqlalchemy as sa

        from shipyard.monitoring.schema import monitoring_labels as t

        _check_model(model)
        query = sa.select(sa.func.count()).where(
            t.c.workspace == self.workspace, t.c.model == model
        )
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)


def store_labels(model: str, pairs: Iterable[tuple[Any, Any]], client: Any = None) -> int:
    """Store labels through a Client: in the local metadata database, or with
    ``POST /api/v1/monitoring/labels`` (in batches of 10,000) when the client is remote."""
    from shipyard.client import Client

    client = client or Client()
    items = list(pairs)
    if not client.is_remote:
        from shipyard.store.db import engine_for

        store = LabelStore(engine_for(client.settings.db), client.workspace)
        return sum(
            store.put(model, items[i : i + MAX_LABELS_PER_CALL])
            for i in range(0, len(items), MAX_LABELS_PER_CALL)
        )
    session = client._session()
    stored = 0
    for i in range(0, len(items), 10_000):
        body = {
            "model": model,
            "labels": [
                {"request_id": str(r), "label": v.item() if hasattr(v, "item") else v}
                for r, v in items[i : i + 10_000]
            ],
        }
        stored += int(session.post("/monitoring/labels", json=body)["stored"])
    return stored


def read_labels_file(path: str | Path) -> list[tuple[str, Any]]:
    """``(request_id, label)`` pairs from a CSV, Parquet or JSON-lines file.

    Raises:
        InvalidArgumentError: Another format, or no ``request_id``/``label`` columns.
    """
    import pandas as pd

    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".csv":
        frame = pd.read_csv(p)
    elif suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(p)
    elif suffix in (".jsonl", ".ndjson", ".json"):
        frame = pd.read_json(p, lines=suffix != ".json")
    else:
        raise InvalidArgumentError(
            f"Cannot read labels from {p.name}.", hint="Use .csv, .parquet or .jsonl."
        )
    missing = {"request_id", "label"} - set(frame.columns)
    if missing:
        raise InvalidArgumentError(
            f"{p.name} has no {', '.join(sorted(missing))} column.",
            hint="Labels files need the columns request_id and label.",
        )
    return list(zip(frame["request_id"].astype(str), frame["label"].tolist(), strict=True))


def join_labels(table: pa.Table, labels: Mapping[str, Any]) -> pa.Table:
    """The rows of a prediction log table that have a label, with a ``label`` column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if table.num_rows == 0 or not labels:
        return table.slice(0, 0).append_column("label", pa.array([], pa.null()))
    ids = table.column("request_id")
    mask = pc.is_in(ids, value_set=pa.array(list(labels), pa.string()))
    kept = table.filter(mask)
    values = [labels[r] for r in kept.column("request_id").to_pylist()]
    return kept.append_column("label", pa.array(values))
