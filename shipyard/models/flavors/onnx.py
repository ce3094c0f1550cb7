"""ONNX flavor: ``model.onnx`` run with onnxruntime, plus scikit-learn -> ONNX export.

Saving needs nothing but the bytes (an ``onnx.ModelProto`` or the serialized model);
loading needs onnxruntime (``pip install "shipyard[onnx]"``). Inputs are fed by the
model's own input names and cast to the input types it declares.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from shipyard.errors import InvalidArgumentError
from shipyard.models.flavors.base import LoadedModel, SavedFlavor, require
from shipyard.models.signature import FieldSpec, ModelSignature, as_array, is_pandas

if TYPE_CHECKING:
    from shipyard.models.manifest import ModelManifest

__all__ = ["OnnxFlavor", "to_onnx"]

MODEL_FILE = "model.onnx"
EXTRA = "onnx"

#: onnxruntime type strings -> numpy dtype names.
_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint64)": "uint64",
    "tensor(uint32)": "uint32",
    "tensor(uint16)": "uint16",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
    "tensor(string)": "str",
}
#: TensorProto element types -> numpy dtype names.
_ELEM_DTYPES = {
    1: "float32",
    2: "uint8",
    3: "int8",
    4: "uint16",
    5: "int16",
    6: "int32",
    7: "int64",
    8: "str",
    9: "bool",
    10: "float16",
    11: "float64",
    12: "uint32",
    13: "uint64",
}
#: Output names converters give class probabilities (skl2onnx, onnxmltools).
PROBA_OUTPUTS = ("probabilities", "output_probability", "probability")


def _model_bytes(model: Any) -> bytes:
    if isinstance(model, bytes | bytearray | memoryview):
        return bytes(model)
    if callable(getattr(model, "SerializeToString", None)):
        return bytes(model.SerializeToString())
    if isinstance(model, str | Path) and str(model).endswith(".onnx"):
        return Path(model).read_bytes()
    raise InvalidArgumentError(
        f"Cannot save a {type(model).__name__} with the onnx flavor.",
        hint="Pass an onnx.ModelProto, the serialized bytes, or a path to a .onnx file.",
    )


def _field(value_info: Any) -> FieldSpec:
    tensor = value_info.type.tensor_type
    if not value_info.type.HasField("tensor_type"):
        return FieldSpec(name=value_info.name, dtype="object", shape=(-1,))
    dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
    return FieldSpec(
        name=value_info.name, dtype=_ELEM_DTYPES.get(tensor.elem_type, "object"), shape=dims
    )


def _proto_signature(proto: Any) -> ModelSignature:
    """The signature an ONNX graph declares (initializers are not inputs)."""
    graph = proto.graph
    initializers = {init.name for init in graph.initializer}
    inputs = tuple(_field(v) for v in graph.input if v.name not in initializers)
    return ModelSignature(inputs=inputs, outputs=tuple(_field(v) for v in graph.output))


def _cast(value: Any, ort_type: str) -> Any:
    array = as_array(value)
    dtype = _ORT_DTYPES.get(ort_type)
    if dtype == "str":
        return array if array.dtype.kind == "O" else array.astype(object)
    return array.astype(dtype, copy=False) if dtype else array


def _feeds(session: Any, data: Any) -> dict[str, Any]:
    inputs = session.get_inputs()
    names = [i.name for i in inputs]
    if isinstance(data, Mapping) or (len(inputs) > 1 and is_pandas(data, "DataFrame")):
        missing = [n for n in names if n not in data]
        if missing:
            raise InvalidArgumentError(
                f"The ONNX model needs inputs {names}; missing {missing}.",
                hint="Pass a dict (or a DataFrame) keyed by the model's input names.",
            )
        feeds = {}
        for spec in inputs:
            array = _cast(data[spec.name], spec.type)
            if array.ndim == 1 and len(spec.shape) == 2:
                array = array.reshape(-1, 1)  # a column feeds an (N, 1) input
            feeds[spec.name] = array
        return feeds
    if len(inputs) > 1:
        raise InvalidArgumentError(
            f"The ONNX model has {len(inputs)} inputs {names}; got a single array.",
            hint="Pass a dict (or a DataFrame) keyed by the model's input names.",
        )
    return {inputs[0].name: _cast(data, inputs[0].type)}


def _as_proba(output: Any) -> Any:
    import numpy as np

    if isinstance(output, list) and output and isinstance(output[0], Mapping):
        keys = list(output[0])  # ZipMap output: one {class: probability} dict per row
        return np.array([[row[k] for k in keys] for row in output])
    return np.asarray(output)


class OnnxFlavor:
    """Saves ONNX models; loads them as an onnxruntime InferenceSession."""

    name: ClassVar[str] = "onnx"
    packages: ClassVar[tuple[str, ...]] = ("onnxruntime", "numpy")

    def save(self, model: Any, path: Path) -> SavedFlavor:
        data = _model_bytes(model)
        (path / MODEL_FILE).write_bytes(data)
        config: dict[str, Any] = {"file": MODEL_FILE}
        proto = model if hasattr(model, "graph") else None
        if proto is None and importlib.util.find_spec("onnx") is not None:
            import onnx

            proto = onnx.load_from_string(data)
        signature = None
        if proto is not None:
            config["ir_version"] = int(proto.ir_version)
            config["opset"] = {op.domain or "ai.onnx": int(op.version) for op in proto.opset_import}
            signature = _proto_signature(proto)
        try:
            version = metadata.version("onnx")
        except metadata.PackageNotFoundError:
            version = ""
        return SavedFlavor(version=version, config=config, signature=signature)

    def load(self, path: Path, manifest: ModelManifest) -> LoadedModel:
        config = manifest.flavor_config
        ort = require("onnxruntime", flavor=self.name, extra=EXTRA)
        session = ort.InferenceSession(
            str(path / config.get("file", MODEL_FILE)), providers=["CPUExecutionProvider"]
        )
        return self.wrap(session, config)

    def wrap(self, model: Any, config: dict[str, Any]) -> LoadedModel:
        session = model
        if not callable(getattr(model, "get_inputs", None)):
            ort = require("onnxruntime", flavor=self.name, extra=EXTRA)
            session = ort.InferenceSession(_model_bytes(model), providers=["CPUExecutionProvider"])
        outputs = [o.name for o in session.get_outputs()]
        proba_name = next((n for n in outputs if n in PROBA_OUTPUTS), None)

        def predict(data: Any) -> Any:
            return session.run(outputs[:1], _feeds(session, data))[0]

        def predict_proba(data: Any) -> Any:
            return _as_proba(session.run([proba_name], _feeds(session, data))[0])

        return LoadedModel(
            raw=session, predict=predict, predict_proba=predict_proba if proba_name else None
        )


def _initial_types(signature: ModelSignature, float_type: str) -> list[tuple[str, Any]]:
    from skl2onnx.common import data_types as types

    def tensor_type(dtype: str, shape: list[int | None]) -> Any:
        import numpy as np

        kind = np.dtype(dtype).kind if dtype not in ("str", "string", "object") else "U"
        if kind == "f":
            return (types.DoubleTensorType if float_type == "float64" else types.FloatTensorType)(
                shape
            )
        if kind in "iu":
            return types.Int64TensorType(shape)
        if kind == "b":
            return types.BooleanTensorType(shape)
        return types.StringTensorType(shape)

    if signature.is_columnar:
        import numpy as np

        numeric = all(
            s.dtype not in ("str", "string", "object") and np.dtype(s.dtype).kind in "biuf"
            for s in signature.inputs
        )
        if numeric:  # one matrix input, columns in signature order
            return [("input", tensor_type(float_type, [None, len(signature.inputs)]))]
        return [(str(s.name), tensor_type(s.dtype, [None, 1])) for s in signature.inputs]
    return [
        (
            s.name or "input",
            tensor_type(s.dtype, [None if d == -1 else d for d in (s.shape or (-1,))]),
        )
        for s in signature.inputs
    ]


def to_onnx(
    model: Any,
    signature: ModelSignature | Mapping[str, Any] | None = None,
    input_example: Any = None,
    *,
    target_opset: int | None = None,
    float_type: str = "float32",
) -> bytes:
    """Convert a scikit-learn model to ONNX bytes with skl2onnx (e.g. for Triton).

    Inputs are typed from ``signature`` (or one inferred from ``input_example``): a
    numeric DataFrame or a matrix becomes one ``input`` tensor of shape [N, features];
    mixed-type columns become one [N, 1] input per column. Classifiers output ``label``
    and a ``probabilities`` tensor (no ZipMap).

    Raises:
        ConfigError: skl2onnx is not installed.
        InvalidArgumentError: neither a signature nor an input example is given.
    """
    skl2onnx = require("skl2onnx", flavor="onnx", extra=EXTRA)
    if signature is None:
        if input_example is None:
            raise InvalidArgumentError(
                "to_onnx needs a signature or an input_example to type the model's inputs.",
                hint="Pass input_example=X_train[:5].",
            )
        from shipyard.models.signature import infer_signature

        signature = infer_signature(input_example)
    elif isinstance(signature, Mapping):
        signature = ModelSignature.from_dict(signature)
    from sklearn.base import is_classifier

    estimators = [model, *(v for v in model.get_params(deep=True).values() if hasattr(v, "fit"))]
    options = {id(e): {"zipmap": False} for e in estimators if is_classifier(e)}
    proto = skl2onnx.convert_sklearn(
        model,
        initial_types=_initial_types(signature, float_type),
        target_opset=target_opset,
        options=options or None,
    )
    return bytes(proto.SerializeToString())
