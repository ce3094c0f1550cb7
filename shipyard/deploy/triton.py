"""Export a registered model as a Triton model repository: ``<name>/<version>/model.onnx``
plus ``<name>/config.pbtxt``.

The model is converted to ONNX (skl2onnx for scikit-learn, ``torch.onnx`` for PyTorch,
onnxmltools for XGBoost and LightGBM; ONNX models as they are), then run with onnxruntime
on the model's stored input example. The export is refused unless every output matches
the original model's within the tolerance (1e-5), so what Triton serves is what was
validated. The config's inputs and outputs (names, dtypes, dims) come from the exported
graph, whose inputs are typed from the model signature.
"""

from __future__ import annotations

import io
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from shipyard.errors import InvalidArgumentError, NotSupportedError
from shipyard.models.flavors.base import require

if TYPE_CHECKING:
    from shipyard.models.pyfunc import PyFuncModel

__all__ = [
    "TritonExport",
    "export_onnx",
    "export_triton",
    "triton_config",
    "verify_onnx",
]

logger = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
DEFAULT_TOLERANCE = 1e-5

#: ONNX TensorProto element type -> Triton data type.
TRITON_TYPES = {
    1: "TYPE_FP32",
    2: "TYPE_UINT8",
    3: "TYPE_INT8",
    4: "TYPE_UINT16",
    5: "TYPE_INT16",
    6: "TYPE_INT32",
    7: "TYPE_INT64",
    8: "TYPE_STRING",
    9: "TYPE_BOOL",
    10: "TYPE_FP16",
    11: "TYPE_FP64",
    12: "TYPE_UINT32",
    13: "TYPE_UINT64",
    16: "TYPE_BF16",
}

InstanceKind = Literal["KIND_GPU", "KIND_CPU"]


@dataclass(frozen=True)
class TritonExport:
    """What :func:`export_triton` wrote and how closely the export matched the model."""

    repository: Path
    model_dir: Path
    config_path: Path
    onnx_path: Path
    name: str
    version: str
    max_abs_diff: float
    float_type: str


# -- conversion ---------------------------------------------------------------------------


def _float_types(model: PyFuncModel) -> list[str]:
    """float32 first (what GPUs serve); for scikit-learn, float64 too when it was fitted on
    float64 and float32 loses too much precision."""
    if model.flavor != "sklearn":
        return ["float32"]
    signature = model.signature
    dtypes = {s.dtype for s in signature.inputs} if signature else set()
    return ["float32", "float64"] if "float64" in dtypes or not dtypes else ["float32"]


def _feature_count(model: PyFuncModel, example: Any) -> int:
    from shipyard.models.signature import as_array

    array = as_array(_prepared(model, example))
    return int(array.shape[1]) if array.ndim == 2 else 1


def _prepared(model: PyFuncModel, example: Any) -> Any:
    signature = model.signature
    return signature.coerce(example) if signature is not None else example


def export_onnx(model: PyFuncModel, example: Any, float_type: str = "float32") -> bytes:
    """The model converted to ONNX bytes, by the converter for its flavor.

    Raises:
        NotSupportedError: the flavor has no ONNX converter (pyfunc).
        ConfigError: the converter's package is not installed.
    """
    flavor = model.flavor
    if flavor == "onnx":
        return (model.path / model.manifest.flavor_config.get("file", MODEL_FILE)).read_bytes()
    if flavor == "sklearn":
        from shipyard.models.flavors.onnx import to_onnx

        return to_onnx(model.raw, model.signature, example, float_type=float_type)
    if flavor in ("lightgbm", "xgboost"):
        return _onnxmltools(model, example, float_type)
    if flavor == "torch":
        return _torch(model, example, float_type)
    raise NotSupportedError(
        f"A {flavor} model cannot be exported to ONNX for Triton: its code is arbitrary Python.",
        hint="Save the model with a convertible flavor (sklearn, torch, xgboost, lightgbm, "
        "onnx), or serve it with `shipyard serve`.",
    )


def _onnxmltools(model: PyFuncModel, example: Any, float_type: str) -> bytes:
    onnxmltools = require("onnxmltools", flavor="onnx", dist="onnxmltools")
    from onnxmltools.convert.common.data_types import FloatTensorType

    initial = [("input", FloatTensorType([None, _feature_count(model, example)]))]
    raw = model.raw
    if model.flavor == "lightgbm":
        proto = onnxmltools.convert_lightgbm(raw, initial_types=initial, zipmap=False)
    else:
        proto = onnxmltools.convert_xgboost(raw, initial_types=initial)
    return bytes(proto.SerializeToString())


def _torch(model: PyFuncModel, example: Any, float_type: str) -> bytes:
    torch = require("torch", flavor="torch", extra="torch")
    from shipyard.models.signature import as_array

    array = as_array(_prepared(model, example)).astype(float_type)
    tensor = torch.from_numpy(array.copy())
    module = model.raw
    names = (model.signature.input_names if model.signature else []) or ["input"]
    buffer = io.BytesIO()
    kwargs: dict[str, Any] = {
        "input_names": names[:1],
        "output_names": ["output"],
        "dynamic_axes": {names[0]: {0: "batch"}, "output": {0: "batch"}},
    }
    try:
        torch.onnx.export(module, (tensor,), buffer, dynamo=False, **kwargs)
    except TypeError:  # torch < 2.5 has no dynamo switch and only the TorchScript exporter
        torch.onnx.export(module, (tensor,), buffer, **kwargs)
    return buffer.getvalue()


# -- verification -------------------------------------------------------------------------


def _expected_outputs(model: PyFuncModel, example: Any) -> dict[str, Any]:
    import numpy as np

    expected = {"predict": np.asarray(model.predict(example))}
    if hasattr(model, "predict_proba"):  # False for models without probabilities
        expected["proba"] = np.asarray(model.predict_proba(example))
    return expected


def _onnx_feeds(session: Any, model: PyFuncModel, example: Any) -> dict[str, Any]:
    from shipyard.models.flavors.onnx import _feeds

    return _feeds(session, _prepared(model, example))


def _compare(name: str, got: Any, want: Any, tolerance: float) -> float:
    import numpy as np

    got, want = np.asarray(got), np.asarray(want)
    if got.size != want.size:
        raise IntegrityMismatch(f"output '{name}' has {got.size} values, expected {want.size}")
    got, want = got.reshape(want.shape), want
    if want.dtype.kind in "fc" or got.dtype.kind in "fc":
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        worst = float(diff.max()) if diff.size else 0.0
        if not np.all(diff <= tolerance * (1.0 + np.abs(want.astype(np.float64)))):
            raise IntegrityMismatch(f"output '{name}' differs by up to {worst:.3g}")
        return worst
    if not np.array_equal(got.astype(str), want.astype(str)):
        mismatches = int(np.sum(got.astype(str) != want.astype(str)))
        raise IntegrityMismatch(f"output '{name}' differs on {mismatches} of {want.size} rows")
    return 0.0


class IntegrityMismatch(Exception):
    """Raised inside verification; turned into a user-facing error by the caller."""


def verify_onnx(
    onnx_bytes: bytes, model: PyFuncModel, example: Any, tolerance: float = DEFAULT_TOLERANCE
) -> float:
    """Run the ONNX model on ``example`` and compare with the original model.

    The first ONNX output is compared with ``predict`` and a probabilities output with
    ``predict_proba``; floats must agree within ``tolerance`` (absolute, scaled by
    ``1 + |expected|`` for large values) and labels exactly.

    Returns:
        The largest absolute difference seen.

    Raises:
        IntegrityMismatch: an output differs.
    """
    from shipyard.models.flavors.onnx import PROBA_OUTPUTS, _as_proba

    ort = require("onnxruntime", flavor="onnx", extra="onnx")
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    results = dict(
        zip(names, session.run(names, _onnx_feeds(session, model, example)), strict=True)
    )
    expected = _expected_outputs(model, example)
    worst = _compare(names[0], results[names[0]], expected["predict"], tolerance)
    proba_name = next((n for n in names if n in PROBA_OUTPUTS), None)
    if proba_name and "proba" in expected:
        got = _as_proba(results[proba_name])
        worst = max(worst, _compare(proba_name, got, expected["proba"], tolerance))
    return worst


def _batch_shapes(onnx_bytes: bytes, model: PyFuncModel, example: Any) -> bytes:
    """The graph with output shapes as observed on the example, batch dimension dynamic.

    Some converters (onnxmltools for LightGBM) declare a fixed ``[1]`` label shape while
    returning one label per row; Triton checks declared shapes, so they must be right.
    """
    import onnx

    ort = require("onnxruntime", flavor="onnx", extra="onnx")
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    feeds = _onnx_feeds(session, model, example)
    rows = {int(v.shape[0]) for v in feeds.values() if getattr(v, "ndim", 0)}
    proto = onnx.load_from_string(onnx_bytes)
    inputs_batched = all((_dims(v) or [0])[0] == -1 for v in proto.graph.input)
    if len(rows) != 1 or not inputs_batched:
        return onnx_bytes
    (batch,) = rows
    names = [o.name for o in session.get_outputs()]
    observed = dict(zip(names, session.run(names, feeds), strict=True))
    changed = False
    for value in proto.graph.output:
        shape = getattr(observed.get(value.name), "shape", None)
        if not shape or shape[0] != batch or not value.type.HasField("tensor_type"):
            continue
        want = [-1, *shape[1:]]
        if _dims(value) == want:
            continue
        dims = value.type.tensor_type.shape.dim
        del dims[:]
        for index, size in enumerate(want):
            dim = dims.add()
            if index == 0:
                dim.dim_param = "N"
            else:
                dim.dim_value = int(size)
        changed = True
    return proto.SerializeToString() if changed else onnx_bytes


# -- config.pbtxt -------------------------------------------------------------------------


def _dims(value_info: Any) -> list[int]:
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else -1 for d in shape.dim]


def _io_block(kind: str, values: list[Any], batched: bool) -> str:
    entries = []
    for value in values:
        elem = value.type.tensor_type.elem_type
        data_type = TRITON_TYPES.get(elem)
        if data_type is None:
            raise NotSupportedError(
                f"ONNX {kind} '{value.name}' has element type {elem}, which Triton cannot serve."
            )
        dims = _dims(value)
        if batched:
            dims = dims[1:]
        lines = [f'    name: "{value.name}"', f"    data_type: {data_type}"]
        if batched and not dims:
            # A [batch] tensor: Triton needs one dim per item and reshapes it away.
            lines += ["    dims: [ 1 ]", "    reshape: { shape: [ ] }"]
        else:
            lines.append("    dims: [ " + ", ".join(str(d) for d in dims) + " ]")
        entries.append("  {\n" + "\n".join(lines) + "\n  }")
    return f"{kind} [\n" + ",\n".join(entries) + "\n]\n"


def _preferred_sizes(max_batch_size: int) -> list[int]:
    sizes, size = [], 8
    while size <= max_batch_size and len(sizes) < 4:
        sizes.append(size)
        size *= 2
    return sizes or [max_batch_size]


def triton_config(
    onnx_bytes: bytes,
    name: str,
    *,
    max_batch_size: int = 64,
    instance_kind: InstanceKind = "KIND_CPU",
    instance_count: int = 1,
    max_queue_delay_microseconds: int = 100,
) -> str:
    """``config.pbtxt`` for an ONNX model served by Triton's onnxruntime backend.

    Inputs and outputs take their names, types and dims from the ONNX graph. When every
    input and output has a dynamic first dimension, it is Triton's batch dimension:
    ``max_batch_size`` is set and dynamic batching is on; otherwise batching is off.
    """
    import onnx

    graph = onnx.load_from_string(onnx_bytes).graph
    initializers = {i.name for i in graph.initializer}
    inputs = [v for v in graph.input if v.name not in initializers]
    outputs = list(graph.output)
    batched = max_batch_size > 0 and all((_dims(v) or [0])[0] == -1 for v in [*inputs, *outputs])
    text = f'name: "{name}"\nplatform: "onnxruntime_onnx"\n'
    text += f"max_batch_size: {max_batch_size if batched else 0}\n"
    text += _io_block("input", inputs, batched)
    text += _io_block("output", outputs, batched)
    if batched:
        sizes = ", ".join(str(s) for s in _preferred_sizes(max_batch_size))
        text += (
            "dynamic_batching {\n"
            f"  preferred_batch_size: [ {sizes} ]\n"
            f"  max_queue_delay_microseconds: {max_queue_delay_microseconds}\n"
            "}\n"
        )
    text += (
        f"instance_group [\n  {{\n    count: {instance_count}\n    kind: {instance_kind}\n  }}\n]\n"
    )
    return text


# -- the repository -----------------------------------------------------------------------


def _check_name(name: str) -> str:
    if not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise InvalidArgumentError(
            f"Invalid Triton model name {name!r}.", hint="Use a name without '/', e.g. 'churn'."
        )
    return name


def export_triton(
    model: PyFuncModel,
    out: Path,
    *,
    name: str,
    version: int | str = 1,
    input_example: Any = None,
    max_batch_size: int = 64,
    instance_kind: InstanceKind = "KIND_CPU",
    instance_count: int = 1,
    tolerance: float = DEFAULT_TOLERANCE,
) -> TritonExport:
    """Write ``out/<name>/<version>/model.onnx`` and ``out/<name>/config.pbtxt``.

    Args:
        model: the loaded model (``shipyard.models.load("models:/name@alias")``).
        out: the Triton model repository root (created when missing).
        name: the model's name in Triton.
        version: the version folder, normally the registry version.
        input_example: data to verify on; default the example stored with the model.
        max_batch_size: Triton's batching limit (0 turns batching off).
        instance_kind: ``KIND_GPU`` or ``KIND_CPU``.

    Raises:
        InvalidArgumentError: no input example to verify the export on.
        IntegrityError: the exported model's outputs differ from the original's.
        NotSupportedError: the flavor cannot be converted to ONNX.
    """
    from shipyard.errors import IntegrityError

    _check_name(name)
    example = input_example if input_example is not None else model.input_example
    if example is None:
        raise InvalidArgumentError(
            f"Model '{name}' has no input example, so its ONNX export cannot be verified.",
            hint="Log the model with input_example=X[:5], or pass an input example.",
        )
    failures = []
    for float_type in _float_types(model):
        data = export_onnx(model, example, float_type)
        try:
            worst = verify_onnx(data, model, example, tolerance)
        except IntegrityMismatch as exc:
            failures.append(f"{float_type}: {exc}")
            logger.info("ONNX export of %s with %s inputs rejected: %s", name, float_type, exc)
            continue
        break
    else:
        raise IntegrityError(
            f"The ONNX export of model '{name}' does not reproduce its predictions within "
            f"{tolerance:g} on the input example ({'; '.join(failures)}). Nothing was written.",
            hint="The converter does not support this model exactly; serve it with "
            "`shipyard serve` instead of Triton.",
        )
    data = _batch_shapes(data, model, example)
    model_dir = Path(out) / name
    version_dir = model_dir / str(version)
    if version_dir.exists():
        shutil.rmtree(version_dir)
    version_dir.mkdir(parents=True)
    onnx_path = version_dir / MODEL_FILE
    onnx_path.write_bytes(data)
    config_path = model_dir / "config.pbtxt"
    config_path.write_text(
        triton_config(
            data,
            name,
            max_batch_size=max_batch_size,
            instance_kind=instance_kind,
            instance_count=instance_count,
        ),
        encoding="utf-8",
    )
    return TritonExport(
        repository=Path(out),
        model_dir=model_dir,
        config_path=config_path,
        onnx_path=onnx_path,
        name=name,
        version=str(version),
        max_abs_diff=worst,
        float_type=float_type,
    )
