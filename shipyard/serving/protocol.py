"""Open Inference Protocol V2 (KServe / Triton) over HTTP: tensors in and out of JSON.

Requests and responses follow the KServe "V2 inference protocol" REST spec, plus
Triton's binary tensor data extension (``Inference-Header-Content-Length``), which the
unmodified ``tritonclient.http`` client uses by default. Errors are the protocol's
``{"error": "<message>"}``.

JSON goes through orjson when it is installed (several times faster than ``json`` on
both ends of the hot path) and the standard library otherwise.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shipyard.errors import InvalidArgumentError

__all__ = [
    "BINARY_HEADER",
    "DATATYPES",
    "InferRequest",
    "RequestedOutput",
    "Tensor",
    "datatype_of",
    "dumps",
    "encode_infer_response",
    "loads",
    "numpy_dtype",
    "parse_infer_request",
]

#: Triton's binary data extension: length of the JSON part of a request or response body.
BINARY_HEADER = "inference-header-content-length"

#: OIP datatype -> numpy dtype (BYTES are numpy object arrays of ``bytes``/``str``).
DATATYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}
_BY_NAME = {np.dtype(t).name: name for name, t in DATATYPES.items() if name != "BYTES"}
_STRINGS = frozenset({"str", "string", "object", "bytes"})

try:
    import orjson

    _OPTIONS = orjson.OPT_SERIALIZE_NUMPY

    def dumps(value: Any) -> bytes:
        """JSON bytes of ``value`` (numpy arrays and scalars included)."""
        return orjson.dumps(value, option=_OPTIONS, default=_default)

    def loads(data: bytes | str) -> Any:
        """Parse JSON; ``ValueError`` on invalid input."""
        return orjson.loads(data)

except ImportError:  # pragma: no cover - orjson is a declared dependency

    def dumps(value: Any) -> bytes:
        """JSON bytes of ``value`` (numpy arrays and scalars included)."""
        return json.dumps(value, default=_default, separators=(",", ":")).encode()

    def loads(data: bytes | str) -> Any:
        """Parse JSON; ``ValueError`` on invalid input."""
        return json.loads(data)


def _default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def datatype_of(dtype: Any) -> str:
    """The OIP datatype of a numpy dtype or a signature dtype name ('float64' -> 'FP64')."""
    name = str(dtype)
    if name in _STRINGS:
        return "BYTES"
    try:
        np_dtype = np.dtype(dtype)
    except TypeError:
        return "BYTES"
    if np_dtype.kind in "OUS":
        return "BYTES"
    return _BY_NAME.get(np_dtype.name, "BYTES")


def numpy_dtype(datatype: str) -> Any:
    """The numpy dtype of an OIP datatype."""
    return DATATYPES[datatype]


class ProtocolError(InvalidArgumentError):
    """A request the protocol does not allow (400)."""


@dataclass
class Tensor:
    """One named input tensor of a request."""

    name: str
    datatype: str
    shape: list[int]
    data: np.ndarray
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool = False


@dataclass
class InferRequest:
    """A parsed ``.../infer`` request."""

    id: str | None
    inputs: list[Tensor]
    outputs: list[RequestedOutput] | None
    parameters: dict[str, Any]
    binary_output: bool = False

    def arrays(self) -> dict[str, np.ndarray]:
        return {t.name: t.data for t in self.inputs}


def _fail(message: str) -> ProtocolError:
    return ProtocolError(message, hint="See the Open Inference Protocol V2 request format.")


def _shape(raw: Any, name: str) -> list[int]:
    if not isinstance(raw, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in raw
    ):
        raise _fail(f"input '{name}': shape must be a list of non-negative integers")
    if len(raw) > 8:
        raise _fail(f"input '{name}': shape has {len(raw)} dimensions; at most 8 are allowed")
    return raw


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if data and isinstance(data[0], list):
        flat: list[Any] = []
        for item in data:
            flat.extend(_flatten(item))
        return flat
    return data


def _json_tensor(name: str, datatype: str, shape: list[int], data: Any) -> np.ndarray:
    size = math.prod(shape)
    if datatype == "BYTES":
        values = _flatten(data)
        if not all(isinstance(v, str) for v in values):
            raise _fail(f"input '{name}': BYTES data must be strings")
        array = np.empty(len(values), dtype=object)
        array[:] = values
    else:
        try:
            array = np.asarray(data)
        except (ValueError, TypeError, OverflowError):
            raise _fail(f"input '{name}': data is not a regular array of {datatype}") from None
        allowed = "b" if datatype == "BOOL" else ("iu" if datatype[0] in "IU" else "iuf")
        if array.size and array.dtype.kind not in allowed:
            raise _fail(f"input '{name}': data is not all {datatype} values")
        try:
            array = array.astype(DATATYPES[datatype], copy=False)
        except (ValueError, TypeError, OverflowError):
            raise _fail(f"input '{name}': data does not fit {datatype}") from None
    if array.size != size:
        raise _fail(f"input '{name}': shape {shape} holds {size} values but data has {array.size}")
    return array.reshape(shape)


def _bytes_tensor(raw: memoryview, count: int, name: str) -> np.ndarray:
    """Triton's serialized BYTES: each element a 4-byte little-endian length, then bytes."""
    values: list[bytes] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise _fail(f"input '{name}': truncated BYTES element length")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise _fail(f"input '{name}': truncated BYTES element")
        values.append(bytes(raw[offset : offset + length]))
        offset += length
    if len(values) != count:
        raise _fail(f"input '{name}': shape holds {count} values but data has {len(values)}")
    array = np.empty(count, dtype=object)
    array[:] = values
    return array


def parse_infer_request(body: bytes, header_length: str | None = None) -> InferRequest:
    """Parse an infer request body (JSON, or JSON followed by binary tensors).

    Raises:
        ProtocolError: the body is not a valid OIP V2 request; the message says why.
    """
    json_part: bytes | memoryview = body
    binary = memoryview(b"")
    if header_length is not None:
        try:
            length = int(header_length)
        except ValueError:
            raise _fail("Inference-Header-Content-Length is not an integer") from None
        if not 0 < length <= len(body):
            raise _fail("Inference-Header-Content-Length is outside the request body")
        view = memoryview(body)
        json_part, binary = view[:length], view[length:]
    try:
        doc = loads(bytes(json_part) if isinstance(json_part, memoryview) else json_part)
    except ValueError as exc:
        raise _fail(f"the request body is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise _fail("the request body must be a JSON object with an 'inputs' list")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise _fail("'inputs' must be a non-empty list of tensors")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise _fail("'id' must be a string")
    parameters = doc.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise _fail("'parameters' must be an object")
    inputs: list[Tensor] = []
    offset = 0
    seen: set[str] = set()
    for raw in raw_inputs:
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise _fail("every input must be an object with a string 'name'")
        name = raw["name"]
        if name in seen:
            raise _fail(f"input '{name}' appears twice")
        seen.add(name)
        datatype = raw.get("datatype")
        if datatype not in DATATYPES:
            raise _fail(
                f"input '{name}': datatype {datatype!r} is not one of {', '.join(DATATYPES)}"
            )
        shape = _shape(raw.get("shape"), name)
        params = raw.get("parameters") or {}
        if not isinstance(params, dict):
            raise _fail(f"input '{name}': 'parameters' must be an object")
        size = params.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise _fail(f"input '{name}': binary_data_size is outside the request body")
            chunk = binary[offset : offset + size]
            offset += size
            count = math.prod(shape)
            if datatype == "BYTES":
                data = _bytes_tensor(chunk, count, name).reshape(shape)
            else:
                dtype = np.dtype(DATATYPES[datatype])
                if size != count * dtype.itemsize:
                    raise _fail(
                        f"input '{name}': {size} bytes of binary data for shape {shape} "
                        f"of {datatype} (expected {count * dtype.itemsize})"
                    )
                data = np.frombuffer(chunk, dtype=dtype).reshape(shape)
        elif "data" in raw:
            data = _json_tensor(name, datatype, shape, raw["data"])
        else:
            raise _fail(f"input '{name}' has no 'data'")
        inputs.append(Tensor(name, datatype, shape, data, params))
    outputs = _requested_outputs(doc.get("outputs"))
    return InferRequest(
        id=request_id,
        inputs=inputs,
        outputs=outputs,
        parameters=parameters,
        binary_output=bool(parameters.get("binary_data_output", False)),
    )


def _requested_outputs(raw: Any) -> list[RequestedOutput] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise _fail("'outputs' must be a list of objects with a 'name'")
    found = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise _fail("every requested output must be an object with a string 'name'")
        params = item.get("parameters") or {}
        binary = bool(params.get("binary_data", False)) if isinstance(params, dict) else False
        found.append(RequestedOutput(item["name"], binary))
    return found


def _json_data(array: np.ndarray) -> Any:
    if array.dtype.kind == "O" or array.dtype.kind in "US":
        return [
            v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
            for v in array.ravel().tolist()
        ]
    if array.dtype == np.float16:
        return array.astype(np.float32).ravel()
    return np.ascontiguousarray(array).ravel()


def _binary_data(array: np.ndarray) -> bytes:
    if array.dtype.kind in "OUS":
        parts = []
        for value in array.ravel().tolist():
            raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
            parts.append(struct.pack("<I", len(raw)) + raw)
        return b"".join(parts)
    return np.ascontiguousarray(array).tobytes()


def encode_infer_response(
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: list[tuple[str, np.ndarray]],
    binary: set[str] | None = None,
    parameters: dict[str, Any] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The body and extra headers of an infer response.

    Args:
        outputs: (name, array) in response order.
        binary: names of outputs to send as binary data after the JSON part.
    """
    doc: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        doc["id"] = request_id
    if parameters:
        doc["parameters"] = parameters
    tensors = []
    blobs: list[bytes] = []
    for name, array in outputs:
        tensor: dict[str, Any] = {
            "name": name,
            "datatype": datatype_of(array.dtype),
            "shape": list(array.shape),
        }
        if binary and name in binary:
            blob = _binary_data(array)
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = _json_data(array)
        tensors.append(tensor)
    doc["outputs"] = tensors
    head = dumps(doc)
    if not blobs:
        return head, {}
    return head + b"".join(blobs), {"Inference-Header-Content-Length": str(len(head))}
