"""Input examples are stored with the model and read back with their types."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard.errors import InvalidArgumentError
from shipyard.models.example import read_input_example, write_input_example


def _round_trip(example: Any, tmp_path: Path) -> tuple[str, Any]:
    name = write_input_example(example, tmp_path)
    return name, read_input_example(tmp_path, name)


def test_dataframe_goes_to_parquet_with_dtypes(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"f": [1.5, 2.5], "i": np.array([1, 2], np.int32), "s": ["a", "b"], "b": [True, False]}
    )
    name, back = _round_trip(frame, tmp_path)
    assert name == "input_example.parquet"
    pd.testing.assert_frame_equal(back, frame)


def test_dataframe_with_non_string_columns_falls_back_to_json(tmp_path: Path) -> None:
    frame = pd.DataFrame({0: [1.5, 2.5], 1: [1, 2]})
    name, back = _round_trip(frame, tmp_path)
    assert name == "input_example.json"
    pd.testing.assert_frame_equal(back, frame)


@pytest.mark.parametrize(
    "array",
    [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([["a", "bc"]]), np.zeros((0, 4))],
)
def test_numpy_keeps_dtype_and_shape(array: np.ndarray, tmp_path: Path) -> None:
    name, back = _round_trip(array, tmp_path)
    assert name == "input_example.json"
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_dict_of_arrays_and_plain_lists(tmp_path: Path) -> None:
    tensors = {"ids": np.array([[1, 2]], np.int64), "mask": np.array([[True, False]])}
    _, back = _round_trip(tensors, tmp_path)
    assert set(back) == {"ids", "mask"} and back["ids"].dtype == np.int64
    (tmp_path / "input_example.json").unlink()
    _, rows = _round_trip([[1, 2.5], [3, 4.0]], tmp_path)
    assert rows == [[1, 2.5], [3, 4.0]]


def test_an_example_that_is_not_json_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="cannot be stored as JSON"):
        write_input_example([{1, 2}], tmp_path)
