"""A reference dataset prepared once and compared with many current windows.

Building a :class:`Reference` sorts each numeric column (and integrates its quantile
function, see ``stats.window_index``) and counts each categorical one; every later
comparison only prepares the current window (sort 10k values, count labels), and normed
Wasserstein then costs O(window) however large the reference.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from shipyard.errors import InvalidArgumentError, did_you_mean
from shipyard.monitoring.columns import (
    ColumnKind,
    ColumnSample,
    NumericSample,
    column_sample,
    table_columns,
)

__all__ = ["Reference", "column_kinds"]


def column_kinds(
    names: Sequence[str], *, categorical: Sequence[str] = (), numeric: Sequence[str] = ()
) -> dict[str, ColumnKind | None]:
    """Each column's declared kind (``None``: infer it), checking the names exist.

    Args:
        names: The table's columns.
        categorical: Columns to treat as categorical.
        numeric: Columns to treat as numeric.

    Returns:
        Column name to kind, in ``names`` order.

    Raises:
        InvalidArgumentError: An unknown column, or one declared both ways.
    """
    both = set(categorical) & set(numeric)
    if both:
        raise InvalidArgumentError(
            f"Columns {sorted(both)} are declared both categorical and numeric.",
            hint="Declare each column once.",
        )
    kinds: dict[str, ColumnKind | None] = dict.fromkeys(names)
    for declared, kind in ((categorical, ColumnKind.CATEGORICAL), (numeric, ColumnKind.NUMERIC)):
        for column in declared:
            if column not in kinds:
                raise InvalidArgumentError(
                    f"Column '{column}' is not in the reference data."
                    + did_you_mean(column, kinds),
                    hint=f"Its columns are: {', '.join(names)}.",
                )
            kinds[column] = kind
    return kinds


class Reference:
    """Reference data, column by column, cleaned, sorted or counted, ready to compare.

    Example::

        reference = Reference.from_data(train_df, categorical=["city"])
        for window in windows:
            report = detect_drift(reference, window)

    Args:
        samples: Column name to its prepared sample.
    """

    def __init__(self, samples: Mapping[str, ColumnSample]) -> None:
        self._samples = dict(samples)

    @classmethod
    def from_data(
        cls,
        data: Any,
        *,
        columns: Sequence[str] | None = None,
        categorical: Sequence[str] = (),
        numeric: Sequence[str] = (),
    ) -> Reference:
        """Prepare a reference from a table.

        Args:
            data: A pandas DataFrame, a mapping of column name to values, or a 2-D array.
            columns: The columns to keep (default: all).
            categorical: Columns to treat as categorical whatever their dtype.
            numeric: Columns to treat as numeric whatever their dtype.

        Returns:
            The prepared reference, each numeric column's std and window index computed, so
            the first window costs no more than the next.

        Raises:
            InvalidArgumentError: An unknown column, or a column drift cannot compare.
        """
        table = table_columns(data)
        names = list(table) if columns is None else list(columns)
        kinds = column_kinds(list(table), categorical=categorical, numeric=numeric)
        samples: dict[str, ColumnSample] = {}
        for name in names:
            if name not in table:
                raise InvalidArgumentError(
                    f"Column '{name}' is not in the reference data." + did_you_mean(name, table),
                    hint=f"Its columns are: {', '.join(table)}.",
                )
            kind = kinds[name]
            sample = column_sample(
                table[name], name=name, kind=None if kind is None else kind.value
            )
            if isinstance(sample, NumericSample) and sample.n:
                _ = sample.std, sample.window_index, sample.n_unique
            samples[name] = sample
        return cls(samples)

    @property
    def columns(self) -> tuple[str, ...]:
        """The column names, in order."""
        return tuple(self._samples)

    def kind(self, column: str) -> ColumnKind:
        """Whether ``column`` is numeric or categorical."""
        return self[column].kind

    def __getitem__(self, column: str) -> ColumnSample:
        try:
            return self._samples[column]
        except KeyError:
            raise InvalidArgumentError(
                f"Column '{column}' is not in the reference." + did_you_mean(column, self._samples),
                hint=f"Its columns are: {', '.join(self._samples)}.",
            ) from None

    def __contains__(self, column: object) -> bool:
        return column in self._samples

    def __iter__(self) -> Iterator[str]:
        return iter(self._samples)

    def __len__(self) -> int:
        return len(self._samples)

    def __repr__(self) -> str:
        kinds = ", ".join(f"{name}: {s.kind.value}" for name, s in self._samples.items())
        return f"Reference({kinds})"
