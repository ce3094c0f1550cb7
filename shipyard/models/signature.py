"""Model signatures: the inputs a model accepts and the outputs it returns.

A signature is either *columnar* (named columns with dtypes, from a pandas DataFrame) or
*tensor* (one or more arrays with a dtype and a shape whose batch dimension is -1). It
checks incoming data before the model sees it, so a wrong column or feature count fails
with a message that names it instead of a stack trace from deep inside the library.

numpy and pandas are imported only when a signature is inferred or used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shipyard.errors import InvalidArgumentError

__all__ = ["FieldSpec", "ModelSignature", "infer_schema", "infer_signature"]

_STRINGS = frozenset({"str", "string", "object"})
_HINT = "Pass data that matches model.signature (its inputs list names, dtypes and shapes)."


@dataclass(frozen=True)
class FieldSpec:
    """One input or output: a column (name, dtype) or a tensor (dtype, shape, maybe name).

    ``shape`` uses -1 for dimensions of any size, first of all the batch dimension.
    """

    dtype: str
    name: str | None = None
    shape: tuple[int, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "dtype": self.dtype}
        if self.shape is not None:
            data["shape"] = list(self.shape)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FieldSpec:
        shape = data.get("shape")
        return cls(
            dtype=str(data["dtype"]),
            name=data.get("name"),
            shape=tuple(int(d) for d in shape) if shape is not None else None,
        )

    def label(self) -> str:
        """How messages refer to this field."""
        if self.shape is None:
            return f"column '{self.name}'"
        return f"input '{self.name}'" if self.name else "input"


def is_pandas(obj: Any, kind: str) -> bool:
    """Whether ``obj`` is a pandas ``kind`` ("DataFrame", "Series"), without importing pandas."""
    cls = type(obj)
    return cls.__module__.startswith("pandas") and cls.__name__ == kind


def dtype_name(dtype: Any) -> str:
    """A stable name for a numpy or pandas dtype ('<U7' and '<U3' are both 'str')."""
    kind = getattr(dtype, "kind", None)
    if kind == "U" and type(dtype).__module__.startswith("numpy"):
        return "str"
    if kind == "S" and type(dtype).__module__.startswith("numpy"):
        return "bytes"
    return str(dtype)


def compatible(actual: str, expected: str) -> bool:
    """Whether data of dtype ``actual`` may feed a field of dtype ``expected``.

    Same-kind casts are allowed (int32 -> int64, int64 -> float64, float64 -> float32),
    and str/object columns are interchangeable; anything else is a mismatch.
    """
    if actual == expected:
        return True
    if actual in _STRINGS and expected in _STRINGS:
        return True
    import numpy as np

    try:
        return bool(np.can_cast(np.dtype(actual), np.dtype(expected), casting="same_kind"))
    except TypeError:
        return False


def _numeric(dtype: str) -> bool:
    import numpy as np

    try:
        return np.dtype(dtype).kind in "biuf"
    except TypeError:
        return False


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def as_array(data: Any) -> Any:
    """``data`` as a numpy array (DataFrames and Series through ``to_numpy``)."""
    import numpy as np

    if is_pandas(data, "DataFrame") or is_pandas(data, "Series"):
        return data.to_numpy()
    return data if isinstance(data, np.ndarray) else np.asarray(data)


def _as_frame(data: Any) -> Any:
    import pandas as pd

    if is_pandas(data, "DataFrame"):
        return data
    if isinstance(data, Mapping) or (
        isinstance(data, list) and data and all(isinstance(row, Mapping) for row in data)
    ):
        return pd.DataFrame(data)
    return None


def infer_schema(data: Any) -> tuple[FieldSpec, ...]:
    """The fields describing ``data``: columns for a DataFrame, tensors otherwise.

    DataFrame -> one column spec per column; Series -> one named tensor; numpy array or
    list (of lists) -> one tensor whose first dimension is -1; dict of arrays -> one named
    tensor per key; list of dicts -> columns.
    """
    import numpy as np

    if is_pandas(data, "DataFrame"):
        return tuple(
            FieldSpec(name=str(col), dtype=dtype_name(dt)) for col, dt in data.dtypes.items()
        )
    if is_pandas(data, "Series"):
        name = None if data.name is None else str(data.name)
        return (FieldSpec(name=name, dtype=dtype_name(data.dtype), shape=(-1,)),)
    if isinstance(data, Mapping):
        return tuple(
            FieldSpec(name=str(k), **_tensor_fields(np.asarray(v))) for k, v in data.items()
        )
    frame = _as_frame(data)
    if frame is not None:
        return infer_schema(frame)
    if isinstance(data, tuple | list) and data and is_pandas(data[0], "Series"):
        return tuple(spec for item in data for spec in infer_schema(item))
    array = data if isinstance(data, np.ndarray) else np.asarray(data)
    return (FieldSpec(**_tensor_fields(array)),)


def _tensor_fields(array: Any) -> dict[str, Any]:
    shape = (-1, *array.shape[1:]) if array.ndim else ()
    return {"dtype": dtype_name(array.dtype), "shape": tuple(int(d) for d in shape)}


@dataclass(frozen=True)
class ModelSignature:
    """Inputs and outputs of a model.

    Example::

        sig = infer_signature(X_train.head(), model.predict(X_train.head()))
        sig.validate(X_new)  # InvalidArgumentError: column 'age' expected float64, got object
    """

    inputs: tuple[FieldSpec, ...]
    outputs: tuple[FieldSpec, ...] = ()

    @property
    def is_columnar(self) -> bool:
        """True when inputs are named columns (the model was fitted on a DataFrame)."""
        return bool(self.inputs) and all(s.shape is None and s.name for s in self.inputs)

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.inputs if s.name]

    def to_dict(self) -> dict[str, Any]:
        """``{"inputs": [{name, dtype, shape?}], "outputs": [...]}``."""
        return {
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSignature:
        return cls(
            inputs=tuple(FieldSpec.from_dict(s) for s in data.get("inputs") or ()),
            outputs=tuple(FieldSpec.from_dict(s) for s in data.get("outputs") or ()),
        )

    # -- checking -------------------------------------------------------------------------

    def validate(self, data: Any) -> None:
        """Check that ``data`` fits the inputs.

        Raises:
            InvalidArgumentError: with every mismatch found, e.g. "expected 20 features,
                got 19" or "column 'age' expected float64, got object".
        """
        self.coerce(data)

    def coerce(self, data: Any) -> Any:
        """Validate ``data`` and convert it to what the model was fitted on.

        Columnar signatures give a DataFrame with the signature's columns in order (numpy
        arrays and lists get the column names); a single tensor gives a numpy array; several
        named tensors give a ``{name: array}`` dict. Same-kind dtype differences are cast.
        """
        if not self.inputs:
            return data
        if self.is_columnar:
            return self._coerce_columns(data)
        if len(self.inputs) == 1:
            spec = self.inputs[0]
            if isinstance(data, Mapping) and spec.name in data:
                data = data[spec.name]
            return self._coerce_tensor(spec, as_array(data))
        return self._coerce_tensors(data)

    def _fail(self, problems: list[str]) -> InvalidArgumentError:
        return InvalidArgumentError(
            "Input does not match the model signature: " + "; ".join(problems) + ".",
            hint=_HINT,
        )

    def _coerce_columns(self, data: Any) -> Any:
        import numpy as np
        import pandas as pd

        names = [str(s.name) for s in self.inputs]
        frame = _as_frame(data)
        from_array = frame is None
        if frame is None:
            # Rows as lists keep each value's Python type; np.asarray would make them all str.
            array = as_array(data) if not isinstance(data, list) else np.asarray(data, object)
            if array.ndim != 2 or array.shape[1] != len(names):
                got = array.shape[1] if array.ndim == 2 else f"shape {_shape_text(array.shape)}"
                raise self._fail([f"expected {len(names)} features, got {got}"])
            frame = pd.DataFrame(array, columns=names)
            if array.dtype.kind == "O":  # mixed types: let pandas type each column
                frame = frame.infer_objects()
        missing = [n for n in names if n not in frame.columns]
        if missing:
            listed = ", ".join(f"'{n}'" for n in missing)
            plural = "s" if len(missing) > 1 else ""
            raise self._fail([f"missing column{plural} {listed} (expected {len(names)} columns)"])
        problems, casts = [], {}
        for spec in self.inputs:
            actual = dtype_name(frame[spec.name].dtype)
            if from_array and _numeric(actual) and _numeric(spec.dtype):
                if actual != spec.dtype:  # one array dtype for all columns: cast each
                    casts[spec.name] = spec.dtype
            elif not compatible(actual, spec.dtype):
                problems.append(f"column '{spec.name}' expected {spec.dtype}, got {actual}")
            elif actual != spec.dtype and actual not in _STRINGS:
                casts[spec.name] = spec.dtype
        if problems:
            raise self._fail(problems)
        if list(frame.columns) != names:
            frame = frame[names]
        return frame.astype(casts) if casts else frame

    def _check_tensor(self, spec: FieldSpec, array: Any) -> list[str]:
        problems = []
        shape = spec.shape or ()
        label = spec.label()
        if array.ndim != len(shape):
            problems.append(
                f"{label} expected {len(shape)}-D shape {_shape_text(shape)}, "
                f"got {array.ndim}-D shape {_shape_text(array.shape)}"
            )
        elif any(want not in (-1, got) for want, got in zip(shape, array.shape, strict=True)):
            if len(shape) == 2 and shape[1] != array.shape[1]:
                problems.append(f"expected {shape[1]} features, got {array.shape[1]}")
            else:
                problems.append(
                    f"{label} expected shape {_shape_text(shape)}, got {_shape_text(array.shape)}"
                )
        actual = dtype_name(array.dtype)
        if not compatible(actual, spec.dtype):
            problems.append(f"{label} expected {spec.dtype}, got {actual}")
        return problems

    def _coerce_tensor(self, spec: FieldSpec, array: Any) -> Any:
        problems = self._check_tensor(spec, array)
        if problems:
            raise self._fail(problems)
        actual = dtype_name(array.dtype)
        if actual != spec.dtype and actual not in _STRINGS and spec.dtype not in _STRINGS:
            return array.astype(spec.dtype)
        return array

    def _coerce_tensors(self, data: Any) -> dict[str, Any]:
        frame = data if is_pandas(data, "DataFrame") else None
        if not isinstance(data, Mapping) and frame is None:
            names = ", ".join(f"'{n}'" for n in self.input_names)
            raise self._fail([f"expected a dict (or DataFrame) with inputs {names}"])
        missing = [n for n in self.input_names if n not in data]
        if missing:
            raise self._fail([f"missing input '{n}'" for n in missing])
        problems, out = [], {}
        for spec in self.inputs:
            value = data[spec.name]
            array = as_array(value)
            if frame is not None and spec.shape and len(spec.shape) == 2 and array.ndim == 1:
                array = array.reshape(-1, 1)  # a DataFrame column feeds an (N, 1) input
            found = self._check_tensor(spec, array)
            problems.extend(found)
            if not found:
                out[str(spec.name)] = self._coerce_tensor(spec, array)
        if problems:
            raise self._fail(problems)
        return out


def infer_signature(input_example: Any, output: Any = None) -> ModelSignature:
    """A signature from an example input and, optionally, the model's output on it.

    Args:
        input_example: a DataFrame, numpy array, list (of lists or of dicts) or dict of
            arrays.
        output: what the model's ``predict`` returned for ``input_example``.
    """
    outputs = infer_schema(output) if output is not None else ()
    return ModelSignature(inputs=infer_schema(input_example), outputs=outputs)
