"""Data quality of a current window against the reference: missing values, numeric values
outside the reference's range, and categories the reference never saw."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from shipyard.monitoring.columns import CategoricalSample, NumericSample, column_sample
from shipyard.monitoring.reference import Reference

__all__ = ["ColumnQuality", "column_quality", "data_quality"]


@dataclass(frozen=True)
class ColumnQuality:
    """One column's data quality in the current window.

    Attributes:
        column: The column name.
        rows: Values in the window, missing ones included.
        missing_share: Share of missing values (None, NaN, +-inf for numeric columns).
        out_of_range_share: Share of non-missing numeric values below the reference's
            minimum or above its maximum (0 for categorical columns).
        new_category_share: Share of non-missing categorical values the reference never saw
            (0 for numeric columns).
        new_categories: Those categories, most frequent first (at most 20).
    """

    column: str
    rows: int
    missing_share: float
    out_of_range_share: float
    new_category_share: float
    new_categories: tuple[Any, ...] = ()


def column_quality(reference: NumericSample | CategoricalSample, values: Any) -> ColumnQuality:
    """Data quality of one current column against its reference sample."""
    current = column_sample(values, name=reference.name, kind=reference.kind.value)
    rows = current.n + current.n_missing
    out_of_range = new_share = 0.0
    new: tuple[Any, ...] = ()
    if isinstance(reference, NumericSample) and isinstance(current, NumericSample):
        if current.n and reference.n:
            v = current.values
            below = int(np.searchsorted(v, reference.minimum, side="left"))
            above = v.size - int(np.searchsorted(v, reference.maximum, side="right"))
            out_of_range = (below + above) / v.size
    elif (
        isinstance(reference, CategoricalSample)
        and isinstance(current, CategoricalSample)
        and current.n
    ):
        labels, ref_counts, cur_counts = reference.align(current)
        unseen = ref_counts == 0
        new_share = float(cur_counts[unseen].sum()) / current.n
        order = np.argsort(-cur_counts[unseen], kind="stable")[:20]
        new = tuple(labels[unseen][order].tolist())
    return ColumnQuality(
        column=reference.name,
        rows=rows,
        missing_share=current.n_missing / rows if rows else 0.0,
        out_of_range_share=out_of_range,
        new_category_share=new_share,
        new_categories=new,
    )


def data_quality(reference: Any, current: Any) -> dict[str, ColumnQuality]:
    """Data quality of every reference column present in ``current``.

    Args:
        reference: A :class:`Reference`, a :class:`~shipyard.monitoring.profiles.Profile`
            or a table.
        current: A table (pandas DataFrame or mapping of columns).

    Returns:
        Column name to its :class:`ColumnQuality`, in the reference's order.
    """
    from shipyard.monitoring.columns import table_columns
    from shipyard.monitoring.profiles import Profile

    if isinstance(reference, Profile):
        reference = reference.reference()
    elif not isinstance(reference, Reference):
        reference = Reference.from_data(reference)
    table = table_columns(current)
    return {
        name: column_quality(reference[name], table[name]) for name in reference if name in table
    }
