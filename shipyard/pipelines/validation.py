"""Data validation as a pipeline step: declarative expectations on a table, evaluated
together, stored as a Metrics artifact, and failing the step with every failed expectation
listed (the data quality checkpoint of the seed's Airflow DAG).

Example::

    checks = [
        expect_column_to_exist("age"),
        expect_column_values_to_not_be_null("age"),
        expect_column_values_to_be_between("age", 0, 120),
        expect_table_row_count_to_be_between(min_value=100),
    ]
    validate_data = expectations_step(checks)          # a @step: data: Dataset -> Metrics

    @pipeline
    def training(path: str):
        raw = load(path=path)
        report = validate_data(data=raw.output)        # stops the run when a check fails
        train(data=raw.output).after(report)

``validate(df, checks)`` runs the same checks on a DataFrame or Arrow table anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from shipyard.errors import PipelineError
from shipyard.pipelines.dsl import Step, step
from shipyard.pipelines.steprun import record_details
from shipyard.pipelines.types import Dataset, Metrics

__all__ = [
    "DataValidationError",
    "Expectation",
    "ExpectationResult",
    "ValidationReport",
    "expect_column_mean_to_be_between",
    "expect_column_quantile_values_to_be_between",
    "expect_column_to_exist",
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_be_of_type",
    "expect_column_values_to_be_unique",
    "expect_column_values_to_not_be_null",
    "expect_table_columns_to_match_set",
    "expect_table_row_count_to_be_between",
    "expectations_step",
    "validate",
]


@dataclass(frozen=True)
class Expectation:
    """One check: its kind, the column it looks at (if any) and its arguments (JSON)."""

    kind: str
    column: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        target = f"{self.column!r}" + (", " if args else "") if self.column else ""
        return f"{self.kind}({target}{args})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Expectation:
        return cls(data["kind"], data.get("column"), dict(data.get("kwargs") or {}))


@dataclass(frozen=True)
class ExpectationResult:
    expectation: Expectation
    success: bool
    observed: Any = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "expectation": self.expectation.describe(),
            "success": self.success,
            "observed": self.observed,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class ValidationReport:
    results: list[ExpectationResult]
    row_count: int

    @property
    def success(self) -> bool:
        return all(r.success for r in self.results)

    @property
    def failed(self) -> list[ExpectationResult]:
        return [r for r in self.results if not r.success]

    def to_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "evaluated": len(self.results),
            "failed": len(self.failed),
            "row_count": self.row_count,
            "results": [r.to_dict() for r in self.results],
        }

    def raise_for_failures(self) -> None:
        if not self.success:
            raise DataValidationError(self)


class DataValidationError(PipelineError):
    """Raised by a validation step; ``details`` (the report) is stored with the step run."""

    code = "data_validation_failed"
    headline = "Data validation failed"

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        self.details = {"validation": report.to_dict()}
        lines = [
            f"  - {r.expectation.describe()}: {r.detail or f'observed {r.observed!r}'}"
            for r in report.failed
        ]
        super().__init__(
            f"{len(report.failed)} of {len(report.results)} expectations failed:\n"
            + "\n".join(lines),
            hint="Fix the data upstream, or relax the expectation if it no longer holds.",
        )


# --- the expectations ------------------------------------------------------------------------


def expect_column_to_exist(column: str) -> Expectation:
    return Expectation("expect_column_to_exist", column)


def expect_table_columns_to_match_set(columns: Sequence[str], exact: bool = True) -> Expectation:
    """The table has these columns (and, with ``exact``, no others)."""
    return Expectation(
        "expect_table_columns_to_match_set", None, {"columns": sorted(columns), "exact": exact}
    )


def expect_column_values_to_be_of_type(column: str, type_: str) -> Expectation:
    """dtype check by kind: ``int``, ``float``, ``number``, ``bool``, ``str``, ``datetime``."""
    return Expectation("expect_column_values_to_be_of_type", column, {"type": type_})


def expect_column_values_to_not_be_null(column: str, mostly: float = 1.0) -> Expectation:
    return Expectation("expect_column_values_to_not_be_null", column, {"mostly": mostly})


# The short name some guides use for the same check.
expect_column_values_not_null = expect_column_values_to_not_be_null


def expect_column_values_to_be_between(
    column: str,
    min_value: float | None = None,
    max_value: float | None = None,
    mostly: float = 1.0,
) -> Expectation:
    return Expectation(
        "expect_column_values_to_be_between",
        column,
        {"min_value": min_value, "max_value": max_value, "mostly": mostly},
    )


def expect_column_values_to_be_unique(column: str) -> Expectation:
    return Expectation("expect_column_values_to_be_unique", column)


def expect_column_values_to_be_in_set(column: str, value_set: Sequence[Any]) -> Expectation:
    return Expectation("expect_column_values_to_be_in_set", column, {"value_set": list(value_set)})


def expect_table_row_count_to_be_between(
    min_value: int | None = None, max_value: int | None = None
) -> Expectation:
    return Expectation(
        "expect_table_row_count_to_be_between",
        None,
        {"min_value": min_value, "max_value": max_value},
    )


def expect_column_mean_to_be_between(
    column: str, min_value: float | None = None, max_value: float | None = None
) -> Expectation:
    return Expectation(
        "expect_column_mean_to_be_between", column, {"min_value": min_value, "max_value": max_value}
    )


def expect_column_quantile_values_to_be_between(
    column: str, quantile: float, min_value: float | None = None, max_value: float | None = None
) -> Expectation:
    return Expectation(
        "expect_column_quantile_values_to_be_between",
        column,
        {"quantile": quantile, "min_value": min_value, "max_value": max_value},
    )


# --- evaluation ------------------------------------------------------------------------------


def _within(value: float, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


_KINDS = {
    "int": "iu",
    "float": "f",
    "number": "iuf",
    "bool": "b",
    "str": "OSU",
    "datetime": "M",
}


def _check(df: Any, e: Expectation) -> ExpectationResult:
    import pandas as pd

    kw = e.kwargs
    if e.kind == "expect_table_row_count_to_be_between":
        n = len(df)
        return ExpectationResult(e, _within(n, kw["min_value"], kw["max_value"]), n)
    if e.kind == "expect_table_columns_to_match_set":
        have, want = set(map(str, df.columns)), set(kw["columns"])
        ok = have == want if kw["exact"] else want <= have
        missing, extra = sorted(want - have), sorted(have - want)
        return ExpectationResult(e, ok, sorted(have), f"missing {missing}, unexpected {extra}")
    if e.column not in df.columns:
        return ExpectationResult(e, False, None, f"column {e.column!r} does not exist")
    col = df[e.column]
    if e.kind == "expect_column_to_exist":
        return ExpectationResult(e, True, e.column)
    if e.kind == "expect_column_values_to_be_of_type":
        kinds = _KINDS.get(kw["type"], "")
        dtype = col.dtype
        ok = getattr(dtype, "kind", "") in kinds or (
            kw["type"] == "str" and isinstance(dtype, pd.StringDtype)
        )
        return ExpectationResult(e, ok, str(dtype))
    values = col.dropna()
    total = len(col)
    if e.kind == "expect_column_values_to_not_be_null":
        nulls = int(col.isna().sum())
        share = 1.0 - nulls / total if total else 1.0
        return ExpectationResult(e, share >= kw["mostly"], nulls, f"{nulls} null values")
    if e.kind == "expect_column_values_to_be_between":
        bad = int(
            (
                ~values.between(
                    -math.inf if kw["min_value"] is None else kw["min_value"],
                    math.inf if kw["max_value"] is None else kw["max_value"],
                )
            ).sum()
        )
        share = 1.0 - bad / len(values) if len(values) else 1.0
        detail = f"{bad} values outside [{kw['min_value']}, {kw['max_value']}]"
        minmax = [_plain(values.min()), _plain(values.max())] if len(values) else None
        return ExpectationResult(e, share >= kw["mostly"], minmax, detail)
    if e.kind == "expect_column_values_to_be_unique":
        dupes = int(values.duplicated().sum())
        return ExpectationResult(e, dupes == 0, dupes, f"{dupes} duplicated values")
    if e.kind == "expect_column_values_to_be_in_set":
        outside = values[~values.isin(kw["value_set"])]
        sample = sorted({_plain(v) for v in outside.head(20)}, key=str)[:5]
        return ExpectationResult(
            e, outside.empty, sample, f"{len(outside)} values not in the set, e.g. {sample}"
        )
    if e.kind == "expect_column_mean_to_be_between":
        mean = _plain(values.mean()) if len(values) else None
        ok = mean is not None and _within(mean, kw["min_value"], kw["max_value"])
        return ExpectationResult(e, ok, mean, f"mean {mean}")
    if e.kind == "expect_column_quantile_values_to_be_between":
        q = _plain(values.quantile(kw["quantile"])) if len(values) else None
        ok = q is not None and _within(q, kw["min_value"], kw["max_value"])
        return ExpectationResult(e, ok, q, f"quantile {kw['quantile']} is {q}")
    raise ValueError(f"unknown expectation {e.kind!r}")


def validate(data: Any, expectations: Sequence[Expectation | dict[str, Any]]) -> ValidationReport:
    """Evaluate every expectation on a pandas DataFrame or an Arrow table (all of them, so the
    report lists every problem at once)."""
    if type(data).__module__.split(".")[0] == "pyarrow":
        data = data.to_pandas()
    checks = [e if isinstance(e, Expectation) else Expectation.from_dict(e) for e in expectations]
    return ValidationReport([_check(data, e) for e in checks], len(data))


def _run_expectations(data: Dataset, expectations: list) -> Metrics:
    """Evaluate the expectations on the input table; fail with every failed one listed."""
    report = validate(data.load(), expectations)
    summary = report.to_dict()
    record_details(validation=summary)
    report.raise_for_failures()
    metrics = Metrics(
        metadata={
            "evaluated": summary["evaluated"],
            "failed": summary["failed"],
            "row_count": summary["row_count"],
        }
    )
    return metrics


def expectations_step(expectations: Sequence[Expectation], name: str = "validate-data") -> Step:
    """A step ``(data: Dataset) -> Metrics`` that checks ``expectations`` on its input; the
    expectations are its default parameter, so changing them invalidates its cache."""

    checks = [e.to_dict() for e in expectations]

    def checkpoint(data: Dataset, expectations: list = checks) -> Metrics:
        """Data quality checkpoint: fails the run when an expectation fails."""
        return _run_expectations(data, expectations)

    return step(name=name)(checkpoint)
