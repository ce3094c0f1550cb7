"""Signatures: inferred from examples, round-tripped as JSON, and checking inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from shipyard.errors import InvalidArgumentError
from shipyard.models import FieldSpec, ModelSignature, infer_signature
from shipyard.models.signature import infer_schema

# -- inference ----------------------------------------------------------------------------


def test_dataframe_gives_columns_with_dtypes() -> None:
    data = pd.DataFrame({"age": [31.0, 40.5], "n": [1, 2], "flag": [True, False]})
    sig = infer_signature(data, np.array([0, 1]))
    assert sig.inputs == (
        FieldSpec(name="age", dtype="float64"),
        FieldSpec(name="n", dtype="int64"),
        FieldSpec(name="flag", dtype="bool"),
    )
    assert sig.outputs == (FieldSpec(dtype="int64", shape=(-1,)),)
    assert sig.is_columnar


def test_numpy_gives_one_tensor_with_a_batch_dimension() -> None:
    sig = infer_signature(np.zeros((5, 3, 4), dtype=np.float32))
    assert sig.inputs == (FieldSpec(dtype="float32", shape=(-1, 3, 4)),)
    assert not sig.is_columnar and sig.outputs == ()


def test_list_of_lists_is_a_tensor_and_list_of_dicts_is_columns() -> None:
    assert infer_schema([[1.0, 2.0], [3.0, 4.0]]) == (FieldSpec(dtype="float64", shape=(-1, 2)),)
    assert infer_schema([{"a": 1, "b": "x"}]) == (
        FieldSpec(name="a", dtype="int64"),
        FieldSpec(name="b", dtype=str(pd.Series(["x"]).dtype)),
    )
    assert infer_schema(["a", "bb"]) == (FieldSpec(dtype="str", shape=(-1,)),)


def test_dict_of_arrays_gives_named_tensors() -> None:
    sig = infer_signature({"ids": np.zeros((2, 8), np.int64), "mask": np.ones((2, 8), bool)})
    assert sig.inputs == (
        FieldSpec(name="ids", dtype="int64", shape=(-1, 8)),
        FieldSpec(name="mask", dtype="bool", shape=(-1, 8)),
    )


def test_series_and_dataframe_outputs() -> None:
    assert infer_schema(pd.Series([0.1, 0.2], name="score")) == (
        FieldSpec(name="score", dtype="float64", shape=(-1,)),
    )
    assert infer_schema(pd.DataFrame({"p0": [0.5], "p1": [0.5]})) == (
        FieldSpec(name="p0", dtype="float64"),
        FieldSpec(name="p1", dtype="float64"),
    )


def test_to_dict_matches_the_contract_and_round_trips() -> None:
    sig = ModelSignature(
        inputs=(FieldSpec(name="age", dtype="float64"),),
        outputs=(FieldSpec(dtype="int64", shape=(-1,)),),
    )
    assert sig.to_dict() == {
        "inputs": [{"name": "age", "dtype": "float64"}],
        "outputs": [{"name": None, "dtype": "int64", "shape": [-1]}],
    }
    assert ModelSignature.from_dict(sig.to_dict()) == sig


# -- validation messages ------------------------------------------------------------------


@pytest.fixture
def tensor_sig() -> ModelSignature:
    return infer_signature(np.zeros((3, 20)))


@pytest.fixture
def column_sig() -> ModelSignature:
    return infer_signature(pd.DataFrame({"age": [30.0], "income": [1000], "city": ["nice"]}))


def test_wrong_feature_count(tensor_sig: ModelSignature) -> None:
    with pytest.raises(InvalidArgumentError, match="expected 20 features, got 19"):
        tensor_sig.validate(np.zeros((4, 19)))
    with pytest.raises(InvalidArgumentError, match="expected 20 features, got 19"):
        tensor_sig.validate([[0.0] * 19])


def test_wrong_rank_and_dtype(tensor_sig: ModelSignature) -> None:
    with pytest.raises(
        InvalidArgumentError, match=r"input expected 2-D shape \(-1, 20\), got 1-D shape \(20,\)"
    ):
        tensor_sig.validate(np.zeros(20))
    with pytest.raises(InvalidArgumentError, match="input expected float64, got str"):
        tensor_sig.validate(np.full((2, 20), "x"))


def test_a_column_with_the_wrong_dtype(column_sig: ModelSignature) -> None:
    bad = pd.DataFrame(
        {
            "age": pd.Series([31, "unknown"], dtype=object),
            "income": [1, 2],
            "city": ["a", "b"],
        }
    )
    with pytest.raises(InvalidArgumentError, match="column 'age' expected float64, got object"):
        column_sig.validate(bad)


def test_every_problem_is_listed(column_sig: ModelSignature) -> None:
    bad = pd.DataFrame({"age": ["x"], "income": [1.5], "city": ["a"]})
    with pytest.raises(InvalidArgumentError) as err:
        column_sig.validate(bad)
    message = err.value.message
    assert "column 'age' expected float64, got" in message
    assert "column 'income' expected int64, got float64" in message


def test_missing_columns(column_sig: ModelSignature) -> None:
    with pytest.raises(InvalidArgumentError, match="missing columns 'income', 'city'"):
        column_sig.validate(pd.DataFrame({"age": [1.0]}))


def test_safe_casts_are_accepted(column_sig: ModelSignature, tensor_sig: ModelSignature) -> None:
    ints = pd.DataFrame({"age": [30, 41], "income": np.array([1, 2], np.int32), "city": ["a", "b"]})
    out = column_sig.coerce(ints)
    assert str(out["age"].dtype) == "float64" and str(out["income"].dtype) == "int64"
    arr = tensor_sig.coerce(np.ones((2, 20), dtype=np.int64))
    assert arr.dtype == np.float64


def test_numpy_rows_get_the_column_names(column_sig: ModelSignature) -> None:
    rows = [[30.0, 1000, "nice"], [45.0, 2000, "lyon"]]
    out = column_sig.coerce(rows)
    assert list(out.columns) == ["age", "income", "city"]
    assert out["income"].tolist() == [1000, 2000]
    with pytest.raises(InvalidArgumentError, match="expected 3 features, got 2"):
        column_sig.coerce([[30.0, 1000]])


def test_named_tensors_need_every_input() -> None:
    sig = infer_signature({"a": np.zeros((1, 2)), "b": np.zeros((1, 3))})
    with pytest.raises(InvalidArgumentError, match="missing input 'b'"):
        sig.validate({"a": np.zeros((4, 2))})
    with pytest.raises(InvalidArgumentError, match="expected a dict"):
        sig.validate(np.zeros((4, 2)))
    with pytest.raises(InvalidArgumentError, match="expected 3 features, got 2"):
        sig.validate({"a": np.zeros((4, 2)), "b": np.zeros((4, 2))})


def test_no_inputs_means_no_check() -> None:
    assert ModelSignature(inputs=()).coerce("anything") == "anything"


_DTYPES = st.sampled_from([np.float32, np.float64, np.int32, np.int64, np.bool_])


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(_DTYPES, hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=6)))
def test_an_example_always_fits_its_own_signature(array: np.ndarray) -> None:
    sig = infer_signature(array)
    assert sig.coerce(array).shape == array.shape
    wider = np.concatenate([array, array[:, :1]], axis=1)
    with pytest.raises(InvalidArgumentError, match="expected"):
        sig.validate(wider)
