"""HttpTrackingStore: the TrackingStore of a remote platform server, over its REST API.

Each method is one request; the server's errors come back as the same ShipyardError
subclasses a local SqlTrackingStore raises, so code runs unchanged on either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from shipyard.errors import ExperimentNotFoundError
from shipyard.tracking._validation import metric_int, metric_value, run_status
from shipyard.tracking.entities import (
    Dataset,
    DatasetInput,
    Experiment,
    Metric,
    Param,
    Run,
    RunData,
    RunInfo,
    RunStatus,
)
from shipyard.types import ArtifactInfo, Page

if TYPE_CHECKING:
    from shipyard._http import HttpSession

__all__ = ["HttpTrackingStore"]


def _q(segment: str) -> str:
    return quote(str(segment), safe="")


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def experiment_from_json(d: Mapping[str, Any]) -> Experiment:
    return Experiment(
        experiment_id=d["experiment_id"],
        name=d["name"],
        workspace=d["workspace"],
        artifact_location=d["artifact_location"],
        lifecycle_stage=d["lifecycle_stage"],
        created_at=datetime.fromisoformat(d["created_at"]),
        updated_at=datetime.fromisoformat(d["updated_at"]),
        description=d.get("description", ""),
        tags=dict(d.get("tags") or {}),
    )


def _dataset_input(d: Mapping[str, Any]) -> DatasetInput:
    ds = d["dataset"]
    return DatasetInput(
        Dataset(
            name=ds["name"],
            digest=ds["digest"],
            source=ds.get("source", ""),
            source_type=ds.get("source_type", ""),
            schema=dict(ds.get("schema") or {}),
            profile=dict(ds.get("profile") or {}),
            num_rows=ds.get("num_rows"),
        ),
        context=d.get("context", ""),
    )


def run_from_json(d: Mapping[str, Any]) -> Run:
    info, data = d["info"], d["data"]
    return Run(
        info=RunInfo(
            run_id=info["run_id"],
            experiment_id=info["experiment_id"],
            workspace=info["workspace"],
            run_name=info["run_name"],
            status=RunStatus(info["status"]),
            start_time=datetime.fromisoformat(info["start_time"]),
            end_time=_time(info.get("end_time")),
            artifact_uri=info["artifact_uri"],
            user=info.get("user", ""),
            parent_run_id=info.get("parent_run_id"),
            lifecycle_stage=info.get("lifecycle_stage", "active"),
        ),
        data=RunData(
            params=dict(data.get("params") or {}),
            metrics={k: float(v) for k, v in (data.get("metrics") or {}).items()},
            tags=dict(data.get("tags") or {}),
        ),
        inputs=[_dataset_input(i) for i in d.get("inputs") or []],
    )


# JSON would turn "0.5" or True into a number on the server, so the type checks a local
# store makes on Python values are made here, with the same messages.


def _metric_json(metric: Metric) -> dict[str, Any]:
    """A metric point as the REST API takes it, checked exactly as the SQL store checks it
    (JSON would otherwise turn "0.5" or True into numbers on the way)."""
    return {
        "key": metric.key,
        "value": metric_value(metric),
        "step": metric_int(metric, "step"),
        "timestamp": metric_int(metric, "timestamp") or None,
    }


def _status(value: RunStatus | str) -> str:
    return run_status(value).value


def _text(value: object) -> object:
    """Param and tag values are stored as text; non-strings are sent as ``str(value)``."""
    return value if isinstance(value, str) or value is None else str(value)


def artifact_from_json(d: Mapping[str, Any]) -> ArtifactInfo:
    return ArtifactInfo(
        path=d["path"], size=int(d["size"]), sha256=d["sha256"], is_dir=bool(d.get("is_dir"))
    )


class HttpTrackingStore:
    """A TrackingStore served by a Shipyard platform server.

    Example::

        http = HttpSession("http://mlops.internal:5005", token=...)
        store = HttpTrackingStore(http, "team-a")
        run = store.create_run(store.create_experiment("churn").experiment_id)

    Args:
        http: the session to the server.
        workspace: workspace every request targets (header ``X-Shipyard-Workspace``).
    """

    def __init__(self, http: HttpSession, workspace: str = "default") -> None:
        self._http = http
        self.workspace = workspace

    def __repr__(self) -> str:
        return f"HttpTrackingStore('{self._http.base_url}', workspace={self.workspace!r})"

    def for_workspace(self, workspace: str) -> HttpTrackingStore:
        return HttpTrackingStore(self._http, workspace)

    def _get(self, path: str, **kwargs: Any) -> Any:
        return self._http.get(path, workspace=self.workspace, **kwargs)

    def _send(self, method: str, path: str, body: Any = None) -> Any:
        response = self._http.request(method, path, json=body, workspace=self.workspace)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    # -- experiments ------------------------------------------------------------------------

    def create_experiment(
        self,
        name: str,
        *,
        artifact_location: str | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
    ) -> Experiment:
        body = {
            "name": name,
            "artifact_location": artifact_location,
            "description": description,
            "tags": dict(tags or {}),
        }
        return experiment_from_json(self._send("POST", "/experiments", body))

    def get_experiment(self, experiment_id: str) -> Experiment:
        return experiment_from_json(self._get(f"/experiments/{_q(experiment_id)}"))

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        try:
            return experiment_from_json(self._get(f"/experiments/by-name/{_q(name)}"))
        except ExperimentNotFoundError:
            return None

    def list_experiments(
        self, *, max_results: int = 1000, page_token: str | None = None
    ) -> Page[Experiment]:
        params: dict[str, Any] = {"max_results": max_results}
        if page_token:
            params["page_token"] = page_token
        body = self._get("/experiments", params=params)
        return Page(
            [experiment_from_json(e) for e in body["experiments"]], body.get("next_page_token")
        )

    def delete_experiment(self, experiment_id: str) -> None:
        self._send("DELETE", f"/experiments/{_q(experiment_id)}")

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        self._send("PUT", f"/experiments/{_q(experiment_id)}/tags/{_q(key)}", {"value": value})

    # -- runs -------------------------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        *,
        run_name: str | None = None,
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        user: str = "",
        start_time: int | None = None,
    ) -> Run:
        body = {
            "experiment_id": experiment_id,
            "run_name": run_name,
            "parent_run_id": parent_run_id,
            "tags": dict(tags or {}),
            "user": user,
            "start_time": start_time,
        }
        return run_from_json(self._send("POST", "/runs", body))

    def get_run(self, run_id: str) -> Run:
        return run_from_json(self._get(f"/runs/{_q(run_id)}"))

    def update_run(
        self,
        run_id: str,
        *,
        status: RunStatus | None = None,
        end_time: int | None = None,
        run_name: str | None = None,
    ) -> Run:
        body: dict[str, Any] = {}
        if status is not None:
            body["status"] = _status(status)
        if end_time is not None:
            body["end_time"] = end_time
        if run_name is not None:
            body["run_name"] = run_name
        return run_from_json(self._send("PATCH", f"/runs/{_q(run_id)}", body))

    def delete_run(self, run_id: str) -> None:
        self._send("DELETE", f"/runs/{_q(run_id)}")

    def log_batch(
        self,
        run_id: str,
        *,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Mapping[str, str] | None = None,
    ) -> None:
        body = {
            "metrics": [_metric_json(m) for m in metrics],
            "params": [{"key": p.key, "value": _text(p.value)} for p in params],
            "tags": {k: _text(v) for k, v in (tags or {}).items()},
        }
        self._send("POST", f"/runs/{_q(run_id)}/batch", body)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        body = self._get(f"/runs/{_q(run_id)}/metrics/{quote(key, safe='/')}")
        return [Metric(m["key"], m["value"], m["step"], m["timestamp"]) for m in body["metrics"]]

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        *,
        filter_string: str = "",
        order_by: Sequence[str] = (),
        max_results: int = 100,
        page_token: str | None = None,
        include_deleted: bool = False,
    ) -> Page[Run]:
        body = {
            "experiment_ids": list(experiment_ids),
            "filter": filter_string,
            "order_by": [order_by] if isinstance(order_by, str) else list(order_by),
            "max_results": max_results,
            "page_token": page_token,
            "include_deleted": include_deleted,
        }
        answer = self._send("POST", "/runs/search", body)
        return Page([run_from_json(r) for r in answer["runs"]], answer.get("next_page_token"))

    def log_inputs(self, run_id: str, inputs: Sequence[DatasetInput]) -> None:
        body = {
            "inputs": [
                {
                    "dataset": {
                        "name": i.dataset.name,
                        "digest": i.dataset.digest,
                        "source": i.dataset.source,
                        "source_type": i.dataset.source_type,
                        "schema": i.dataset.schema,
                        "profile": i.dataset.profile,
                        "num_rows": i.dataset.num_rows,
                    },
                    "context": i.context,
                }
                for i in inputs
            ]
        }
        self._send("POST", f"/runs/{_q(run_id)}/inputs", body)

    # -- artifacts recorded for a run -------------------------------------------------------

    def record_artifacts(self, run_id: str, artifacts: Sequence[ArtifactInfo]) -> None:
        body = {
            "artifacts": [
                {"path": a.path, "size": a.size, "sha256": a.sha256, "is_dir": a.is_dir}
                for a in artifacts
            ]
        }
        self._send("POST", f"/runs/{_q(run_id)}/artifacts", body)

    def list_artifacts(self, run_id: str, path: str = "") -> list[ArtifactInfo]:
        body = self._get(f"/runs/{_q(run_id)}/artifacts", params={"path": path})
        return [artifact_from_json(a) for a in body["artifacts"]]
