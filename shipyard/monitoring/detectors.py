"""Drift detectors: one class per test, each with one method, ``compute(reference, current)``.

Detectors are registered by name in :data:`DETECTORS`; the names are Evidently's, so
``tests={"age": "ks"}`` means the same in both tools.

===============  ============================  ==================  =========  ===========
name             score                         kinds               threshold  drift when
===============  ============================  ==================  =========  ===========
wasserstein      Wasserstein / std(reference)  numeric             0.1        score >= t
jensenshannon    Jensen-Shannon distance       both                0.1        score >= t
psi              population stability index    both                0.1        score >= t
ks               p-value of two-sample KS      numeric             0.05       p <= t
chisquare        p-value of chi-square         both                0.05       p < t
z                p-value of 2-proportion z     both, <= 2 values   0.05       p < t
===============  ============================  ==================  =========  ===========

(``<=`` for KS but ``<`` for the others is Evidently's, kept so verdicts agree.)

Default test, Evidently's ``DataDriftPreset`` rule (0.7: ``_get_default_stattest`` in
``evidently/legacy/calculations/stattests/registry.py``). With n the reference's non-missing
values and k the distinct values of reference and current together:

- n <= 1000: numeric with k > 5 -> ``ks``; otherwise ``chisquare`` if k > 2, else ``z``.
- n > 1000: numeric with k > 5 -> ``wasserstein``; otherwise ``jensenshannon``.

Jensen-Shannon on a numeric column bins it as Evidently does: one bin per distinct value
when the reference has at most 20, else Sturges bins over both samples; natural log.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from shipyard.errors import InvalidArgumentError, did_you_mean
from shipyard.monitoring import stats
from shipyard.monitoring.columns import (
    CategoricalSample,
    ColumnKind,
    ColumnSample,
    NumericSample,
    SketchSample,
    column_sample,
)

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "DETECTORS",
    "SMALL_REFERENCE",
    "ChiSquareDetector",
    "DriftDetector",
    "DriftResult",
    "JensenShannonDetector",
    "KSDetector",
    "PSIDetector",
    "WassersteinDetector",
    "ZTestDetector",
    "default_detector",
    "default_test",
    "get_detector",
    "sample_pair",
]

#: Up to this many reference values the default tests are p-value tests (KS, chi-square, z).
SMALL_REFERENCE = 1000
_FEW_VALUES = 5


@dataclass(frozen=True)
class DriftResult:
    """The verdict on one column.

    Attributes:
        column: The column name.
        test: The detector's name (``wasserstein``, ``ks``, ...).
        kind: ``numeric`` or ``categorical``.
        score: The number compared with the threshold: a distance, or a p-value.
        threshold: The threshold the score was compared with.
        drifted: Whether the column drifted.
        statistic: The distance, or the test statistic behind the p-value (KS D, chi-square,
            z).
        p_value: The p-value, for the p-value tests; ``None`` for distances.
        n_reference: Reference values compared (missing ones dropped).
        n_current: Current values compared (missing ones dropped).
        missing_reference: The share of reference values that were missing.
        missing_current: The share of current values that were missing.
    """

    column: str
    test: str
    kind: str
    score: float
    threshold: float
    drifted: bool
    statistic: float
    p_value: float | None
    n_reference: int
    n_current: int
    missing_reference: float
    missing_current: float


@runtime_checkable
class DriftDetector(Protocol):
    """Anything with a ``name``, a ``threshold`` and ``compute(reference, current)``."""

    name: ClassVar[str]
    threshold: float

    def compute(self, reference: Any, current: Any) -> DriftResult: ...


def sample_pair(
    reference: Any, current: Any, *, name: str | None = None, kind: str | None = None
) -> tuple[ColumnSample, ColumnSample]:
    """Samples of both sides of one column; the current side takes the reference's kind.

    Args:
        reference: The reference values (Series, array, sequence) or a prepared sample.
        current: The current values or sample.
        name: The column name (default: the reference Series' name, else "value").
        kind: ``numeric`` or ``categorical``; inferred from the reference if omitted.

    Returns:
        ``(reference_sample, current_sample)``, both non-empty.

    Raises:
        InvalidArgumentError: A side has no values after dropping missing ones, or the two
            sides are prepared samples of different kinds.
    """
    ref = column_sample(reference, name=name, kind=kind)
    cur = column_sample(current, name=ref.name, kind=ref.kind.value)
    if ref.kind is not cur.kind:
        raise InvalidArgumentError(
            f"Column '{ref.name}' is {ref.kind.value} in the reference but {cur.kind.value} "
            "in the current data.",
            hint="Pass both sides with the same kind.",
        )
    for side, sample in (("reference", ref), ("current", cur)):
        if sample.n == 0:
            dropped = f" after dropping {sample.n_missing} missing ones" if sample.n_missing else ""
            raise InvalidArgumentError(
                f"Column '{ref.name}' has no values in the {side} data{dropped}.",
                hint="Drift needs at least one non-missing value on each side; fill the "
                "gaps or leave the column out.",
            )
    return ref, cur


def _value_counts(ref: NumericSample, cur: NumericSample) -> tuple[NDArray, NDArray]:
    """Counts of each distinct value of either numeric sample, aligned."""
    return stats.union_counts(*ref.distinct, *cur.distinct)


def _counts(ref: ColumnSample, cur: ColumnSample) -> tuple[NDArray, NDArray]:
    if isinstance(ref, CategoricalSample) and isinstance(cur, CategoricalSample):
        _, ref_counts, cur_counts = ref.align(cur)
        return ref_counts, cur_counts
    assert isinstance(ref, NumericSample) and isinstance(cur, NumericSample)
    return _value_counts(ref, cur)


class _Detector(ABC):
    """Shared ``compute``: prepare both sides, check the kind, measure, compare."""

    name: ClassVar[str]
    kinds: ClassVar[frozenset[ColumnKind]] = frozenset(ColumnKind)
    threshold: float

    def compute(self, reference: Any, current: Any) -> DriftResult:
        """Compare one column's reference and current values.

        Args:
            reference: The reference column: a Series, array, sequence or prepared sample
                (e.g. ``Reference["age"]``).
            current: The current column, same forms; it is read with the reference's kind.

        Returns:
            The column's :class:`DriftResult`.

        Raises:
            InvalidArgumentError: A side is empty after dropping missing values, or the test
                does not apply to the column's kind.
        """
        ref, cur = sample_pair(reference, current)
        if ref.kind not in self.kinds:
            usable = sorted(n for n, cls in DETECTORS.items() if ref.kind in cls.kinds)
            raise InvalidArgumentError(
                f"Test '{self.name}' does not apply to {ref.kind.value} column '{ref.name}'.",
                hint=f"Use one of {', '.join(usable)}, or leave the test unset for the default.",
            )
        score, statistic, p_value = self._measure(ref, cur)
        return DriftResult(
            column=ref.name,
            test=self.name,
            kind=ref.kind.value,
            score=score,
            threshold=self.threshold,
            drifted=self._drifted(score),
            statistic=statistic,
            p_value=p_value,
            n_reference=ref.n,
            n_current=cur.n,
            missing_reference=ref.missing_share,
            missing_current=cur.missing_share,
        )

    def _drifted(self, score: float) -> bool:
        return bool(score >= self.threshold)  # distances; p-value tests override

    @abstractmethod
    def _measure(self, ref: Any, cur: Any) -> tuple[float, float, float | None]: ...


@dataclass(frozen=True)
class WassersteinDetector(_Detector):
    """Wasserstein distance normed by the reference's std; the default for numeric columns
    with more than 1000 reference values.

    Example::

        WassersteinDetector(threshold=0.2).compute(train["age"], live["age"])
    """

    threshold: float = 0.1
    name: ClassVar[str] = "wasserstein"
    kinds: ClassVar[frozenset[ColumnKind]] = frozenset({ColumnKind.NUMERIC})

    def _measure(self, ref: NumericSample, cur: NumericSample) -> tuple[float, float, None]:
        score = stats.wasserstein_normed(
            ref.values,
            cur.values,
            presorted=True,
            reference_std=ref.std,
            reference_index=ref.window_index,
        )
        return score, score, None


@dataclass(frozen=True)
class JensenShannonDetector(_Detector):
    """Jensen-Shannon distance; the default for categorical columns (and numeric ones with
    at most 5 values) with more than 1000 reference values.

    Attributes:
        threshold: Drift when the distance is at least this.
        base: Logarithm base; ``None`` (natural log) is Evidently's.
    """

    threshold: float = 0.1
    base: float | None = None
    name: ClassVar[str] = "jensenshannon"

    def _measure(self, ref: ColumnSample, cur: ColumnSample) -> tuple[float, float, None]:
        if isinstance(ref, NumericSample) and isinstance(cur, NumericSample):
            if ref.n_unique > 20:  # Evidently's binning, as stats.histogram_counts
                edges = stats.sturges_edges(
                    min(ref.minimum, cur.minimum), max(ref.maximum, cur.maximum), ref.n + cur.n
                )
                ref_counts, cur_counts = ref.histogram(edges), cur.histogram(edges)
            else:
                ref_counts, cur_counts = _value_counts(ref, cur)
        else:
            ref_counts, cur_counts = _counts(ref, cur)
        score = stats.jensen_shannon(ref_counts, cur_counts, base=self.base)
        return score, score, None


@dataclass(frozen=True)
class PSIDetector(_Detector):
    """Population stability index: numeric columns over reference-quantile bins,
    categorical ones over categories; empty bins get ``epsilon``.

    Attributes:
        threshold: Drift when PSI is at least this (0.1: moderate, 0.25: major).
        bins: Quantile bins for numeric columns.
        epsilon: The share an empty bin gets.
    """

    threshold: float = 0.1
    bins: int = 10
    epsilon: float = stats.PSI_EPSILON
    name: ClassVar[str] = "psi"

    def _measure(self, ref: ColumnSample, cur: ColumnSample) -> tuple[float, float, None]:
        if isinstance(ref, NumericSample) and isinstance(cur, NumericSample):
            edges = ref.quantile_edges(self.bins)
            score = stats.psi_counts(
                ref.bin_counts(edges), cur.bin_counts(edges), epsilon=self.epsilon
            )
        else:
            ref_counts, cur_counts = _counts(ref, cur)
            score = stats.psi_counts(ref_counts, cur_counts, epsilon=self.epsilon)
        return score, score, None


class _PValueDetector(_Detector):
    def _drifted(self, score: float) -> bool:
        return bool(score < self.threshold)


@dataclass(frozen=True)
class KSDetector(_PValueDetector):
    """Two-sample Kolmogorov-Smirnov test; the default for numeric columns with more than 5
    values and at most 1000 reference values. Drift when ``p <= threshold``."""

    threshold: float = 0.05
    name: ClassVar[str] = "ks"
    kinds: ClassVar[frozenset[ColumnKind]] = frozenset({ColumnKind.NUMERIC})

    def _measure(self, ref: NumericSample, cur: NumericSample) -> tuple[float, float, float]:
        if isinstance(ref, SketchSample):
            statistic, p_value = _ks_sketch(ref, cur)
        else:
            statistic, p_value = stats.ks_2samp(ref.values, cur.values, presorted=True)
        return p_value, statistic, p_value

    def _drifted(self, score: float) -> bool:
        return bool(score <= self.threshold)


def _ks_sketch(ref: SketchSample, cur: NumericSample) -> tuple[float, float]:
    """KS against a profile: the reference CDF from its quantiles (within 1/K of the
    column's), the current one exact; Smirnov's asymptotic p-value with the true sizes."""
    import scipy.stats

    xs, counts = cur.distinct
    cdf_cur = np.cumsum(counts) / cur.n
    before = np.concatenate(([0.0], cdf_cur[:-1]))
    d = max(
        float(np.max(np.abs(ref.cdf(xs) - cdf_cur))),
        float(np.max(np.abs(ref.cdf(xs, left=True) - before))),
    )
    en = ref.n * cur.n / (ref.n + cur.n)
    return d, float(np.clip(scipy.stats.kstwo.sf(d, np.round(en)), 0.0, 1.0))


@dataclass(frozen=True)
class ChiSquareDetector(_PValueDetector):
    """Chi-square test of the current counts against the reference's shares; the default for
    columns with 3 to 5 values (any number, if categorical) and at most 1000 reference values.
    A category the reference never saw makes the p-value 0."""

    threshold: float = 0.05
    name: ClassVar[str] = "chisquare"

    def _measure(self, ref: ColumnSample, cur: ColumnSample) -> tuple[float, float, float]:
        statistic, p_value = stats.chi_square(*_counts(ref, cur))
        return p_value, statistic, p_value


@dataclass(frozen=True)
class ZTestDetector(_PValueDetector):
    """Two-proportion z-test for binary columns; the default for columns with at most two
    values and at most 1000 reference values."""

    threshold: float = 0.05
    name: ClassVar[str] = "z"

    def _measure(self, ref: ColumnSample, cur: ColumnSample) -> tuple[float, float, float]:
        statistic, p_value = stats.z_test_proportions(*_counts(ref, cur))
        return p_value, statistic, p_value


#: Detector classes by name (Evidently's stattest names).
DETECTORS: Mapping[str, type[_Detector]] = {
    cls.name: cls
    for cls in (
        ChiSquareDetector,
        JensenShannonDetector,
        KSDetector,
        PSIDetector,
        WassersteinDetector,
        ZTestDetector,
    )
}


def get_detector(name: str, threshold: float | None = None) -> DriftDetector:
    """A detector by name.

    Args:
        name: One of :data:`DETECTORS`.
        threshold: Overrides the test's default threshold.

    Returns:
        The detector.

    Raises:
        InvalidArgumentError: An unknown name.
    """
    try:
        cls = DETECTORS[name]
    except KeyError:
        raise InvalidArgumentError(
            f"Unknown drift test '{name}'." + did_you_mean(name, DETECTORS),
            hint=f"Available tests: {', '.join(sorted(DETECTORS))}.",
        ) from None
    detector = cls() if threshold is None else cls(threshold=threshold)  # type: ignore[call-arg]
    return detector  # type: ignore[return-value]


def default_test(kind: ColumnKind | str, n_reference: int, n_unique: int) -> str:
    """The test Evidently's DataDriftPreset picks for a column (see the module docstring).

    Args:
        kind: ``numeric`` or ``categorical``.
        n_reference: Non-missing reference values.
        n_unique: Distinct values of reference and current together.

    Returns:
        The test's name in :data:`DETECTORS`.
    """
    numeric = ColumnKind(kind) is ColumnKind.NUMERIC and n_unique > _FEW_VALUES
    if n_reference <= SMALL_REFERENCE:
        if numeric:
            return "ks"
        return "chisquare" if n_unique > 2 else "z"
    return "wasserstein" if numeric else "jensenshannon"


def _union_unique(ref: ColumnSample, cur: ColumnSample) -> int:
    if isinstance(ref, CategoricalSample) and isinstance(cur, CategoricalSample):
        return int(ref.align(cur)[0].size)
    assert isinstance(ref, NumericSample) and isinstance(cur, NumericSample)
    if max(ref.n_unique, cur.n_unique) > _FEW_VALUES:
        return max(ref.n_unique, cur.n_unique)  # enough to decide: the union is larger still
    return int(np.union1d(ref.distinct[0], cur.distinct[0]).size)


def default_detector(
    reference: ColumnSample, current: ColumnSample, threshold: float | None = None
) -> DriftDetector:
    """The default detector for this pair of samples (Evidently's rule).

    Args:
        reference: The reference column's sample.
        current: The current column's sample.
        threshold: Overrides the chosen test's default threshold.

    Returns:
        The detector to use.
    """
    name = default_test(reference.kind, reference.n, _union_unique(reference, current))
    return get_detector(name, threshold)
