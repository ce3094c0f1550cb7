"""The input example stored with a model: a few rows a reader (or a test) can feed it.

DataFrames go to ``input_example.parquet``, which keeps dtypes exactly; numpy arrays,
dicts of arrays and plain lists go to ``input_example.json`` with their dtype and shape.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipyard.errors import InvalidArgumentError
from shipyard.models.signature import is_pandas

__all__ = ["read_input_example", "write_input_example"]

PARQUET_FILE = "input_example.parquet"
JSON_FILE = "input_example.json"


def _array_to_json(array: Any) -> dict[str, Any]:
    return {"dtype": array.dtype.str, "shape": list(array.shape), "data": array.tolist()}


def _array_from_json(data: Mapping[str, Any]) -> Any:
    import numpy as np

    return np.asarray(data["data"], dtype=np.dtype(data["dtype"])).reshape(data["shape"])


def _write_json(path: Path, payload: dict[str, Any], *, lenient: bool = False) -> None:
    try:
        # Only DataFrame cells (timestamps, decimals) are written as their str().
        text = json.dumps(payload, default=str if lenient else None)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(
            f"The input example cannot be stored as JSON: {exc}.",
            hint="Pass a pandas DataFrame, a numpy array, a dict of arrays or a list.",
        ) from exc
    path.write_text(text, encoding="utf-8")


def write_input_example(example: Any, model_dir: Path) -> str:
    """Store ``example`` in ``model_dir``; returns the file name written."""
    if is_pandas(example, "Series"):
        example = example.to_frame()
    if is_pandas(example, "DataFrame") and all(isinstance(c, str) for c in example.columns):
        try:
            example.to_parquet(model_dir / PARQUET_FILE, index=False)
            return PARQUET_FILE
        except (ValueError, TypeError, ImportError):
            # Objects parquet cannot type: fall back to JSON below.
            (model_dir / PARQUET_FILE).unlink(missing_ok=True)
    if is_pandas(example, "DataFrame"):
        split = example.to_dict(orient="split", index=False)
        dtypes = [str(t) for t in example.dtypes]
        payload = {"type": "dataframe", **split, "dtypes": dtypes}
        _write_json(model_dir / JSON_FILE, payload, lenient=True)
        return JSON_FILE
    if type(example).__module__ == "numpy":
        payload = {"type": "ndarray", **_array_to_json(example)}
    elif isinstance(example, Mapping) and all(
        type(v).__module__ == "numpy" for v in example.values()
    ):
        tensors = {str(k): _array_to_json(v) for k, v in example.items()}
        payload = {"type": "tensors", "tensors": tensors}
    else:
        payload = {"type": "json", "data": example}
    _write_json(model_dir / JSON_FILE, payload)
    return JSON_FILE


def read_input_example(model_dir: Path, name: str) -> Any:
    """Read back what :func:`write_input_example` stored as ``name``."""
    path = model_dir / name
    if name.endswith(".parquet"):
        import pandas as pd

        return pd.read_parquet(path)
    payload = json.loads(path.read_text(encoding="utf-8"))
    kind = payload.get("type")
    if kind == "ndarray":
        return _array_from_json(payload)
    if kind == "tensors":
        return {k: _array_from_json(v) for k, v in payload["tensors"].items()}
    if kind == "dataframe":
        import pandas as pd

        frame = pd.DataFrame(payload["data"], columns=payload["columns"])
        for column, dtype in zip(frame.columns, payload.get("dtypes") or (), strict=False):
            # When a dtype does not apply, keep what JSON gave; the example stays usable.
            with contextlib.suppress(TypeError, ValueError):
                frame[column] = frame[column].astype(dtype)
        return frame
    return payload.get("data")
