"""Data validation: every expectation kind, the report, and a failing checkpoint stopping the
pipeline with the list of failed expectations."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from shipyard.config import Settings
from shipyard.pipelines import Dataset, pipeline, step
from shipyard.pipelines import validation as v
from shipyard.pipelines.executor import run_pipeline

PEOPLE = pd.DataFrame(
    {
        "id": [1, 2, 3, 4],
        "age": [21.0, 35.0, None, 140.0],
        "country": ["FR", "DE", "FR", "XX"],
    }
)


@pytest.mark.parametrize(
    ("expectation", "success"),
    [
        (v.expect_column_to_exist("age"), True),
        (v.expect_column_to_exist("income"), False),
        (v.expect_table_columns_to_match_set(["id", "age", "country"]), True),
        (v.expect_table_columns_to_match_set(["id", "age"]), False),
        (v.expect_table_columns_to_match_set(["id", "age"], exact=False), True),
        (v.expect_column_values_to_be_of_type("id", "int"), True),
        (v.expect_column_values_to_be_of_type("age", "int"), False),
        (v.expect_column_values_to_be_of_type("country", "str"), True),
        (v.expect_column_values_to_not_be_null("age"), False),
        (v.expect_column_values_to_not_be_null("age", mostly=0.75), True),
        (v.expect_column_values_to_be_between("age", 0, 120), False),
        (v.expect_column_values_to_be_between("age", 0, 150), True),
        (v.expect_column_values_to_be_unique("id"), True),
        (v.expect_column_values_to_be_unique("country"), False),
        (v.expect_column_values_to_be_in_set("country", ["FR", "DE"]), False),
        (v.expect_column_values_to_be_in_set("country", ["FR", "DE", "XX"]), True),
        (v.expect_table_row_count_to_be_between(1, 10), True),
        (v.expect_table_row_count_to_be_between(min_value=5), False),
        (v.expect_column_mean_to_be_between("age", 60, 70), True),
        (v.expect_column_mean_to_be_between("age", max_value=50), False),
        (v.expect_column_quantile_values_to_be_between("age", 0.5, 30, 40), True),
        (v.expect_column_quantile_values_to_be_between("age", 0.5, 36), False),
    ],
    ids=lambda x: x.describe() if isinstance(x, v.Expectation) else str(x),
)
def test_each_expectation(expectation: v.Expectation, success: bool) -> None:
    report = v.validate(PEOPLE, [expectation])
    assert report.success is success, report.to_dict()


def test_arrow_tables_validate_like_dataframes() -> None:
    report = v.validate(pa.Table.from_pandas(PEOPLE), [v.expect_column_values_to_be_unique("id")])
    assert report.success


def test_the_error_lists_every_failed_expectation() -> None:
    report = v.validate(
        PEOPLE,
        [
            v.expect_column_values_to_not_be_null("age"),
            v.expect_column_values_to_be_unique("id"),
            v.expect_column_values_to_be_in_set("country", ["FR", "DE"]),
        ],
    )
    with pytest.raises(v.DataValidationError, match="2 of 3 expectations failed") as info:
        report.raise_for_failures()
    message = str(info.value)
    assert "expect_column_values_to_not_be_null('age', mostly=1.0): 1 null values" in message
    assert "expect_column_values_to_be_in_set('country'" in message
    assert "expect_column_values_to_be_unique" not in message


@step
def load_people(bad: bool) -> Dataset:
    return PEOPLE if bad else PEOPLE.dropna().query("age < 120")


validate_people = v.expectations_step(
    [
        v.expect_column_values_to_not_be_null("age"),
        v.expect_column_values_to_be_between("age", 0, 120),
        v.expect_column_values_to_be_unique("id"),
    ]
)


@step
def train_on(data: Dataset) -> int:
    return len(data.load())


@pipeline
def checked(bad: bool = False):
    people = load_people(bad=bad)
    report = validate_people(data=people.output)
    train_on(data=people.output).after(report)


def test_a_failing_checkpoint_stops_the_pipeline(
    tmp_path: Path, fresh_sqlite_url: str, artifacts_url: str
) -> None:
    settings = Settings(home=tmp_path / "home", db=fresh_sqlite_url, artifacts=artifacts_url)
    good = run_pipeline(checked, settings=settings)
    assert good.status == "succeeded", good.error
    metrics = good.step("validate-data").outputs["artifacts"]["output"]["metrics"]
    assert metrics == {"evaluated": 3.0, "failed": 0.0, "row_count": 2.0}
    assert good.step("validate-data").details["validation"]["success"] is True

    bad = run_pipeline(checked, {"bad": True}, settings=settings)
    assert bad.status == "failed"
    step_run = bad.step("validate-data")
    assert "DataValidationError: 2 of 3 expectations failed" in step_run.error
    assert "1 null values" in step_run.error
    assert "1 values outside [0, 120]" in step_run.error
    report = step_run.details["validation"]
    assert [r["success"] for r in report["results"]] == [False, False, True]
    assert bad.step("train-on").state == "upstream_failed"


def test_show_prints_each_expectation(
    tmp_path: Path,
    fresh_sqlite_url: str,
    artifacts_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from shipyard.cli import _common
    from shipyard.cli.main import main

    settings = Settings(home=tmp_path / "home", db=fresh_sqlite_url, artifacts=artifacts_url)
    run = run_pipeline(checked, {"bad": True}, settings=settings)
    monkeypatch.setenv("SHIPYARD_DB", fresh_sqlite_url)
    monkeypatch.setenv("SHIPYARD_ARTIFACTS", artifacts_url)
    monkeypatch.setattr(_common.console, "width", 300)
    main(["pipelines", "show", run.run_id])
    out = capsys.readouterr().out
    assert "validate-data: 1 of 3 expectations passed on 4 rows" in out
    assert "FAILED expect_column_values_to_not_be_null('age', mostly=1.0) (1 null values)" in out
    assert "ok expect_column_values_to_be_unique('id')" in out
