"""Reference profiles: a training set summarized compactly enough to keep with a model version.

A profile keeps, per column:

- numeric, at most 1000 values: the sorted values themselves (every test is exact);
- numeric, more values: n, missing count, mean, std, min, max, the distinct count, the
  ``numpy.quantile`` at ``0, 1/K, ..., 1`` and ``K`` equal-mass atoms (the mean of each
  ``1/K`` slice of the sorted values), ``K = 1000`` by default, plus each distinct value's
  count when there are at most 100 of them;
- categorical: each category's count and the missing count (exact).

Drift against a profile uses the same tests as against raw data (Evidently's default
choice needs only n and the distinct count, both kept). Tolerances, documented and tested:

- normed Wasserstein (the default for numeric columns above 1000 values) is computed on the
  atoms; by the triangle inequality its score is within ``wasserstein_error`` (stored per
  column: the distance between the column and its atoms, over its std) of the raw score.
  For a normal column at K = 1000 that is about 1e-3, against a threshold of 0.1;
- Jensen-Shannon, chi-square and z on columns with at most 100 values, and everything on
  categorical columns, are exact;
- KS's D is within ``1/K + 1/n`` of the raw one (the reference CDF is interpolated between
  quantiles), its p-value Smirnov's asymptotic one with the true sizes; PSI's edges are the
  raw ones when ``K`` is a multiple of its bins, its reference counts interpolated;
  Jensen-Shannon over Sturges bins of a continuous column likewise.

A verdict can therefore differ from the raw data's only for a score within that tolerance
of the threshold. Profiles travel as JSON; :func:`attach_profile` stores one beside a
registered model version and tags the version with its location and sha256.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.errors import IntegrityError, InvalidArgumentError, NotFoundError, did_you_mean
from shipyard.monitoring.columns import (
    CategoricalSample,
    ColumnKind,
    ColumnSample,
    NumericSample,
    SketchSample,
    column_sample,
    table_columns,
)
from shipyard.monitoring.reference import Reference, column_kinds
from shipyard.monitoring.stats import wasserstein_distance, window_index

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from shipyard.client import Client
    from shipyard.registry.entities import ModelVersion

__all__ = [
    "DEFAULT_BINS",
    "PROFILE_SHA_TAG",
    "PROFILE_TAG",
    "RAW_LIMIT",
    "Profile",
    "attach_profile",
    "load_profile",
]

#: Quantile levels (and atoms) a numeric column keeps.
DEFAULT_BINS = 1000
#: Up to this many values, a numeric column keeps the values themselves.
RAW_LIMIT = 1000
#: Up to this many distinct values, a numeric column keeps each value's count.
DISTINCT_LIMIT = 100
#: Model version tag holding the profile's location, and the one holding its sha256.
PROFILE_TAG = "shipyard.monitoring.profile"
PROFILE_SHA_TAG = "shipyard.monitoring.profile_sha256"
FORMAT = "shipyard-profile/1"
_FILE = "profile.json"


def _atoms(values: NDArray[np.float64], bins: int) -> NDArray[np.float64]:
    """The mean of each 1/bins slice of the sorted values (fractional ranks split values)."""
    n = values.size
    integral, center = window_index(values)
    ranks = np.arange(bins + 1, dtype=np.int64) * n
    first = ranks // bins
    frac = (ranks - first * bins) / (bins * n)
    at_q = integral[first] + frac * (values[np.minimum(first, n - 1)] - center)
    return center + np.diff(at_q) * bins


def _numeric_entry(sample: NumericSample, bins: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"kind": "numeric", "n": sample.n, "n_missing": sample.n_missing}
    if sample.n == 0:
        return entry
    v = sample.values
    entry |= {
        "mean": float(np.mean(v)),
        "std": sample.std,
        "min": float(v[0]),
        "max": float(v[-1]),
        "n_unique": sample.n_unique,
    }
    if sample.n <= RAW_LIMIT:
        entry["values"] = v.tolist()
        return entry
    if sample.n_unique <= DISTINCT_LIMIT:
        values, counts = sample.distinct
        entry["distinct"] = [values.tolist(), counts.tolist()]
    atoms = _atoms(v, bins)
    error = wasserstein_distance(v, atoms, presorted=True) / max(sample.std, 1e-3)
    entry |= {
        "quantiles": np.quantile(v, np.arange(bins + 1) / bins).tolist(),
        "atoms": atoms.tolist(),
        "wasserstein_error": error,
    }
    return entry


def _label(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


def _categorical_entry(sample: CategoricalSample) -> dict[str, Any]:
    return {
        "kind": "categorical",
        "n": sample.n,
        "n_missing": sample.n_missing,
        "categories": [_label(c) for c in sample.categories.tolist()],
        "counts": sample.counts.tolist(),
    }


class Profile:
    """A reference dataset's profile: what drift and data-quality checks need, no rows.

    Example::

        profile = Profile.from_data(train_df, categorical=["city"])
        detect_drift(profile, live_df)        # as against train_df, within the tolerances
        profile.save("profile.json"); Profile.load("profile.json")

    Args:
        columns: Column name to its JSON entry (see the module docstring).
        n_rows: Rows of the profiled data.
        created_at: When the profile was made (ISO 8601, UTC).
        bins: Quantile levels per numeric column.
    """

    def __init__(
        self,
        columns: Mapping[str, Mapping[str, Any]],
        *,
        n_rows: int,
        created_at: str | None = None,
        bins: int = DEFAULT_BINS,
    ) -> None:
        self._columns = {name: dict(entry) for name, entry in columns.items()}
        self.n_rows = n_rows
        self.created_at = created_at or datetime.now(UTC).isoformat(timespec="seconds")
        self.bins = bins
        self._samples: dict[str, ColumnSample] = {}

    @classmethod
    def from_data(
        cls,
        data: Any,
        *,
        columns: Sequence[str] | None = None,
        categorical: Sequence[str] = (),
        numeric: Sequence[str] = (),
        bins: int = DEFAULT_BINS,
    ) -> Profile:
        """Profile a table (pandas DataFrame, mapping of columns, 2-D array).

        Args:
            data: The reference (training) data.
            columns: The columns to keep (default: all).
            categorical: Columns to treat as categorical whatever their dtype.
            numeric: Columns to treat as numeric whatever their dtype.
            bins: Quantile levels per numeric column (more: closer to the raw scores).

        Raises:
            InvalidArgumentError: An unknown column, a column drift cannot compare, or
                fewer than 2 bins.
        """
        if bins < 2:
            raise InvalidArgumentError(f"A profile needs at least 2 bins, got {bins}.")
        table = table_columns(data)
        names = list(table) if columns is None else list(columns)
        kinds = column_kinds(list(table), categorical=categorical, numeric=numeric)
        entries: dict[str, dict[str, Any]] = {}
        n_rows = 0
        for name in names:
            if name not in table:
                raise InvalidArgumentError(
                    f"Column '{name}' is not in the reference data." + did_you_mean(name, table),
                    hint=f"Its columns are: {', '.join(table)}.",
                )
            kind = kinds[name]
            sample = column_sample(table[name], name=name, kind=None if kind is None else kind)
            n_rows = max(n_rows, sample.n + sample.n_missing)
            if isinstance(sample, NumericSample):
                entries[name] = _numeric_entry(sample, bins)
            else:
                entries[name] = _categorical_entry(sample)
        return cls(entries, n_rows=n_rows, bins=bins)

    # -- reading ---------------------------------------------------------------------------

    @property
    def columns(self) -> tuple[str, ...]:
        """The profiled columns, in order."""
        return tuple(self._columns)

    def __contains__(self, column: object) -> bool:
        return column in self._columns

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    def summary(self, column: str) -> dict[str, Any]:
        """One column's entry (n, missing, mean/std/min/max or categories and counts)."""
        try:
            return self._columns[column]
        except KeyError:
            raise InvalidArgumentError(
                f"Column '{column}' is not in the profile." + did_you_mean(column, self._columns),
                hint=f"Its columns are: {', '.join(self._columns)}.",
            ) from None

    def kind(self, column: str) -> ColumnKind:
        """Whether ``column`` is numeric or categorical."""
        return ColumnKind(self.summary(column)["kind"])

    def sample(self, column: str) -> ColumnSample:
        """The column as a sample the detectors compare (built once)."""
        sample = self._samples.get(column)
        if sample is None:
            sample = self._samples[column] = self._build(column, self.summary(column))
        return sample

    def _build(self, name: str, e: Mapping[str, Any]) -> ColumnSample:
        if e["kind"] == "categorical":
            categories = np.empty(len(e["categories"]), dtype=object)
            categories[:] = e["categories"]
            return CategoricalSample(
                name, categories, np.asarray(e["counts"], dtype=np.int64), e["n_missing"]
            )
        if "atoms" not in e:
            return NumericSample(name, np.asarray(e.get("values", []), float), e["n_missing"])
        distinct = None
        if "distinct" in e:
            distinct = (
                np.asarray(e["distinct"][0], dtype=np.float64),
                np.asarray(e["distinct"][1], dtype=np.int64),
            )
        return SketchSample(
            name,
            np.asarray(e["atoms"], dtype=np.float64),
            np.asarray(e["quantiles"], dtype=np.float64),
            n=e["n"],
            n_missing=e["n_missing"],
            std=e["std"],
            n_unique=e["n_unique"],
            distinct=distinct,
            wasserstein_error=e["wasserstein_error"],
        )

    def reference(self, columns: Sequence[str] | None = None) -> Reference:
        """A :class:`Reference` over the profile, for ``detect_drift`` and the monitor."""
        names = self.columns if columns is None else columns
        return Reference({name: self.sample(name) for name in names})

    def tolerance(self, column: str) -> float:
        """How far the normed Wasserstein score from this profile can be from the raw one."""
        return float(self.summary(column).get("wasserstein_error", 0.0))

    # -- (de)serializing ---------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form (``Profile.from_dict`` reads it back)."""
        return {
            "format": FORMAT,
            "created_at": self.created_at,
            "n_rows": self.n_rows,
            "bins": self.bins,
            "columns": self._columns,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """Read a profile written by :meth:`to_dict`.

        Raises:
            InvalidArgumentError: Not a Shipyard profile, or a newer format.
        """
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise InvalidArgumentError(
                "This is not a Shipyard profile (format "
                f"{data.get('format') if isinstance(data, Mapping) else type(data).__name__!r}).",
                hint="Make one with Profile.from_data(df) or `shipyard monitor profile`.",
            )
        return cls(
            data["columns"],
            n_rows=int(data["n_rows"]),
            created_at=data.get("created_at"),
            bins=int(data.get("bins", DEFAULT_BINS)),
        )

    def to_json(self) -> str:
        """Compact JSON text."""
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> Profile:
        """Parse :meth:`to_json`'s output."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidArgumentError(f"The profile is not valid JSON: {exc}.") from None
        return cls.from_dict(data)

    def save(self, path: str | Path) -> Path:
        """Write the profile as JSON to ``path``."""
        target = Path(path)
        target.write_text(self.to_json(), encoding="utf-8")
        return target

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        """Read a profile saved with :meth:`save`."""
        return cls.from_json(Path(path).read_bytes())

    def __repr__(self) -> str:
        return f"Profile({len(self._columns)} columns, n_rows={self.n_rows})"


# --- with a model version ----------------------------------------------------------------------


def _version(model: str, version: int | str | None, client: Client) -> ModelVersion:
    from shipyard.models.logging import _resolve_version

    if model.startswith("models:/"):
        if version is not None:
            raise InvalidArgumentError(
                f"Give the version in the URI or in `version`, not both ({model!r}).",
            )
        return _resolve_version(client, model.removeprefix("models:/"), model)
    if version is None:
        return _resolve_version(client, f"{model}@latest", f"models:/{model}@latest")
    return client.get_model_version(model, version)


def _with_predictions(
    data: Any, predictions: Any, options: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    from shipyard.monitoring.performance import infer_task

    table = dict(table_columns(data))
    outputs = np.asarray(predictions)
    if outputs.ndim != 1 or outputs.size != len(next(iter(table.values()), outputs)):
        raise InvalidArgumentError(
            f"Expected one prediction per row, got shape {outputs.shape}.",
            hint="Pass model.predict(data) (class labels or values), not probabilities.",
        )
    table["prediction"] = outputs
    options = dict(options)
    kind = "categorical" if infer_task(outputs, outputs) == "classification" else "numeric"
    options[kind] = [*options.get(kind, ()), "prediction"]
    return table, options


def attach_profile(
    model: str,
    data: Any,
    *,
    version: int | str | None = None,
    client: Client | None = None,
    predictions: Any = None,
    **options: Any,
) -> Profile:
    """Profile ``data`` and store the profile with a registered model version.

    The JSON goes into the version's run artifacts (``monitoring/profile-v<N>.json``), or,
    for a version registered without a run, under ``monitoring/profiles/`` of the artifact
    root; the version gets the tags :data:`PROFILE_TAG` (where) and :data:`PROFILE_SHA_TAG`.

    Example::

        attach_profile("models:/churn/3", train_df, categorical=["plan"])

    Args:
        model: ``models:/name/3``, ``models:/name@alias``, or a model name (with ``version``;
            default the latest version).
        data: The training data (or a ready :class:`Profile`).
        version: The version, when ``model`` is a bare name.
        client: Client to reach the registry and artifacts; default from settings.
        predictions: The model's outputs on ``data``, profiled as the ``prediction`` column
            (classes categorical, regression values numeric) for prediction drift.
        **options: Passed to :meth:`Profile.from_data` (``categorical``, ``columns``, ...).

    Returns:
        The stored profile.

    Raises:
        ModelNotFoundError: No such model or version.
    """
    from shipyard.client import Client

    client = client or Client()
    mv = _version(model, version, client)
    if predictions is not None and not isinstance(data, Profile):
        data, options = _with_predictions(data, predictions, options)
    profile = data if isinstance(data, Profile) else Profile.from_data(data, **options)
    body = profile.to_json().encode()
    digest = hashlib.sha256(body).hexdigest()
    if mv.run_id:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"profile-v{mv.version}.json"
            path.write_bytes(body)
            client.log_artifact(mv.run_id, path, "monitoring")
        location = f"runs:/{mv.run_id}/monitoring/profile-v{mv.version}.json"
    else:
        from shipyard.store.artifacts import ArtifactStore

        store = ArtifactStore(client.settings.artifacts)
        key = f"monitoring/profiles/{client.workspace}/{mv.name}/v{mv.version}/{_FILE}"
        store.put_bytes(body, key)
        location = store.url_for(key)
    client.registry.set_model_version_tag(mv.name, mv.version, PROFILE_TAG, location)
    client.registry.set_model_version_tag(mv.name, mv.version, PROFILE_SHA_TAG, digest)
    return profile


def load_profile(
    model: str, *, version: int | str | None = None, client: Client | None = None
) -> Profile:
    """The profile stored with a model version by :func:`attach_profile`.

    Args:
        model: ``models:/name/3``, ``models:/name@alias``, or a name (with ``version``;
            default the latest version).
        version: The version, when ``model`` is a bare name.
        client: Client to reach the registry and artifacts; default from settings.

    Raises:
        NotFoundError: The version has no profile.
        IntegrityError: The stored file does not match the sha256 recorded at attach time.
    """
    from shipyard.client import Client

    client = client or Client()
    mv = _version(model, version, client)
    location = mv.tags.get(PROFILE_TAG)
    if not location:
        raise NotFoundError(
            f"Version {mv.version} of model '{mv.name}' has no reference profile.",
            hint="Attach one with shipyard.monitoring.attach_profile(model_uri, train_df) "
            "or `shipyard monitor profile`.",
        )
    if location.startswith("runs:/"):
        run_id, _, path = location.removeprefix("runs:/").partition("/")
        with tempfile.TemporaryDirectory() as tmp:
            local = client.download_artifacts(run_id, path, Path(tmp))
            body = (local if local.is_file() else local / Path(path).name).read_bytes()
    else:
        from shipyard.store.artifacts import ArtifactStore

        store, key = ArtifactStore.from_url(location.rsplit("/", 1)[0])
        body = store.read_bytes(f"{key}/{_FILE}")
    expected = mv.tags.get(PROFILE_SHA_TAG)
    if expected and hashlib.sha256(body).hexdigest() != expected:
        raise IntegrityError(
            f"The profile of {mv.name} version {mv.version} does not match its recorded sha256.",
            hint="Attach the profile again.",
        )
    return Profile.from_json(body)
