"""Event triggers of pipelines: new data under a path, a monitoring alert, a registry event.

A trigger names a pipeline and parameters; parameter values may quote event fields, e.g.
``{"data_path": "{path}"}`` for a data trigger or ``{"model": "{model}", "version":
"{version}"}`` for a registry trigger (a value that is exactly ``"{field}"`` keeps the
field's type). Every event a trigger acts on is stored under a fingerprint
(``pipeline_trigger_fires``), so a file arrival or a model version fires once however often
it is seen.

- ``data``: ``spec={"path": "s3://bucket/incoming/*.parquet"}`` (a glob, or a folder meaning
  its entries); a file's fingerprint is its URL, size and modification time, a partition
  folder's its URL. What exists when the trigger is created is taken as seen, unless
  ``fire_existing``.
- ``alert``: ``spec={"alert": "feature_drift", "labels": {"model": "churn"}}`` fires on
  :func:`fire_alert` with that alert name (``*`` for any) and at least those labels, unless
  a run it started is still going (continuous training does not stack up runs).
- ``registry``: ``spec={"event": "model_version_created", "model": "churn"}`` (``*`` for any
  model) fires on a registry event, e.g. to evaluate each new version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipyard.errors import ConflictError, InvalidArgumentError, NotFoundError
from shipyard.pipelines.schedules import (
    NamedRowStore,
    RunStarter,
    active_runs,
    executor_starter,
    from_ms,
)
from shipyard.pipelines.schema import pipeline_trigger_fires, pipeline_triggers
from shipyard.store.db import now_ms

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.registry.entities import RegistryEvent

__all__ = [
    "KINDS",
    "Trigger",
    "TriggerNotFoundError",
    "TriggerStore",
    "fill_params",
    "fire_alert",
    "on_registry_event",
    "poll_data_triggers",
    "scan_data",
]

logger = logging.getLogger(__name__)

KINDS = ("data", "alert", "registry")
_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.-]*)\}")
_GLOB = re.compile(r"[*?\[]")


def fill_params(template: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters with ``{field}`` replaced by event fields; a value that is exactly
    one ``{field}`` becomes the field's value itself (keeping its type), unknown fields are
    left as written."""
    filled: dict[str, Any] = {}
    for key, value in template.items():
        if isinstance(value, str):
            whole = _FIELD.fullmatch(value)
            if whole and whole.group(1) in fields:
                filled[key] = fields[whole.group(1)]
                continue
            value = _FIELD.sub(
                lambda m: str(fields[m.group(1)]) if m.group(1) in fields else m.group(0), value
            )
        filled[key] = value
    return filled


def _sha(*parts: object) -> str:
    return hashlib.sha256("\x00".join(str(p) for p in parts).encode()).hexdigest()


@dataclass(frozen=True)
class Trigger:
    """A stored trigger."""

    trigger_id: str
    workspace: str
    name: str
    pipeline_ref: str
    kind: str
    spec: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    paused: bool = False
    created_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "trigger_id": self.trigger_id,
            "workspace": self.workspace,
            "name": self.name,
            "pipeline": self.pipeline_ref,
            "kind": self.kind,
            "spec": self.spec,
            "params": self.params,
            "paused": self.paused,
        }


def _trigger(row: Mapping[str, Any]) -> Trigger:
    return Trigger(
        trigger_id=row["trigger_id"],
        workspace=row["workspace"],
        name=row["name"],
        pipeline_ref=row["pipeline_ref"],
        kind=row["kind"],
        spec=json.loads(row["spec"] or "{}"),
        params=json.loads(row["params"] or "{}"),
        paused=bool(row["paused"]),
        created_at=from_ms(row["created_at"]),
    )


class TriggerNotFoundError(NotFoundError):
    code = "trigger_not_found"


def check_spec(kind: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec of a ``kind`` trigger, checked and with defaults filled in.

    Raises:
        InvalidArgumentError: unknown kind or a missing or malformed field.
    """
    if kind not in KINDS:
        raise InvalidArgumentError(
            f"Unknown trigger kind '{kind}'.", hint=f"Use one of: {', '.join(KINDS)}."
        )
    spec = dict(spec)
    if kind == "data":
        if not isinstance(spec.get("path"), str) or not spec["path"]:
            raise InvalidArgumentError(
                "A data trigger needs spec.path, a folder or glob such as 'data/in/*.csv'."
            )
        return {"path": spec["path"]}
    if kind == "alert":
        labels = spec.get("labels") or {}
        if not isinstance(spec.get("alert"), str) or not spec["alert"]:
            raise InvalidArgumentError("An alert trigger needs spec.alert (an alert name or '*').")
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise InvalidArgumentError("spec.labels of an alert trigger maps names to strings.")
        return {"alert": spec["alert"], "labels": labels}
    from shipyard.registry.events import EventType

    event = spec.get("event", EventType.MODEL_VERSION_CREATED.value)
    if event not in [t.value for t in EventType]:
        raise InvalidArgumentError(
            f"Unknown registry event '{event}'.",
            hint=f"Use one of: {', '.join(t.value for t in EventType)}.",
        )
    model = spec.get("model", "*")
    if not isinstance(model, str) or not model:
        raise InvalidArgumentError("spec.model of a registry trigger is a model name or '*'.")
    return {"event": event, "model": model}


class TriggerStore(NamedRowStore):
    """Triggers of one workspace in the metadata store."""

    table = pipeline_triggers
    fires_table = pipeline_trigger_fires
    fires_key = "trigger_id"

    def create(
        self,
        name: str,
        pipeline_ref: str,
        kind: str,
        spec: Mapping[str, Any],
        *,
        params: Mapping[str, Any] | None = None,
        paused: bool = False,
        fire_existing: bool = False,
    ) -> Trigger:
        """Store a trigger (for ``data``, what exists now counts as seen unless
        ``fire_existing``).

        Raises:
            InvalidArgumentError: bad kind, spec or name.
            ConflictError: a trigger of that name exists in the workspace.
        """
        if not name or len(name) > 128:
            raise InvalidArgumentError("A trigger needs a name of 1 to 128 characters.")
        checked = check_spec(kind, spec)
        stamp = now_ms()
        row = {
            "trigger_id": uuid.uuid4().hex,
            "workspace": self.workspace,
            "name": name,
            "pipeline_ref": pipeline_ref,
            "kind": kind,
            "spec": json.dumps(checked),
            "params": json.dumps(dict(params or {})),
            "paused": paused,
            "created_at": stamp,
            "updated_at": stamp,
        }
        trigger = _trigger(row)
        seen = scan_data(trigger) if kind == "data" and not fire_existing else []
        try:
            with self.engine.begin() as conn:
                conn.execute(pipeline_triggers.insert().values(**row))
                for fingerprint, detail in seen:
                    conn.execute(
                        pipeline_trigger_fires.insert().values(
                            trigger_id=trigger.trigger_id,
                            fingerprint=fingerprint,
                            detail=json.dumps({**detail, "baseline": True}),
                            created_at=stamp,
                        )
                    )
        except sa.exc.IntegrityError:
            raise ConflictError(
                f"A trigger named '{name}' exists in workspace '{self.workspace}'.",
                hint="Pick another name, or delete the old trigger first.",
            ) from None
        return trigger

    def get(self, name: str) -> Trigger:
        found = self._row(name)
        if found is None:
            raise TriggerNotFoundError(
                f"No trigger '{name}' in workspace '{self.workspace}'.",
                hint="List triggers with `shipyard pipelines trigger list`.",
            )
        return _trigger(found)

    def list(self, kind: str | None = None, *, all_workspaces: bool = False) -> list[Trigger]:
        query = sa.select(pipeline_triggers).order_by(pipeline_triggers.c.name)
        if not all_workspaces:
            query = query.where(pipeline_triggers.c.workspace == self.workspace)
        if kind:
            query = query.where(pipeline_triggers.c.kind == kind)
        with self.engine.connect() as conn:
            return [_trigger(r) for r in conn.execute(query).mappings()]

    def set_paused(self, name: str, paused: bool) -> Trigger:
        self.get(name)
        with self.engine.begin() as conn:
            conn.execute(
                pipeline_triggers.update()
                .where(self._where(name))
                .values(paused=paused, updated_at=now_ms())
            )
        return self.get(name)

    def claim(self, trigger: Trigger, fingerprint: str, detail: Mapping[str, Any]) -> bool:
        """Record an event; False when this trigger has seen it before."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    pipeline_trigger_fires.insert().values(
                        trigger_id=trigger.trigger_id,
                        fingerprint=fingerprint,
                        detail=json.dumps(dict(detail), default=str),
                        created_at=now_ms(),
                    )
                )
        except sa.exc.IntegrityError:
            return False
        return True

    def record_run(self, trigger: Trigger, fingerprint: str, run_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                pipeline_trigger_fires.update()
                .where(
                    pipeline_trigger_fires.c.trigger_id == trigger.trigger_id,
                    pipeline_trigger_fires.c.fingerprint == fingerprint,
                )
                .values(run_id=run_id)
            )

    def fires(self, name: str) -> list[dict[str, Any]]:
        """Events the trigger acted on (baseline entries excluded), oldest first."""
        trigger = self.get(name)
        query = (
            sa.select(pipeline_trigger_fires)
            .where(pipeline_trigger_fires.c.trigger_id == trigger.trigger_id)
            .order_by(pipeline_trigger_fires.c.created_at)
        )
        with self.engine.connect() as conn:
            rows = [
                {"run_id": r["run_id"], "detail": json.loads(r["detail"]), "at": r["created_at"]}
                for r in conn.execute(query).mappings()
            ]
        return [r for r in rows if not r["detail"].get("baseline")]

    def fire(
        self,
        trigger: Trigger,
        fingerprint: str,
        fields: Mapping[str, Any],
        starter: RunStarter,
    ) -> str | None:
        """Start the trigger's pipeline for one event unless it was seen; the run id."""
        if not self.claim(trigger, fingerprint, fields):
            return None
        run_id = starter(
            trigger.pipeline_ref,
            fill_params(trigger.params, fields),
            trigger.workspace,
            None,
            f"{trigger.name}-{fingerprint[:8]}",
        )
        self.record_run(trigger, fingerprint, run_id)
        logger.info("trigger %s started run %s", trigger.name, run_id)
        return run_id


# --- data arrival ------------------------------------------------------------------------


def scan_data(trigger: Trigger) -> list[tuple[str, dict[str, Any]]]:
    """``(fingerprint, fields)`` of every file or partition folder the trigger's path
    matches now; fields are ``path`` (a URL or local path) and ``name``."""
    import fsspec

    path = trigger.spec["path"]
    fs, root = fsspec.core.url_to_fs(path)
    pattern = root if _GLOB.search(root) else root.rstrip("/") + "/*"
    found: list[tuple[str, dict[str, Any]]] = []
    for entry in sorted(fs.glob(pattern, detail=False)):
        try:
            info = fs.info(entry)
        except FileNotFoundError:
            continue  # removed between glob and info
        name = entry.rstrip("/").rsplit("/", 1)[-1]
        if name.startswith((".", "_")):
            continue  # hidden and marker files (_SUCCESS), half-written temporaries
        url = fs.unstrip_protocol(entry) if "://" in path else entry
        if info.get("type") == "directory":
            fingerprint = _sha("dir", url)
        else:
            mtime = info.get("mtime") or info.get("LastModified") or info.get("created") or ""
            fingerprint = _sha("file", url, info.get("size"), mtime)
        found.append((fingerprint, {"path": url, "name": name}))
    return found


def poll_data_triggers(
    engine: Engine, starter: RunStarter, *, workspace: str | None = None
) -> list[str]:
    """Fire every unpaused data trigger (of ``workspace``, default all) once per new
    arrival."""
    started: list[str] = []
    store = TriggerStore(engine, workspace or "default")
    for trigger in store.list("data", all_workspaces=workspace is None):
        if trigger.paused:
            continue
        store = TriggerStore(engine, trigger.workspace)
        try:
            arrivals = scan_data(trigger)
        except Exception:
            logger.exception("scanning %s for trigger %s failed", trigger.spec, trigger.name)
            continue
        for fingerprint, fields in arrivals:
            run_id = store.fire(trigger, fingerprint, fields, starter)
            if run_id:
                started.append(run_id)
    return started


# --- monitoring alerts ---------------------------------------------------------------------


def fire_alert(
    alert_name: str,
    labels: Mapping[str, str],
    *,
    settings: Settings | None = None,
    workspace: str | None = None,
    starter: RunStarter | None = None,
) -> list[str]:
    """Start the pipelines of the alert triggers matching an alert that fired (continuous
    training): same alert name (or ``*``) and every label the trigger names. A trigger
    whose previous run is still going is skipped.

    Args:
        alert_name: the alert, e.g. ``feature_drift``.
        labels: the alert's labels, e.g. ``{"model": "churn", "feature": "age"}``;
            parameters can quote them (``{"model": "{model}"}``), and ``{alert}``.
        settings: where the metadata store is (default: environment).
        workspace: whose triggers (default: ``labels["workspace"]``, else the settings').
        starter: how to start a run (default: the local executor, not waiting).

    Returns:
        The ids of the runs started.
    """
    from shipyard.config import load_settings
    from shipyard.store.db import engine_for

    settings = settings or load_settings()
    engine = engine_for(settings.db)
    ws = workspace or labels.get("workspace") or settings.workspace
    store = TriggerStore(engine, ws)
    starter = starter or executor_starter(settings)
    fields = {**labels, "alert": alert_name}
    started: list[str] = []
    for trigger in store.list("alert"):
        wanted = trigger.spec
        if trigger.paused or wanted["alert"] not in ("*", alert_name):
            continue
        if any(labels.get(k) != v for k, v in wanted["labels"].items()):
            continue
        if active_runs(engine, store.run_ids(trigger)):
            logger.info("alert trigger %s: a run is still going; not starting another", trigger)
            continue
        stamp = datetime.now(UTC).isoformat()
        fingerprint = _sha("alert", alert_name, json.dumps(dict(labels), sort_keys=True), stamp)
        run_id = store.fire(trigger, fingerprint, fields, starter)
        if run_id:
            started.append(run_id)
    return started


# --- registry events -----------------------------------------------------------------------


def on_registry_event(event: RegistryEvent, *, engine: Engine, starter: RunStarter) -> list[str]:
    """Start the pipelines of the registry triggers matching ``event`` (each model version
    fires a trigger once, however often the event is delivered)."""
    payload = {k: v for k, v in event.payload.items() if isinstance(v, str | int | float | bool)}
    fields = {**payload, "model": event.model, "event": event.type, "workspace": event.workspace}
    version = payload.get("version", "")
    fingerprint = _sha(
        "registry",
        event.type,
        event.workspace,
        event.model,
        version,
        "" if version else event.at.isoformat(),
    )
    store = TriggerStore(engine, event.workspace)
    started: list[str] = []
    for trigger in store.list("registry"):
        wanted = trigger.spec
        if trigger.paused or wanted["event"] != event.type:
            continue
        if wanted["model"] not in ("*", event.model):
            continue
        run_id = store.fire(trigger, fingerprint, fields, starter)
        if run_id:
            started.append(run_id)
    return started
