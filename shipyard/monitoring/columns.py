"""Column samples: one column's values, cleaned and summarized once for the drift statistics.

A numeric column becomes a :class:`NumericSample` (its finite values, sorted, plus the
standard deviation and running CDF integral computed on first use); a categorical column
becomes a :class:`CategoricalSample` (each category and its count). Missing values (NaN,
None, and for numeric columns also +-inf, as Evidently drops them) are removed here, and the
share removed is kept for the drift result.

The kind of a column, unless given, follows Evidently's inference so that the same data gets
the same tests: float columns are numeric; integer columns with at most 10 distinct values
are categorical, other integer columns numeric; bool, category, string and object columns
are categorical. (Evidently calls a string column whose values are mostly distinct "text";
Shipyard has no text drift and compares it as categorical.)
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.errors import InvalidArgumentError
from shipyard.monitoring.stats import (
    WindowIndex,
    bin_counts,
    histogram_sorted,
    quantile_edges,
    window_index,
)

if TYPE_CHECKING:
    import pandas as pd
    from numpy.typing import NDArray

__all__ = [
    "INTEGER_CATEGORY_LIMIT",
    "CategoricalSample",
    "ColumnKind",
    "ColumnSample",
    "NumericSample",
    "SketchSample",
    "column_sample",
    "infer_kind",
    "table_columns",
]

#: An integer column with at most this many distinct values is categorical (Evidently's rule).
INTEGER_CATEGORY_LIMIT = 10
_DICT_LOOKUP_MAX = 256


class ColumnKind(StrEnum):
    """How a column's values are compared: as numbers or as category labels."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


class NumericSample:
    """A numeric column's finite values, sorted ascending, with what the statistics reuse.

    Treat it as immutable: ``values`` is shared, never copied, by every comparison.

    Args:
        name: The column name, used in results and messages.
        values: Finite float64 values, sorted ascending.
        n_missing: How many values (NaN, +-inf) were dropped before sorting.
    """

    kind = ColumnKind.NUMERIC

    def __init__(self, name: str, values: NDArray[np.float64], n_missing: int = 0) -> None:
        self.name = name
        self.values = values
        self.n_missing = n_missing
        self._edges: dict[int, NDArray[np.float64]] = {}

    @property
    def n(self) -> int:
        """How many values remain after dropping the missing ones."""
        return int(self.values.size)

    @property
    def missing_share(self) -> float:
        """The share of the column's values that were missing."""
        total = self.n + self.n_missing
        return self.n_missing / total if total else 0.0

    @cached_property
    def std(self) -> float:
        """Population standard deviation (ddof 0)."""
        return float(np.std(self.values))

    @cached_property
    def window_index(self) -> WindowIndex:
        """What comparing a much smaller window needs (see ``stats.window_index``)."""
        return window_index(self.values)

    def quantile_edges(self, bins: int) -> NDArray[np.float64]:
        """PSI's inner bin edges for ``bins`` bins (computed once per ``bins``)."""
        edges = self._edges.get(bins)
        if edges is None:
            edges = self._edges[bins] = quantile_edges(self.values, bins, presorted=True)
        return edges

    @property
    def minimum(self) -> float:
        """The smallest value."""
        return float(self.values[0])

    @property
    def maximum(self) -> float:
        """The largest value."""
        return float(self.values[-1])

    def histogram(self, edges: NDArray[np.float64]) -> NDArray[np.float64]:
        """Counts over ``edges`` as ``numpy.histogram`` makes them (last bin closed)."""
        return histogram_sorted(self.values, edges).astype(np.float64)

    def bin_counts(self, inner_edges: NDArray[np.float64]) -> NDArray[np.float64]:
        """Counts of the bins ``[e_{i-1}, e_i)`` with open outer bins."""
        return bin_counts(self.values, inner_edges).astype(np.float64)

    @cached_property
    def distinct(self) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """The distinct values, ascending, and how often each occurs."""
        v = self.values
        starts = np.flatnonzero(np.concatenate(([True], v[1:] != v[:-1])))
        counts = np.diff(np.concatenate((starts, [v.size]))).astype(np.int64)
        return v[starts], counts

    @cached_property
    def n_unique(self) -> int:
        """How many distinct values."""
        v = self.values
        return int(np.count_nonzero(v[1:] != v[:-1])) + 1 if v.size else 0

    def __repr__(self) -> str:
        return f"NumericSample({self.name!r}, n={self.n}, missing={self.n_missing})"


class SketchSample(NumericSample):
    """A numeric column known only by its profile: a quantile sketch instead of its values.

    ``values`` holds ``K`` equal-mass atoms (the mean of each of the ``K`` equal-count
    slices of the sorted column), so Wasserstein works unchanged on them; the true size,
    std, distinct count and extremes are the column's own. Counts in bins and the CDF come
    from the ``K + 1`` stored quantiles (exact when the column had few distinct values and
    the profile kept them). Built by :mod:`shipyard.monitoring.profiles`.

    Args:
        name: The column name.
        atoms: ``K`` atoms, ascending.
        quantiles: ``numpy.quantile`` of the column at ``0, 1/K, ..., 1``.
        n: Non-missing values of the column.
        n_missing: Missing values of the column.
        std: The column's population std.
        n_unique: The column's distinct values.
        distinct: Its distinct values and counts, when the profile kept them.
        wasserstein_error: Wasserstein distance between the column and its atoms: a bound
            on how far any Wasserstein distance from the atoms is from the true one.
    """

    def __init__(
        self,
        name: str,
        atoms: NDArray[np.float64],
        quantiles: NDArray[np.float64],
        *,
        n: int,
        n_missing: int,
        std: float,
        n_unique: int,
        distinct: tuple[NDArray[np.float64], NDArray[np.int64]] | None = None,
        wasserstein_error: float = 0.0,
    ) -> None:
        super().__init__(name, atoms, n_missing)
        self.quantiles = quantiles
        self._n = n
        self.wasserstein_error = wasserstein_error
        self.__dict__["std"] = std
        self.__dict__["n_unique"] = n_unique
        if distinct is not None:
            self.__dict__["distinct"] = distinct
        k = quantiles.size - 1
        levels, first = np.unique(quantiles, return_index=True)
        last = np.concatenate((first[1:] - 1, [k]))
        self._levels = levels
        self._low = first / k  # CDF just below each level
        self._high = last / k  # CDF at each level

    @property
    def n(self) -> int:
        return self._n

    @property
    def minimum(self) -> float:
        return float(self.quantiles[0])

    @property
    def maximum(self) -> float:
        return float(self.quantiles[-1])

    @cached_property
    def distinct(self) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        raise InvalidArgumentError(
            f"The profile of column '{self.name}' keeps no distinct values "
            f"({self.n_unique} of them).",
            hint="Compare it with a test that needs no per-value counts (wasserstein, ks, "
            "psi, jensenshannon), or use the raw reference data.",
        )

    def cdf(self, x: NDArray[np.float64], *, left: bool = False) -> NDArray[np.float64]:
        """The share of values ``<= x`` (``< x`` when ``left``), linear between quantiles."""
        x = np.asarray(x, dtype=np.float64)
        if "distinct" in self.__dict__:
            values, counts = self.__dict__["distinct"]
            cum = np.concatenate(([0], np.cumsum(counts))) / self._n
            return cum[np.searchsorted(values, x, side="left" if left else "right")]
        levels = self._levels
        j = np.searchsorted(levels, x, side="left" if left else "right") - 1
        inside = (j >= 0) & (j < levels.size - 1)
        jj = np.clip(j, 0, max(levels.size - 2, 0))
        out = np.where(j >= levels.size - 1, 1.0, 0.0)
        if levels.size > 1:
            lo, hi = levels[jj], levels[jj + 1]
            frac = (x - lo) / (hi - lo)
            value = self._high[jj] + frac * (self._low[jj + 1] - self._high[jj])
            out = np.where(inside, value, out)
        if left:  # at a level itself, values < x stop just below it
            at = np.searchsorted(levels, x, side="left")
            hit = (at < levels.size) & (levels[np.minimum(at, levels.size - 1)] == x)
            out = np.where(hit, self._low[np.minimum(at, levels.size - 1)], out)
        return out

    def histogram(self, edges: NDArray[np.float64]) -> NDArray[np.float64]:
        cum = self.cdf(edges, left=True)
        cum[-1] = self.cdf(edges[-1:])[0]
        return np.diff(cum) * self._n

    def bin_counts(self, inner_edges: NDArray[np.float64]) -> NDArray[np.float64]:
        cum = np.concatenate(([0.0], self.cdf(inner_edges, left=True), [1.0]))
        return np.diff(cum) * self._n

    def quantile_edges(self, bins: int) -> NDArray[np.float64]:
        k = self.quantiles.size - 1
        if bins < 2:
            raise InvalidArgumentError(f"PSI needs at least 2 bins, got {bins}.")
        if k % bins == 0:
            return np.unique(self.quantiles[np.arange(1, bins) * (k // bins)])
        levels = np.arange(1, bins) / bins
        return np.unique(np.interp(levels, np.arange(k + 1) / k, self.quantiles))

    def __repr__(self) -> str:
        return f"SketchSample({self.name!r}, n={self.n}, atoms={self.values.size})"


class CategoricalSample:
    """A categorical column as its categories and their counts (zero counts left out).

    Args:
        name: The column name, used in results and messages.
        categories: The distinct labels, any hashable dtype.
        counts: How often each label occurs, aligned with ``categories``.
        n_missing: How many values (None, NaN) were dropped.
    """

    kind = ColumnKind.CATEGORICAL

    def __init__(
        self, name: str, categories: NDArray[Any], counts: NDArray[np.int64], n_missing: int = 0
    ) -> None:
        self.name = name
        self.categories = categories
        self.counts = counts
        self.n_missing = n_missing

    @property
    def n(self) -> int:
        """How many values remain after dropping the missing ones."""
        return int(self.counts.sum())

    @property
    def missing_share(self) -> float:
        """The share of the column's values that were missing."""
        total = self.n + self.n_missing
        return self.n_missing / total if total else 0.0

    @property
    def n_unique(self) -> int:
        """How many distinct categories."""
        return int(self.categories.size)

    @cached_property
    def _index(self) -> pd.Index:
        import pandas as pd

        return pd.Index(self.categories)

    @cached_property
    def _positions(self) -> dict[Any, int]:
        return {label: i for i, label in enumerate(self.categories.tolist())}

    def _locate(self, labels: NDArray[Any]) -> NDArray[np.intp]:
        """Each label's position among this sample's categories, -1 for a new one."""
        if labels.size <= _DICT_LOOKUP_MAX:  # a loop over categories (not rows) beats pandas
            positions = self._positions
            return np.array([positions.get(x, -1) for x in labels.tolist()], dtype=np.intp)
        return self._index.get_indexer(labels)

    def align(
        self, other: CategoricalSample
    ) -> tuple[NDArray[Any], NDArray[np.int64], NDArray[np.int64]]:
        """Both samples' counts over the union of their categories.

        Args:
            other: The sample to compare with (usually the current window).

        Returns:
            ``(labels, self_counts, other_counts)``: this sample's categories first, then the
            ones only ``other`` has, in its order.
        """
        position = self._locate(other.categories)
        new = position < 0
        n_new = int(np.count_nonzero(new))
        size = self.categories.size
        mine = np.concatenate((self.counts, np.zeros(n_new, dtype=np.int64)))
        theirs = np.zeros(size + n_new, dtype=np.int64)
        theirs[position[~new]] = other.counts[~new]
        theirs[size:] = other.counts[new]
        if n_new:
            return np.concatenate((self.categories, other.categories[new])), mine, theirs
        return self.categories, mine, theirs

    def __repr__(self) -> str:
        return (
            f"CategoricalSample({self.name!r}, n={self.n}, categories={self.n_unique}, "
            f"missing={self.n_missing})"
        )


ColumnSample = NumericSample | CategoricalSample


# --- building samples -----------------------------------------------------------------------


def infer_kind(values: Any) -> ColumnKind:
    """The kind Evidently would give a column of this dtype (see the module docstring).

    Args:
        values: A pandas Series, numpy array or sequence.

    Returns:
        ``ColumnKind.NUMERIC`` or ``ColumnKind.CATEGORICAL``.

    Raises:
        InvalidArgumentError: A datetime, timedelta or complex column.
    """
    dtype = getattr(values, "dtype", None)
    if dtype is None:
        values = np.asarray(values)
        dtype = values.dtype
    name = str(getattr(dtype, "name", dtype))
    if name in ("bool", "boolean", "category", "object", "str", "string") or name.startswith(
        ("string", "str", "<U", "|S")
    ):
        return ColumnKind.CATEGORICAL
    kind = getattr(dtype, "kind", "O")
    if kind == "f" or name.startswith(("float", "Float")):
        return ColumnKind.NUMERIC
    if kind in "iu" or name.startswith(("int", "Int", "uint", "UInt")):
        import pandas as pd

        distinct = pd.Series(values).nunique(dropna=True)
        return ColumnKind.CATEGORICAL if distinct <= INTEGER_CATEGORY_LIMIT else ColumnKind.NUMERIC
    if kind in "bUSO":
        return ColumnKind.CATEGORICAL
    raise InvalidArgumentError(
        f"Cannot compare a column of dtype {name} for drift.",
        hint="Convert it to numbers or category labels first (for timestamps, e.g. to "
        "hour of day), or leave the column out.",
    )


def _float_values(values: Any) -> NDArray[np.float64]:
    if getattr(values, "dtype", None) == np.float64 and hasattr(values, "to_numpy"):
        return values.to_numpy()  # a plain float64 Series: a view, no copy
    to_numpy = getattr(values, "to_numpy", None)
    if to_numpy is not None:  # pandas: nullable Int64/Float64/boolean become NaN-holed floats
        try:
            return to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            pass
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(
            f"A numeric column holds values that are not numbers ({exc}).",
            hint="Mark the column as categorical, or clean it first.",
        ) from None


def column_sample(values: Any, *, name: str | None = None, kind: str | None = None) -> ColumnSample:
    """Clean and summarize one column: drop missing values, sort or count the rest.

    Args:
        values: A pandas Series, numpy array or sequence; a sample passes through.
        name: The column name (default: the Series name, else ``"value"``).
        kind: ``"numeric"`` or ``"categorical"``; inferred from the dtype when omitted.

    Returns:
        A :class:`NumericSample` or :class:`CategoricalSample`. It may be empty: the drift
        detectors say which column and side is empty.

    Raises:
        InvalidArgumentError: An unknown kind, a 2-D input, or a dtype drift cannot compare.
    """
    if isinstance(values, NumericSample | CategoricalSample):
        return values
    if name is None:
        series_name = getattr(values, "name", None)
        name = str(series_name) if series_name is not None else "value"
    if getattr(values, "ndim", 1) != 1:
        raise InvalidArgumentError(
            f"Column '{name}' must be 1-D, got shape {getattr(values, 'shape', '?')}."
        )
    resolved = _resolve_kind(kind, name) if kind is not None else infer_kind(values)
    if resolved is ColumnKind.NUMERIC:
        arr = _float_values(values)
        finite = np.isfinite(arr)
        n_missing = int(arr.size - np.count_nonzero(finite))
        kept = arr[finite] if n_missing else arr.copy()
        kept.sort()
        return NumericSample(name, kept, n_missing)
    import pandas as pd

    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    counts = series.value_counts(sort=False, dropna=True)
    counts = counts[counts.to_numpy() > 0]  # a pandas categorical lists unused categories
    tallies = counts.to_numpy(dtype=np.int64)
    return CategoricalSample(
        name, counts.index.to_numpy(), tallies, int(len(series) - tallies.sum())
    )


def _resolve_kind(kind: str, name: str) -> ColumnKind:
    try:
        return ColumnKind(kind)
    except ValueError:
        raise InvalidArgumentError(
            f"Column '{name}': unknown kind '{kind}'.",
            hint="Use 'numeric' or 'categorical'.",
        ) from None


def table_columns(data: Any) -> Mapping[str, Any]:
    """The columns of a table-like input, by name, without copying them.

    Args:
        data: A pandas DataFrame, a mapping of column name to values, or a 2-D numpy array
            (its columns are named "0", "1", ...).

    Returns:
        A mapping of column name to that column's values.

    Raises:
        InvalidArgumentError: Anything else.
    """
    if isinstance(data, Mapping):
        return {str(k): v for k, v in data.items()}
    columns = getattr(data, "columns", None)
    if columns is not None and hasattr(data, "__getitem__"):  # a pandas DataFrame
        return {str(c): data[c] for c in columns}
    if isinstance(data, np.ndarray) and data.ndim == 2:
        return {str(i): data[:, i] for i in range(data.shape[1])}
    raise InvalidArgumentError(
        f"Expected a table (pandas DataFrame, mapping of columns or 2-D array), "
        f"got {type(data).__name__}.",
        hint="For a single column, use column_drift() or a detector's compute().",
    )
