"""``RetrievalJob``: a training set computed on first use, and saved as a tracked dataset.

``save_dataset`` writes Parquet plus a ``.sha256`` file next to it and records the file as
an input of a tracking run (the given run, or the active one), with the feature
references it holds in the run's tags, so a model's lineage reaches its features.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from shipyard.config import Settings
    from shipyard.tracking.entities import Dataset

logger = logging.getLogger(__name__)

DATASETS_PREFIX = "features/datasets"
LINEAGE_TAG = "shipyard.features"


class RetrievalJob:
    """The result of ``get_historical_features``; computed once, on first access."""

    def __init__(
        self,
        compute: Callable[[], pa.Table],
        feature_refs: list[str],
        *,
        settings: Settings | None = None,
        workspace: str | None = None,
    ) -> None:
        self._compute = compute
        self._table: pa.Table | None = None
        self.feature_refs = feature_refs
        self._settings = settings
        self._workspace = workspace

    def to_arrow(self) -> pa.Table:
        """The training set as an Arrow table (entity columns, then features)."""
        if self._table is None:
            self._table = self._compute()
        return self._table

    def to_df(self) -> pd.DataFrame:
        """The training set as a pandas DataFrame."""
        return self.to_arrow().to_pandas()

    def _location(self, path_or_name: str) -> str:
        if "/" in path_or_name or path_or_name.endswith(".parquet") or "\\" in path_or_name:
            return path_or_name
        root = self._settings.artifacts if self._settings else "."
        return f"{root.rstrip('/')}/{DATASETS_PREFIX}/{path_or_name}.parquet"

    def save_dataset(
        self, path_or_name: str, run_id: str | None = None, *, context: str = "training"
    ) -> Dataset:
        """Write the training set as Parquet (plus ``<file>.sha256``) and log it as a
        dataset input of ``run_id`` or of the active run, when there is one.

        Args:
            path_or_name: A file path or URL, or a bare name stored under the artifact
                root at ``features/datasets/<name>.parquet``.
            run_id: The run that consumes the dataset; default the active run.
            context: What the run uses it for.

        Returns:
            The :class:`~shipyard.tracking.entities.Dataset` (digest, schema, row count).
        """
        import fsspec
        import pyarrow.parquet as pq

        from shipyard.tracking.datasets import dataset_from
        from shipyard.tracking.entities import DatasetInput

        location = self._location(path_or_name)
        fs, path = fsspec.core.url_to_fs(location)
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        if parent:
            fs.makedirs(parent, exist_ok=True)
        with fs.open(path, "wb") as handle:
            pq.write_table(self.to_arrow(), handle)
        digest = hashlib.sha256()
        with fs.open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        file_name = path.rsplit("/", 1)[-1]
        with fs.open(path + ".sha256", "w") as handle:
            handle.write(f"{digest.hexdigest()}  {file_name}\n")
        name = file_name.removesuffix(".parquet")
        dataset = dataset_from(location, name=name)
        target = self._target_run(run_id)
        if target is not None:
            client, rid = target
            client.tracking.log_inputs(rid, [DatasetInput(dataset, context)])
            client.set_tag(rid, f"{LINEAGE_TAG}.{name}", ",".join(self.feature_refs)[:5000])
        return dataset

    def _target_run(self, run_id: str | None) -> tuple[Any, str] | None:
        from shipyard.tracking import fluent

        active = fluent.active_run()
        if run_id is None:
            return (active.client, active.run_id) if active is not None else None
        if active is not None and active.run_id == run_id:
            return active.client, run_id
        from shipyard.client import Client

        return Client(self._settings, workspace=self._workspace), run_id


__all__ = ["RetrievalJob"]
