"""Tracking for pipeline runs: the run is a tracking run, each executed step a nested run
with its parameters, metrics, artifacts, log and lineage.

Lineage is recorded both ways a user looks for it: a step's input artifacts appear as the
nested run's dataset inputs (name ``<producer step>.<output>``, digest = the content hash)
and its tags ``shipyard.pipeline.inputs`` / ``shipyard.pipeline.outputs`` map each input and
output to the sha256 of its content, so one digest leads from the step that wrote a file to
every step that read it. Artifacts are hard-linked into the nested run's artifact folder,
never copied.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.tracking.entities import Dataset as TrackedDataset
from shipyard.tracking.entities import DatasetInput, Metric, Param, RunStatus
from shipyard.types import ArtifactInfo

if TYPE_CHECKING:
    from shipyard.tracking.store import TrackingStore

__all__ = ["TrackingHook"]

_STATUS = {
    "succeeded": RunStatus.FINISHED,
    "failed": RunStatus.FAILED,
    "cancelled": RunStatus.KILLED,
}
_MAX_PARAM = 6000


def _param(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= _MAX_PARAM else text[: _MAX_PARAM - 3] + "..."


def _local_dir(uri: str) -> Path | None:
    if not uri.startswith("file://"):
        return None
    from urllib.parse import unquote, urlsplit
    from urllib.request import url2pathname

    return Path(url2pathname(unquote(urlsplit(uri).path)))


class TrackingHook:
    """Writes pipeline and step runs to a TrackingStore (local SQL or the platform server)."""

    def __init__(self, store: TrackingStore) -> None:
        self.store = store
        self._experiments: dict[str, str] = {}

    def _experiment(self, pipeline: str) -> str:
        if pipeline not in self._experiments:
            found = self.store.get_experiment_by_name(pipeline)
            if found is None:
                from shipyard.errors import ConflictError

                try:
                    found = self.store.create_experiment(
                        pipeline, description=f"Runs of pipeline '{pipeline}'"
                    )
                except ConflictError:  # created concurrently
                    found = self.store.get_experiment_by_name(pipeline)
                    assert found is not None
            self._experiments[pipeline] = found.experiment_id
        return self._experiments[pipeline]

    def before_pipeline_run(
        self, pipeline: str, run_name: str | None, params: Mapping[str, Any]
    ) -> str:
        """Start the pipeline's tracking run; its id becomes the pipeline run id."""
        from shipyard.errors import ConflictError, NotFoundError

        tags = {"shipyard.pipeline": pipeline, "shipyard.run_type": "pipeline"}
        try:
            run = self.store.create_run(self._experiment(pipeline), run_name=run_name, tags=tags)
        except (ConflictError, NotFoundError):  # the remembered experiment was deleted
            self._experiments.pop(pipeline, None)
            run = self.store.create_run(self._experiment(pipeline), run_name=run_name, tags=tags)
        if params:
            self.store.log_batch(
                run.info.run_id, params=[Param(k, _param(v)) for k, v in sorted(params.items())]
            )
        return run.info.run_id

    def after_pipeline_run(self, run_id: str, status: str) -> None:
        self.store.update_run(run_id, status=_STATUS.get(status, RunStatus.FAILED))

    def on_resume(self, run_id: str) -> None:
        self.store.update_run(run_id, status=RunStatus.RUNNING)

    def after_step_run(
        self,
        *,
        pipeline: str,
        run_id: str,
        step_key: str,
        state: str,
        start_ms: int,
        end_ms: int,
        params: Mapping[str, Any],
        inputs: Mapping[str, Any],
        outputs: Mapping[str, Any],
        log_path: Path | None,
        root: Path,
    ) -> str:
        """Record one executed step as a nested run; returns its id."""
        artifacts: Mapping[str, Any] = outputs.get("artifacts", {})
        tags = {
            "shipyard.pipeline": pipeline,
            "shipyard.pipeline.run_id": run_id,
            "shipyard.pipeline.step": step_key,
            "shipyard.run_type": "pipeline_step",
            "shipyard.pipeline.inputs": _param(
                {
                    k: v["digest"] if isinstance(v, dict) else [i["digest"] for i in v]
                    for k, v in inputs.items()
                }
            ),
            "shipyard.pipeline.outputs": _param({k: v["digest"] for k, v in artifacts.items()}),
        }
        nested = self.store.create_run(
            self._experiment(pipeline),
            run_name=step_key,
            parent_run_id=run_id,
            tags=tags,
            start_time=start_ms,
        )
        nested_id = nested.info.run_id
        metrics = [
            Metric(key, value, 0, end_ms)
            for ref in artifacts.values()
            for key, value in sorted(ref.get("metrics", {}).items())
        ]
        metrics += [
            Metric(key, float(value), 0, end_ms)
            for key, value in sorted(outputs.get("params", {}).items())
            if isinstance(value, int | float) and not isinstance(value, bool)
        ]
        self.store.log_batch(
            nested_id,
            metrics=metrics,
            params=[Param(k, _param(v)) for k, v in sorted(params.items())],
        )
        self.store.log_inputs(
            nested_id,
            [
                DatasetInput(
                    TrackedDataset(
                        name=ref.get("source", name),
                        digest=ref["digest"],
                        source=ref["key"],
                        source_type="pipeline",
                    ),
                    context=name[:64],
                )
                for name, value in inputs.items()
                for ref in (value if isinstance(value, list) else [value])
            ],
        )
        recorded = self._link(nested.info.artifact_uri, artifacts, log_path, root)
        if recorded:
            self.store.record_artifacts(nested_id, recorded)
        self.store.update_run(
            nested_id, status=_STATUS.get(state, RunStatus.FAILED), end_time=end_ms
        )
        return nested_id

    def _link(
        self, artifact_uri: str, artifacts: Mapping[str, Any], log_path: Path | None, root: Path
    ) -> list[ArtifactInfo]:
        target = _local_dir(artifact_uri)
        if target is None:
            return []
        recorded = []
        files = [
            (f"outputs/{name}", root / ref["key"], ref["digest"], ref["size"])
            for name, ref in artifacts.items()
            if ref.get("format") != "dir"
        ]
        if log_path is not None and log_path.exists():
            import hashlib

            with open(log_path, "rb") as src:
                digest = hashlib.file_digest(src, "sha256").hexdigest()
            files.append(("logs/log.txt", log_path, digest, log_path.stat().st_size))
        for rel, source, digest, size in files:
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                if not dest.exists():
                    os.link(source, dest)
            except OSError:
                continue
            recorded.append(ArtifactInfo(path=rel, size=size, sha256=digest))
        return recorded
