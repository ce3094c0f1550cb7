"""The Client: one object that reaches tracking, registry and run artifacts.

It picks the transport from settings, like MLflow's ``MlflowClient`` picks it from the
tracking URI: with ``SHIPYARD_URL`` set it talks to the platform server over HTTP,
otherwise it opens the metadata database and the artifact root in-process. Stores are
built on first use, so ``Client()`` itself costs nothing.

Example::

    client = shipyard.Client()
    exp_id = client.create_experiment("churn")
    run = client.create_run(exp_id, run_name="baseline")
    client.log_metric(run.info.run_id, "auc", 0.91)
    client.set_terminated(run.info.run_id)
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from shipyard.errors import ModelNotFoundError
from shipyard.tracking.entities import Metric, Param, Run, RunStatus

if TYPE_CHECKING:
    import pandas as pd

    from shipyard._http import HttpSession
    from shipyard.config import Settings
    from shipyard.registry.entities import ModelVersion, RegisteredModel
    from shipyard.registry.store import RegistryStore
    from shipyard.tracking.entities import Experiment
    from shipyard.tracking.run_artifacts import RunArtifacts
    from shipyard.tracking.store import TrackingStore
    from shipyard.types import ArtifactInfo, Page


def _now_ms() -> int:
    import time

    return time.time_ns() // 1_000_000


class Client:
    """Tracking, registry and artifacts of one workspace, local or remote.

    Args:
        settings: Configuration; defaults to ``load_settings()`` (environment,
            ``shipyard.toml``, defaults).
        workspace: Workspace to bind to; defaults to ``settings.workspace``.
        http: An HTTP session to use instead of building one from ``settings.url``
            (tests pass one wired to an in-process server).

    The three stores are public for everything the convenience methods do not cover:
    ``client.tracking`` (TrackingStore), ``client.registry`` (RegistryStore) and
    ``client.artifacts`` (RunArtifacts).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        workspace: str | None = None,
        http: HttpSession | None = None,
    ) -> None:
        if settings is None:
            from shipyard.config import load_settings

            settings = load_settings()
        self.settings = settings
        self.workspace = workspace or settings.workspace
        self._http = http
        self._tracking: TrackingStore | None = None
        self._registry: RegistryStore | None = None
        self._artifacts: RunArtifacts | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        if self.is_remote:
            target = self.settings.url or "in-process server"
        else:
            from shipyard.store.db import mask_url

            target = mask_url(self.settings.db)
        return f"Client({target!s}, workspace={self.workspace!r})"

    @property
    def is_remote(self) -> bool:
        """True when this client talks to a platform server over HTTP."""
        return self._http is not None or self.settings.is_remote

    # -- stores, built on first use ------------------------------------------------------

    @property
    def tracking(self) -> TrackingStore:
        """The tracking store (experiments, runs, metrics) bound to this workspace."""
        if self._tracking is None:
            with self._lock:
                if self._tracking is None:
                    self._tracking = self._build_tracking()
        return self._tracking

    @property
    def registry(self) -> RegistryStore:
        """The model registry store bound to this workspace."""
        if self._registry is None:
            with self._lock:
                if self._registry is None:
                    self._registry = self._build_registry()
        return self._registry

    @property
    def artifacts(self) -> RunArtifacts:
        """Run artifacts: upload, list and download files attached to runs."""
        if self._artifacts is None:
            tracking = self.tracking
            with self._lock:
                if self._artifacts is None:
                    self._artifacts = self._build_artifacts(tracking)
        return self._artifacts

    def _session(self) -> HttpSession:
        if self._http is None:
            from shipyard._http import HttpSession

            # SHIPYARD_TOKEN, else the login `shipyard login` saved for settings.url.
            self._http = HttpSession.from_settings(self.settings, workspace=self.workspace)
        return self._http

    def _build_tracking(self) -> TrackingStore:
        if self.is_remote:
            from shipyard.tracking.http import HttpTrackingStore

            return HttpTrackingStore(self._session(), self.workspace)
        from shipyard.store.db import engine_for
        from shipyard.tracking.sql import SqlTrackingStore

        return SqlTrackingStore(
            engine_for(self.settings.db), self.workspace, artifact_root=self.settings.artifacts
        )

    def _build_registry(self) -> RegistryStore:
        if self.is_remote:
            from shipyard.registry.http import HttpRegistryStore

            return HttpRegistryStore(self._session(), self.workspace)
        from shipyard.registry.sql import SqlRegistryStore
        from shipyard.store.db import engine_for

        return SqlRegistryStore(engine_for(self.settings.db), self.workspace)

    def _build_artifacts(self, tracking: TrackingStore) -> RunArtifacts:
        if self.is_remote:
            from shipyard.tracking.run_artifacts import HttpRunArtifacts

            return HttpRunArtifacts(self._session(), self.workspace)
        from shipyard.tracking.run_artifacts import LocalRunArtifacts

        return LocalRunArtifacts(tracking, self.settings.artifacts)

    # -- experiments -----------------------------------------------------------------------

    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: Mapping[str, str] | None = None,
        description: str = "",
    ) -> str:
        """Create an experiment and return its id (as ``MlflowClient.create_experiment``).

        Raises:
            ConflictError: an experiment with this name exists in the workspace.
        """
        experiment = self.tracking.create_experiment(
            name, artifact_location=artifact_location, description=description, tags=tags
        )
        return experiment.experiment_id

    def get_experiment(self, experiment_id: str) -> Experiment:
        return self.tracking.get_experiment(experiment_id)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        """The experiment called ``name``, or None when there is none."""
        return self.tracking.get_experiment_by_name(name)

    # -- runs ------------------------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        start_time: int | None = None,
        tags: Mapping[str, str] | None = None,
        run_name: str | None = None,
        *,
        parent_run_id: str | None = None,
        user: str = "",
    ) -> Run:
        """Start a run in RUNNING state; end it with :meth:`set_terminated`."""
        return self.tracking.create_run(
            experiment_id,
            run_name=run_name,
            parent_run_id=parent_run_id,
            tags=tags,
            user=user,
            start_time=start_time,
        )

    def get_run(self, run_id: str) -> Run:
        """The run with its params, latest metrics and tags.

        Raises:
            RunNotFoundError: no such run in this workspace.
        """
        return self.tracking.get_run(run_id)

    def set_terminated(
        self, run_id: str, status: str = "FINISHED", end_time: int | None = None
    ) -> Run:
        """Mark a run FINISHED (or FAILED / KILLED) and stamp its end time."""
        return self.tracking.update_run(
            run_id, status=RunStatus(status), end_time=end_time or _now_ms()
        )

    def delete_run(self, run_id: str) -> None:
        self.tracking.delete_run(run_id)

    def log_metric(
        self,
        run_id: str,
        key: str,
        value: float,
        timestamp: int | None = None,
        step: int | None = None,
    ) -> None:
        """Write one metric point now (unbuffered; the fluent API buffers)."""
        metric = Metric(key, float(value), int(step or 0), timestamp or _now_ms())
        self.tracking.log_batch(run_id, metrics=[metric])

    def log_param(self, run_id: str, key: str, value: Any) -> str:
        """Record a param; the value is stored as ``str(value)`` and returned.

        Raises:
            ConflictError: the param was already logged with a different value.
        """
        text = str(value)
        self.tracking.log_batch(run_id, params=[Param(key, text)])
        return text

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        self.tracking.log_batch(run_id, tags={key: str(value)})

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Write metrics, params and tags in one call (one transaction locally)."""
        self.tracking.log_batch(run_id, metrics=metrics, params=params, tags=tags)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        return self.tracking.get_metric_history(run_id, key)

    def search_runs(
        self,
        experiment_ids: str | Sequence[str],
        filter_string: str = "",
        order_by: Sequence[str] | None = None,
        max_results: int = 1000,
        page_token: str | None = None,
    ) -> Page[Run]:
        """One page of runs matching ``filter_string``; see ``shipyard.tracking.search``.

        Example filter: ``"metrics.acc > 0.9 and params.lr = '0.1'"``.
        """
        ids = [experiment_ids] if isinstance(experiment_ids, str) else list(experiment_ids)
        return self.tracking.search_runs(
            ids,
            filter_string=filter_string,
            order_by=tuple(order_by or ()),
            max_results=max_results,
            page_token=page_token,
        )

    def compare_runs(
        self, run_ids: Sequence[str], *, output_format: Literal["pandas", "dict"] = "pandas"
    ) -> pd.DataFrame | dict[str, dict[str, Any]]:
        """Params and metrics of runs side by side.

        Rows are ``params.<key>`` then ``metrics.<key>`` (sorted), columns are run ids;
        a run missing a key shows None. ``output_format="dict"`` returns
        ``{row: {run_id: value}}`` without importing pandas.
        """
        runs = [self.get_run(run_id) for run_id in run_ids]
        table: dict[str, dict[str, Any]] = {}
        for kind in ("params", "metrics"):
            keys = sorted({key for run in runs for key in getattr(run.data, kind)})
            for key in keys:
                table[f"{kind}.{key}"] = {
                    run.info.run_id: getattr(run.data, kind).get(key) for run in runs
                }
        if output_format == "dict":
            return table
        if output_format != "pandas":
            raise ValueError(f"output_format must be 'pandas' or 'dict', not {output_format!r}")
        import pandas as pd

        columns = [run.info.run_id for run in runs]
        return pd.DataFrame.from_dict(table, orient="index", columns=columns).astype(object)

    # -- artifacts -------------------------------------------------------------------------

    def log_artifact(
        self, run_id: str, local_path: str | Path, artifact_path: str | None = None
    ) -> ArtifactInfo:
        """Upload one file under the run's artifacts (into folder ``artifact_path``)."""
        return self.artifacts.log_artifact(run_id, local_path, artifact_path)

    def log_artifacts(
        self, run_id: str, local_dir: str | Path, artifact_path: str | None = None
    ) -> list[ArtifactInfo]:
        """Upload every file below ``local_dir``, keeping the relative layout."""
        return self.artifacts.log_artifacts(run_id, local_dir, artifact_path)

    def list_artifacts(self, run_id: str, path: str = "") -> list[ArtifactInfo]:
        return self.artifacts.list_artifacts(run_id, path)

    def download_artifacts(
        self, run_id: str, path: str = "", dst_path: str | Path | None = None
    ) -> Path:
        """Download a file or folder of a run's artifacts, verifying each sha256."""
        return self.artifacts.download_artifacts(
            run_id, path, Path(dst_path) if dst_path is not None else None
        )

    # -- registry --------------------------------------------------------------------------

    def create_registered_model(
        self, name: str, tags: Mapping[str, str] | None = None, description: str = ""
    ) -> RegisteredModel:
        return self.registry.create_registered_model(name, description=description, tags=tags)

    def get_registered_model(self, name: str) -> RegisteredModel:
        return self.registry.get_registered_model(name)

    def get_or_create_registered_model(self, name: str) -> RegisteredModel:
        """The registered model ``name``, created when missing (safe under races)."""
        from shipyard.errors import ConflictError

        try:
            return self.registry.get_registered_model(name)
        except ModelNotFoundError:
            pass
        try:
            return self.registry.create_registered_model(name)
        except ConflictError:  # another process created it between our two calls
            return self.registry.get_registered_model(name)

    def create_model_version(
        self,
        name: str,
        source: str,
        run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        description: str = "",
        *,
        flavor: str = "",
        manifest_sha256: str = "",
    ) -> ModelVersion:
        """Register ``source`` (e.g. ``runs:/<run_id>/model``) as the next version."""
        return self.registry.create_model_version(
            name,
            source,
            run_id=run_id,
            description=description,
            flavor=flavor,
            manifest_sha256=manifest_sha256,
            tags=tags,
        )

    def get_model_version(self, name: str, version: int | str) -> ModelVersion:
        return self.registry.get_model_version(name, int(version))

    def set_registered_model_alias(self, name: str, alias: str, version: int | str) -> None:
        """Point ``name@alias`` at ``version``; a gated alias may refuse.

        Raises:
            PromotionRefusedError: the alias has a gate the version's metrics fail.
        """
        self.registry.set_alias(name, alias, int(version))

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        self.registry.delete_alias(name, alias)

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        return self.registry.get_version_by_alias(name, alias)
