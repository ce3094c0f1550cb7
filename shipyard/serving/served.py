"""ServedModel: one loaded model version, with what the serving protocols need.

Its inputs and outputs as OIP tensors, fast checks that turn ``/predict`` rows and OIP
tensors into one batch (a float matrix, or a DataFrame for mixed columns), and ``run``,
what a micro-batch calls: predictions and, for classifiers, class probabilities together.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.errors import InvalidArgumentError
from shipyard.serving.protocol import datatype_of

if TYPE_CHECKING:
    from shipyard.models.pyfunc import PyFuncModel
    from shipyard.models.signature import ModelSignature

__all__ = [
    "ALLOW_NAN_TAG",
    "AUDIT_TAG",
    "DEFAULT_INPUT",
    "FEATURE_SERVICE_TAG",
    "PREDICT_OUTPUT",
    "PROBA_OUTPUT",
    "InputError",
    "ServedModel",
]

#: Name of the input tensor of a model whose signature does not name it.
DEFAULT_INPUT = "input-0"
PREDICT_OUTPUT = "predict"
PROBA_OUTPUT = "predict_proba"

#: Version tag naming the feature service the model reads at inference.
FEATURE_SERVICE_TAG = "shipyard.feature_service"
#: Version tag allowing NaN (missing values) in the features.
ALLOW_NAN_TAG = "shipyard.allow_nan"
#: Version tag turning on prediction audit records.
AUDIT_TAG = "shipyard.audit_predictions"

# Estimators whose predict() is exactly classes_[argmax(predict_proba())]: for them one
# predict_proba call gives both outputs.
_ARGMAX_CLASSIFIERS = frozenset(
    {
        "LogisticRegression",
        "RandomForestClassifier",
        "ExtraTreesClassifier",
        "DecisionTreeClassifier",
    }
)


_FEATURE_NAMES_MESSAGE = "X does not have valid feature names"
_SKLEARN_MODULES = "sklearn"
_FEATURE_NAMES_WARNING = (
    "ignore",
    re.compile(_FEATURE_NAMES_MESSAGE, re.I),
    UserWarning,
    re.compile(_SKLEARN_MODULES),
    0,
)


def _kind(dtype: str) -> str:
    try:
        return str(np.dtype(dtype).kind)
    except TypeError:
        return "O"


class InputError(InvalidArgumentError):
    """Input that does not fit the model (400); ``http_status`` 422 for wrong types."""


def _bad(message: str, *, status: int = 400, hint: str | None = None) -> InputError:
    error = InputError(message, hint=hint or "Send the features listed at /v2/models/<name>.")
    error.http_status = status
    return error


def _final_estimator(raw: Any) -> Any:
    steps = getattr(raw, "steps", None)
    return steps[-1][1] if steps else raw


class ServedModel:
    """One loaded model version.

    Attributes:
        name: the served name (the registered model's name by default).
        version: the registry version, as a string.
        inputs / outputs: ``(name, OIP datatype, shape)`` tensors; -1 is any size.
        feature_names: one name per feature column (prediction log ``feature.<name>``).
        tags: the registry version's tags.
    """

    def __init__(
        self,
        name: str,
        version: str,
        model: PyFuncModel,
        *,
        uri: str = "",
        tags: Mapping[str, str] | None = None,
        load_seconds: float = 0.0,
    ) -> None:
        self.name = name
        self.version = str(version)
        self.model = model
        self.uri = uri
        self.tags = dict(tags or {})
        self.load_seconds = load_seconds
        self.signature: ModelSignature | None = model.signature
        raw = model.raw
        final = _final_estimator(raw)
        self.classes: np.ndarray | None = getattr(final, "classes_", None)
        try:
            model.predict_proba  # noqa: B018 - raises AttributeError when absent
            self.has_proba = True
        except AttributeError:
            self.has_proba = False
        self._argmax = (
            self.has_proba
            and self.classes is not None
            and type(final).__name__ in _ARGMAX_CLASSIFIERS
        )
        self.allow_nan = self.tags.get(ALLOW_NAN_TAG, "").lower() in ("1", "true", "yes")
        self.audit = self.tags.get(AUDIT_TAG, "").lower() in ("1", "true", "yes")
        self.feature_service = self.tags.get(FEATURE_SERVICE_TAG) or None
        self._describe()
        # A scikit-learn model whose inputs are all floats gets the float matrix as is:
        # the signature was checked on the way in, and a DataFrame per call would cost
        # more than the model (~1 ms for one row).
        self.direct = (
            model.flavor == "sklearn"
            and self.batchable
            and self.n_features is not None
            and self.float_inputs
        )

    def __repr__(self) -> str:
        return f"ServedModel({self.name!r}, version={self.version!r}, flavor={self.model.flavor!r})"

    # -- description ---------------------------------------------------------------------

    def _describe(self) -> None:
        sig = self.signature
        self.columnar = bool(sig is not None and sig.is_columnar)
        self.numeric = True
        self.float_inputs = False
        self._int_columns: dict[str, str] = {}
        if sig is None or not sig.inputs:
            self.n_features: int | None = None
            self.feature_dtype = "float64"
            self.feature_names = []
            self.inputs = [(DEFAULT_INPUT, "FP64", [-1, -1])]
        elif self.columnar:
            self.feature_names = [str(s.name) for s in sig.inputs]
            self.n_features = len(self.feature_names)
            self.inputs = [
                (n, datatype_of(s.dtype), [-1])
                for n, s in zip(self.feature_names, sig.inputs, strict=True)
            ]
            self.numeric = all(dt not in ("BYTES", "BOOL") for _, dt, _ in self.inputs)
            self.float_inputs = all(_kind(s.dtype) == "f" for s in sig.inputs)
            self._int_columns = {
                n: s.dtype
                for n, s in zip(self.feature_names, sig.inputs, strict=True)
                if datatype_of(s.dtype)[0] in "IU"
            }
            self.feature_dtype = "float64"
        elif len(sig.inputs) == 1:
            spec = sig.inputs[0]
            shape = list(spec.shape or (-1,))
            self.n_features = shape[1] if len(shape) == 2 and shape[1] > 0 else None
            self.feature_dtype = spec.dtype
            self.numeric = datatype_of(spec.dtype) not in ("BYTES",)
            self.float_inputs = _kind(spec.dtype) == "f"
            count = self.n_features or 0
            self.feature_names = [f"x{i}" for i in range(count)]
            self.inputs = [(spec.name or DEFAULT_INPUT, datatype_of(spec.dtype), shape)]
        else:
            self.n_features = None
            self.feature_dtype = "float64"
            self.feature_names = []
            self.inputs = [
                (str(s.name), datatype_of(s.dtype), list(s.shape or (-1,))) for s in sig.inputs
            ]
        self.input_names = [n for n, _, _ in self.inputs]
        self.batchable = self.columnar or (sig is None or len(sig.inputs) <= 1)
        outputs: list[tuple[str, str, list[int]]] = []
        out_spec = sig.outputs[0] if sig is not None and sig.outputs else None
        if out_spec is not None:
            outputs.append(
                (PREDICT_OUTPUT, datatype_of(out_spec.dtype), list(out_spec.shape or (-1,)))
            )
        elif self.classes is not None:
            outputs.append((PREDICT_OUTPUT, datatype_of(self.classes.dtype), [-1]))
        else:
            outputs.append((PREDICT_OUTPUT, "FP64", [-1]))
        if self.has_proba:
            width = len(self.classes) if self.classes is not None else -1
            outputs.append((PROBA_OUTPUT, "FP64", [-1, width]))
        self.outputs = outputs
        self.output_names = [n for n, _, _ in outputs]

    def metadata(self) -> dict[str, Any]:
        """The OIP model metadata document."""
        doc: dict[str, Any] = {
            "name": self.name,
            "versions": [self.version],
            "platform": f"shipyard-{self.model.flavor}",
            "inputs": [{"name": n, "datatype": d, "shape": s} for n, d, s in self.inputs],
            "outputs": [{"name": n, "datatype": d, "shape": s} for n, d, s in self.outputs],
        }
        params: dict[str, Any] = {}
        if self.feature_names and not self.columnar:
            params["feature_names"] = self.feature_names
        if self.classes is not None:
            params["classes"] = self.classes.tolist()
        if self.feature_service:
            params["feature_service"] = self.feature_service
        if params:
            doc["parameters"] = params
        return doc

    # -- input -----------------------------------------------------------------------------

    def rows(self, values: Any, *, single: bool) -> Any:
        """``/predict`` input as a batch: a 2-D float array, or a DataFrame for columnar
        models with non-numeric columns.

        Args:
            values: one row (``single``) or a list of rows; for columnar models a row may
                also be an object ``{column: value}``.

        Raises:
            InputError: wrong count ("expected 20 features, got 19"), type (422) or NaN.
        """
        if not self.batchable:
            raise _bad(
                f"Model '{self.name}' takes several named tensors; /predict takes one row "
                "of features.",
                hint=f"Use POST /v2/models/{self.name}/infer with inputs "
                f"{', '.join(self.input_names)}.",
            )
        rows = [values] if single else values
        if not isinstance(rows, list) or not rows:
            raise _bad("Send at least one row of features.")
        if self.columnar and isinstance(rows[0], dict):
            return self._frame_from_dicts(rows)
        if not self.numeric:
            return self._frame_from_lists(rows)
        try:
            array = np.asarray(rows, dtype=np.float64)
        except (ValueError, TypeError):
            raise self._type_problem(rows) from None
        if array.ndim != 2:
            if array.ndim == 1 and not single:
                raise _bad("'instances' must be a list of rows (lists of feature values).")
            raise _bad("Features must be a flat list of numbers per row.", status=422)
        if self.n_features is not None and array.shape[1] != self.n_features:
            raise _bad(f"expected {self.n_features} features, got {array.shape[1]}.")
        self.check_finite(array)
        if self.columnar and not self.direct:
            import pandas as pd

            frame = pd.DataFrame(array, columns=self.feature_names)
            return frame.astype(self._int_columns) if self._int_columns else frame
        if self.feature_dtype != "float64" and np.dtype(self.feature_dtype).kind in "iuf":
            return array.astype(self.feature_dtype)
        return array

    def check_finite(self, array: np.ndarray) -> None:
        if array.dtype.kind == "f" and not self.allow_nan and not np.isfinite(array).all():
            bad = np.argwhere(~np.isfinite(array))[0]
            several = array.ndim == 2 and array.shape[0] > 1
            where = f"feature {int(bad[-1])}" + (f" of row {int(bad[0])}" if several else "")
            raise _bad(
                f"{where} is missing (null, NaN or infinite); this model does not accept "
                "missing values.",
                hint="Impute the value before sending it, or tag the model version "
                f"{ALLOW_NAN_TAG}=true if it handles missing values.",
            )

    def _type_problem(self, rows: list[Any]) -> InputError:
        for r, row in enumerate(rows):
            items = row if isinstance(row, list) else [row]
            for i, value in enumerate(items):
                if isinstance(value, list | dict):
                    return _bad("Features must be a flat list of numbers per row.", status=422)
                if value is not None and not isinstance(value, int | float):
                    where = f"feature {i}" + (f" of row {r}" if len(rows) > 1 else "")
                    return _bad(
                        f"{where} is {value!r}; expected a number.",
                        status=422,
                        hint="Send numbers (encode categories as the model was trained on).",
                    )
            if self.n_features is not None and len(items) != self.n_features:
                return _bad(f"expected {self.n_features} features, got {len(items)}.")
        return _bad("Rows must all have the same number of features.")

    def _frame_from_lists(self, rows: list[Any]) -> Any:
        import pandas as pd

        for row in rows:
            if not isinstance(row, list):
                raise _bad("Each row must be a list of feature values.", status=422)
            if self.n_features is not None and len(row) != self.n_features:
                raise _bad(f"expected {self.n_features} features, got {len(row)}.")
        frame = pd.DataFrame(rows, columns=self.feature_names or None).infer_objects()
        return self._coerce(frame)

    def _frame_from_dicts(self, rows: list[Any]) -> Any:
        import pandas as pd

        names = set(self.feature_names)
        for row in rows:
            if not isinstance(row, dict):
                raise _bad("Mix of rows as objects and as lists; use one form.", status=422)
            missing = [n for n in self.feature_names if n not in row]
            if missing:
                listed = ", ".join(f"'{n}'" for n in missing[:5])
                raise _bad(
                    f"missing feature{'s' if len(missing) > 1 else ''} {listed} "
                    f"(expected {len(names)} features, got {len(row)})."
                )
        frame = pd.DataFrame(rows, columns=self.feature_names)
        return self._coerce(frame)

    def _coerce(self, frame: Any) -> Any:
        assert self.signature is not None
        try:
            frame = self.signature.coerce(frame)
        except InvalidArgumentError as exc:
            raise _bad(exc.message, status=422) from None
        numeric = frame.select_dtypes("number")
        if numeric.shape[1]:
            self.check_finite(numeric.to_numpy(dtype=np.float64))
        return frame

    def batch_from_tensors(self, inputs: Mapping[str, np.ndarray]) -> Any:
        """OIP input tensors as one batch for :meth:`run` (2-D array or DataFrame)."""
        if self.columnar:
            return self._columns_batch(inputs)
        if len(inputs) != 1:
            raise _bad(
                f"Model '{self.name}' takes one input tensor ('{self.input_names[0]}'), "
                f"got {len(inputs)}."
            )
        name, array = next(iter(inputs.items()))
        if name != self.input_names[0]:
            raise _bad(f"Unknown input '{name}'; this model's input is '{self.input_names[0]}'.")
        if array.ndim == 1 and self.n_features is not None:
            array = array.reshape(1, -1) if array.shape[0] == self.n_features else array
        if array.ndim != 2:
            raise _bad(
                f"input '{name}' must be 2-D [rows, features], got shape {list(array.shape)}."
            )
        if self.n_features is not None and array.shape[1] != self.n_features:
            raise _bad(f"expected {self.n_features} features, got {array.shape[1]}.")
        if array.dtype.kind == "O":
            raise _bad(f"input '{name}' must be numeric, got BYTES.", status=422)
        self.check_finite(array)
        dtype = self.feature_dtype if np.dtype(self.feature_dtype).kind in "iufb" else "float64"
        return array.astype(dtype, copy=False)

    def _columns_batch(self, inputs: Mapping[str, np.ndarray]) -> Any:
        import pandas as pd

        if len(inputs) == 1 and self.n_features and self.n_features > 1:
            name, array = next(iter(inputs.items()))
            if name not in self.feature_names and array.ndim == 2 and self.numeric:
                if array.shape[1] != self.n_features:
                    raise _bad(f"expected {self.n_features} features, got {array.shape[1]}.")
                if self.direct:
                    return self._checked(array.astype(np.float64, copy=False))
                self.check_finite(array.astype(np.float64, copy=False))
                frame = pd.DataFrame(array, columns=self.feature_names)
                return frame.astype(self._int_columns) if self._int_columns else frame
        unknown = [n for n in inputs if n not in set(self.feature_names)]
        if unknown:
            raise _bad(f"Unknown input '{unknown[0]}'; inputs are {', '.join(self.feature_names)}.")
        missing = [n for n in self.feature_names if n not in inputs]
        if missing:
            raise _bad(f"missing input '{missing[0]}' (expected {len(self.feature_names)} inputs).")
        columns = {}
        length = None
        for name in self.feature_names:
            array = inputs[name]
            if array.ndim == 2 and array.shape[1] == 1:
                array = array[:, 0]
            if array.ndim != 1:
                raise _bad(f"input '{name}' must have shape [rows] or [rows, 1].")
            if length is not None and array.shape[0] != length:
                raise _bad("All inputs must have the same number of rows.")
            length = array.shape[0]
            if array.dtype.kind == "O":
                array = np.array(
                    [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in array],
                    dtype=object,
                )
            columns[name] = array
        if self.direct:
            if any(c.dtype.kind not in "biuf" for c in columns.values()):
                raise _bad("Every input of this model is a number; got BYTES.", status=422)
            return self._checked(
                np.column_stack([columns[n] for n in self.feature_names]).astype(np.float64)
            )
        return self._coerce(pd.DataFrame(columns))

    def _checked(self, array: np.ndarray) -> np.ndarray:
        self.check_finite(array)
        return array

    # -- prediction ------------------------------------------------------------------------

    def run(self, batch: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Predictions and (classifiers) probabilities for a batch, in one model call
        when the estimator's prediction is the most probable class."""
        model = self._callee(batch)
        if self._argmax:
            proba = np.asarray(model.predict_proba(batch))
            assert self.classes is not None
            return self.classes[proba.argmax(axis=1)], proba
        pred = np.asarray(model.predict(batch))
        proba = np.asarray(model.predict_proba(batch)) if self.has_proba else None
        return pred, proba

    def _callee(self, batch: Any) -> Any:
        """What to call for ``batch``: the estimator itself for a checked float matrix
        (see ``direct``), else the PyFuncModel, which checks and converts."""
        if not (self.direct and isinstance(batch, np.ndarray)):
            return self.model
        if self.columnar and _FEATURE_NAMES_WARNING not in warnings.filters:
            # Fitted on a DataFrame, given its float matrix in column order.
            warnings.filterwarnings("ignore", _FEATURE_NAMES_MESSAGE, UserWarning, _SKLEARN_MODULES)
        return self.model.raw

    def predict(self, data: Any) -> np.ndarray:
        """Predictions for a 2-D array (or DataFrame), checked against the signature."""
        if self.direct and isinstance(data, np.ndarray):
            data = self._matrix(data)
        return np.asarray(self._callee(data).predict(data))

    def _matrix(self, array: np.ndarray) -> np.ndarray:
        """``array`` as this model's float matrix, checked (width, type, missing values)."""
        if array.ndim == 1 and array.shape[0] == self.n_features:
            array = array.reshape(1, -1)
        if array.ndim != 2:
            raise _bad(f"expected a 2-D array [rows, features], got shape {list(array.shape)}.")
        if array.shape[1] != self.n_features:
            raise _bad(f"expected {self.n_features} features, got {array.shape[1]}.")
        if array.dtype.kind not in "biuf":
            raise _bad("Every input of this model is a number.", status=422)
        dtype = np.float64 if self.columnar else self.feature_dtype
        return self._checked(array.astype(dtype, copy=False))

    def infer(
        self, inputs: Mapping[str, np.ndarray], outputs: list[str] | None = None
    ) -> dict[str, np.ndarray]:
        """OIP inference without batching: named input tensors in, named outputs out.

        Raises:
            InputError: unknown inputs or outputs, wrong shapes or types.
        """
        wanted = outputs or self.output_names
        unknown = [o for o in wanted if o not in self.output_names]
        if unknown:
            raise _bad(
                f"Unknown output '{unknown[0]}'; outputs are {', '.join(self.output_names)}."
            )
        if not self.batchable:
            try:
                pred = np.asarray(self.model.predict(dict(inputs)))
            except InvalidArgumentError as exc:
                raise _bad(exc.message) from None
            return {PREDICT_OUTPUT: pred}
        batch = self.batch_from_tensors(inputs)
        if wanted == [PREDICT_OUTPUT] and not self._argmax:
            return {PREDICT_OUTPUT: self.predict(batch)}
        pred, proba = self.run(batch)
        found = {PREDICT_OUTPUT: pred, PROBA_OUTPUT: proba}
        return {name: found[name] for name in wanted if found.get(name) is not None}
