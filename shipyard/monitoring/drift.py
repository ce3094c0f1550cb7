"""Drift of a whole dataset: every column's verdict, and the share of drifted columns.

``detect_drift(reference, current)`` runs each column's detector (the default one, Evidently's
rule, unless ``tests`` names another) and calls the dataset drifted when the share of drifted
columns reaches ``drift_share`` (0.5, Evidently's default). Columns are prepared one at a
time, so a one-off comparison of two large frames holds at most one column's sorted copies;
pass a :class:`~shipyard.monitoring.reference.Reference` to reuse a prepared reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shipyard.errors import InvalidArgumentError, did_you_mean
from shipyard.monitoring.columns import ColumnKind, column_sample, table_columns
from shipyard.monitoring.detectors import (
    DriftDetector,
    DriftResult,
    default_detector,
    get_detector,
    sample_pair,
)
from shipyard.monitoring.profiles import Profile
from shipyard.monitoring.reference import Reference, column_kinds

__all__ = [
    "DEFAULT_DRIFT_SHARE",
    "DatasetDrift",
    "column_drift",
    "detect_drift",
    "prediction_drift",
]

#: The dataset drifts when at least this share of its columns drift (Evidently's default).
DEFAULT_DRIFT_SHARE = 0.5


@dataclass(frozen=True)
class DatasetDrift:
    """Every column's verdict and the dataset's.

    Attributes:
        columns: One result per column, in the reference's column order.
        drift_share: The share of drifted columns at which the dataset counts as drifted.
    """

    columns: tuple[DriftResult, ...]
    drift_share: float = DEFAULT_DRIFT_SHARE

    @property
    def n_drifted(self) -> int:
        """How many columns drifted."""
        return sum(result.drifted for result in self.columns)

    @property
    def share_drifted(self) -> float:
        """The share of columns that drifted (0 for no columns)."""
        return self.n_drifted / len(self.columns) if self.columns else 0.0

    @property
    def drifted(self) -> bool:
        """Whether the share of drifted columns reached ``drift_share``."""
        return bool(self.columns) and self.share_drifted >= self.drift_share

    @property
    def drifted_columns(self) -> tuple[str, ...]:
        """The names of the columns that drifted."""
        return tuple(result.column for result in self.columns if result.drifted)

    def __getitem__(self, column: str) -> DriftResult:
        for result in self.columns:
            if result.column == column:
                return result
        names = [result.column for result in self.columns]
        raise KeyError(f"No drift result for column '{column}'.{did_you_mean(column, names)}")


def _resolve_detector(
    spec: str | DriftDetector | None, threshold: float | None
) -> DriftDetector | None:
    if spec is None:
        return None
    if isinstance(spec, str):
        return get_detector(spec, threshold)
    if threshold is not None and threshold != spec.threshold:
        return _rethreshold(spec, threshold)
    return spec


def _rethreshold(detector: DriftDetector, threshold: float) -> DriftDetector:
    import dataclasses

    if dataclasses.is_dataclass(detector):
        return dataclasses.replace(detector, threshold=threshold)  # type: ignore[type-var]
    raise InvalidArgumentError(
        f"Cannot change the threshold of detector {detector!r}.",
        hint="Give the detector its threshold yourself, and no entry in `thresholds`.",
    )


def _check_names(kind: str, names: Mapping[str, Any] | None, known: Sequence[str]) -> None:
    for name in names or {}:
        if name not in known:
            raise InvalidArgumentError(
                f"`{kind}` names column '{name}', which is not compared."
                + did_you_mean(name, known),
                hint=f"Compared columns: {', '.join(known)}.",
            )


def column_drift(
    reference: Any,
    current: Any,
    *,
    test: str | DriftDetector | None = None,
    threshold: float | None = None,
    kind: str | None = None,
    name: str | None = None,
) -> DriftResult:
    """Drift of a single column.

    Args:
        reference: The reference values (Series, array, sequence, or a prepared sample).
        current: The current values, read with the reference's kind.
        test: A detector name or instance; default: Evidently's rule.
        threshold: Overrides the test's threshold.
        kind: ``numeric`` or ``categorical``; inferred from the reference's dtype if omitted.
        name: The column name in the result.

    Returns:
        The column's :class:`DriftResult`.

    Raises:
        InvalidArgumentError: An empty side, an unknown test, or a test that does not apply.
    """
    ref, cur = sample_pair(reference, current, name=name, kind=kind)
    detector = _resolve_detector(test, threshold) or default_detector(ref, cur, threshold)
    return detector.compute(ref, cur)


def detect_drift(
    reference: Reference | Any,
    current: Any,
    *,
    columns: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
    numeric: Sequence[str] = (),
    tests: Mapping[str, str | DriftDetector] | None = None,
    thresholds: Mapping[str, float] | None = None,
    drift_share: float = DEFAULT_DRIFT_SHARE,
) -> DatasetDrift:
    """Compare every column of ``current`` with ``reference``.

    Example::

        report = detect_drift(train_df, live_df, thresholds={"age": 0.2})
        report.drifted, report.share_drifted, report["age"].score

    Args:
        reference: A :class:`Reference`, a :class:`~shipyard.monitoring.profiles.Profile`
            (see its tolerances), or a table (pandas DataFrame, mapping of columns, 2-D
            array) to prepare column by column.
        current: A table with (at least) the compared columns.
        columns: The columns to compare (default: every reference column).
        categorical: Columns to treat as categorical (tables only; a Reference already knows).
        numeric: Columns to treat as numeric (tables only).
        tests: Column to detector name or instance, overriding the default choice.
        thresholds: Column to threshold, overriding the test's default.
        drift_share: The dataset drifts when at least this share of columns drift.

    Returns:
        The :class:`DatasetDrift`.

    Raises:
        InvalidArgumentError: Unknown columns, a column missing from ``current``, a column
            with no values on one side, an unknown test, or a bad ``drift_share``.
    """
    if not 0.0 < drift_share <= 1.0:
        raise InvalidArgumentError(
            f"drift_share must be in (0, 1], got {drift_share}.",
            hint="0.5 means: the dataset drifts when half of its columns drift.",
        )
    current_table = table_columns(current)
    if isinstance(reference, Profile):
        reference = reference.reference(columns)
    if isinstance(reference, Reference):
        if categorical or numeric:
            raise InvalidArgumentError(
                "`categorical`/`numeric` apply to a table, not to a prepared Reference.",
                hint="Declare the kinds in Reference.from_data(...).",
            )
        names = list(reference.columns) if columns is None else list(columns)
        kinds: Mapping[str, ColumnKind | None] = {}
        reference_table: Mapping[str, Any] = {}
        for name in names:
            _ = reference[name]  # raises a clear error for an unknown column
    else:
        reference_table = table_columns(reference)
        kinds = column_kinds(list(reference_table), categorical=categorical, numeric=numeric)
        names = list(reference_table) if columns is None else list(columns)
        for name in names:
            if name not in reference_table:
                raise InvalidArgumentError(
                    f"Column '{name}' is not in the reference data."
                    + did_you_mean(name, reference_table),
                    hint=f"Its columns are: {', '.join(reference_table)}.",
                )
    _check_names("tests", tests, names)
    _check_names("thresholds", thresholds, names)
    missing = [name for name in names if name not in current_table]
    if missing:
        raise InvalidArgumentError(
            f"Columns {missing} are missing from the current data."
            + did_you_mean(missing[0], current_table),
            hint="Pass `columns=` to compare a subset.",
        )
    tests = tests or {}
    thresholds = thresholds or {}
    results = []
    for name in names:
        if isinstance(reference, Reference):
            ref = reference[name]
        else:
            kind = kinds.get(name)
            ref = column_sample(
                reference_table[name], name=name, kind=None if kind is None else kind.value
            )
        results.append(
            column_drift(
                ref,
                current_table[name],
                test=tests.get(name),
                threshold=thresholds.get(name),
                name=name,
            )
        )
        del ref
    return DatasetDrift(tuple(results), drift_share)


def prediction_drift(
    reference: Any,
    current: Any,
    *,
    column: str = "prediction",
    kind: str | None = None,
    test: str | DriftDetector | None = None,
    threshold: float | None = None,
) -> DriftResult:
    """Drift of a model's output: the prediction column of a table, or an array of outputs.

    Regression outputs (floats) are numeric, class labels categorical, unless ``kind`` says
    otherwise; the test is chosen as for any column.

    Args:
        reference: A :class:`Reference` or table holding ``column``, or the outputs themselves.
        current: The same for the current window.
        column: The output column's name.
        kind: ``numeric`` or ``categorical``; inferred from the dtype if omitted.
        test: A detector name or instance; default: Evidently's rule.
        threshold: Overrides the test's threshold.

    Returns:
        The output column's :class:`DriftResult`.
    """

    if isinstance(reference, Profile):
        reference = reference.reference([column])

    def outputs(data: Any, side: str) -> Any:
        if isinstance(data, Reference):
            return data[column]
        if isinstance(data, Mapping) or hasattr(data, "columns"):
            table = table_columns(data)
            if column not in table:
                raise InvalidArgumentError(
                    f"The {side} data has no prediction column '{column}'."
                    + did_you_mean(column, table),
                    hint="Pass `column=` with the name of the model output column.",
                )
            return table[column]
        return data

    ref = outputs(reference, "reference")
    if kind is not None and isinstance(reference, Reference) and ref.kind.value != kind:
        raise InvalidArgumentError(
            f"Column '{column}' is {ref.kind.value} in the reference, not {kind}.",
            hint="Leave `kind` unset for a prepared Reference.",
        )
    return column_drift(
        ref,
        outputs(current, "current"),
        test=test,
        threshold=threshold,
        kind=None if isinstance(reference, Reference) else kind,
        name=column,
    )
