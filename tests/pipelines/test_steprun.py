"""``execute_step``: one task in this process, from JSON parameters and artifact paths (what
the KFP and Airflow entrypoints call), and the value <-> file round trips it relies on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipyard.errors import InvalidArgumentError, PipelineError
from shipyard.pipelines import (
    Artifact,
    Collected,
    Dataset,
    Metrics,
    Model,
    Outputs,
    ParallelFor,
    pipeline,
    step,
)
from shipyard.pipelines.serialization import load_path, save_value
from shipyard.pipelines.steprun import coerce_parameter, execute_step


@step
def make(n: int, scale: float = 1.0) -> Outputs(table=Dataset, arr=Dataset, m=Metrics, count=int):
    frame = pd.DataFrame({"x": range(n)})
    return frame, np.arange(n) * scale, {"rows": n}, n


@step
def consume(table: Dataset, arr: Dataset, m: Metrics, tags: list) -> Outputs(
    total=float, seen=dict
):
    return float(table.load().x.sum() + arr.load().sum()), {"m": m.load(), "tags": tags}


@step
def gather(models: list[Model]) -> int:
    return len(models)


@step
def bad_return() -> Outputs(a=int, b=int):
    return {"a": 1}


@pipeline
def p(n: int = 3):
    made = make(n=n)
    consume(table=made.outputs["table"], arr=made.outputs["arr"], m=made.outputs["m"], tags=[])
    bad_return()


def test_execute_step_round_trips_artifacts_and_parameters(tmp_path: Path) -> None:
    outs = {name: tmp_path / name for name in ("table", "arr", "m")}
    assert execute_step(p, "make", {"n": 4, "scale": 2}, {}, outs) == {"count": 4}
    assert isinstance(load_path(outs["table"]), pd.DataFrame)
    result = execute_step(p, "consume", {"tags": ["a"]}, outs, {})
    assert result == {"total": 6.0 + 12.0, "seen": {"m": {"rows": 4.0}, "tags": ["a"]}}


def test_parameters_are_checked_against_their_types(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="Input 'n' of step 'make' expects int"):
        execute_step(p, "make", {"n": "four"}, {}, {})
    with pytest.raises(InvalidArgumentError, match="has no input"):
        execute_step(p, "make", {"n": 1, "typo": 2}, {}, {})
    with pytest.raises(InvalidArgumentError, match="has no step 'nope'"):
        execute_step(p, "nope", {}, {}, {})


def test_a_step_returning_the_wrong_shape_says_what_is_missing() -> None:
    with pytest.raises(PipelineError, match=r"returned a dict without output\(s\) b"):
        execute_step(p, "bad-return", {}, {}, {})


@pytest.mark.parametrize(
    "value",
    [
        pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}),
        pa.table({"a": [1, 2]}),
        np.arange(12, dtype=np.float32).reshape(3, 4),
        {"any": "pickled", "set": {1, 2}},
        "some text",
    ],
    ids=["pandas", "arrow", "numpy", "pickle", "text"],
)
def test_values_load_back_as_they_were_saved(tmp_path: Path, value: object) -> None:
    path = tmp_path / "artifact"
    save_value(value, path, "Dataset")
    loaded = load_path(path, "Dataset")
    if isinstance(value, pd.DataFrame):
        pd.testing.assert_frame_equal(loaded, value)
    elif isinstance(value, pa.Table):
        assert loaded.equals(value)
    elif isinstance(value, np.ndarray):
        np.testing.assert_array_equal(loaded, value)
    else:
        assert loaded == value


def test_a_returned_file_is_linked_not_copied(tmp_path: Path) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(b"\x00weights")
    meta = save_value(Artifact(path=str(source)), tmp_path / "out", "Model")
    assert (tmp_path / "out").stat().st_ino == source.stat().st_ino
    assert meta["format"] == "bytes"


def test_metrics_outputs_must_be_numbers(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="metric 'acc' is 'high', not a number"):
        save_value({"acc": "high"}, tmp_path / "m", "Metrics")


@given(st.integers(-(2**40), 2**40))
def test_int_parameters_accept_integral_floats_only(value: int) -> None:
    assert coerce_parameter(float(value), "int", "x") == value
    assert coerce_parameter(value, "float", "x") == float(value)
    with pytest.raises(InvalidArgumentError):
        coerce_parameter(value + 0.5, "int", "x")


@step
def fit(x: int) -> Model:
    return x


@pipeline
def fan_in():
    with ParallelFor([1, 2]) as item:
        fitted = fit(x=item)
    gather(models=Collected(fitted.output))


def test_list_inputs_get_one_artifact_per_path(tmp_path: Path) -> None:
    paths = [tmp_path / "a", tmp_path / "b"]
    assert execute_step(fan_in, "gather", {}, {"models": paths}, {}) == {"output": 2}
