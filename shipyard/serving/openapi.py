"""The model server's OpenAPI document, written out: the hot routes are plain Starlette
endpoints, so FastAPI cannot derive it, and the OIP V2 schemas are the protocol's own."""

from __future__ import annotations

from typing import Any

from shipyard import __version__
from shipyard.serving.protocol import DATATYPES

__all__ = ["openapi_document"]

_OIP_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}},
    "required": ["error"],
}
_API_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}
_SHAPE = {"type": "array", "items": {"type": "integer", "minimum": -1}}
_TENSOR_META = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string"},
        "shape": _SHAPE,
    },
    "required": ["name", "datatype", "shape"],
}
_INFER_INPUT = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string", "enum": list(DATATYPES)},
        "parameters": {"type": "object"},
        "data": {"type": "array"},
    },
    "required": ["name", "shape", "datatype"],
}
_INFER_REQUEST = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "inputs": {"type": "array", "items": _INFER_INPUT, "minItems": 1},
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "parameters": {"type": "object"}},
                "required": ["name"],
            },
        },
    },
    "required": ["inputs"],
}
_INFER_RESPONSE = {
    "type": "object",
    "properties": {
        "model_name": {"type": "string"},
        "model_version": {"type": "string"},
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "shape": _SHAPE,
                    "datatype": {"type": "string"},
                    "parameters": {"type": "object"},
                    "data": {"type": "array"},
                },
                "required": ["name", "shape", "datatype"],
            },
        },
    },
    "required": ["model_name", "outputs"],
}
_MODEL_METADATA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "versions": {"type": "array", "items": {"type": "string"}},
        "platform": {"type": "string"},
        "inputs": {"type": "array", "items": _TENSOR_META},
        "outputs": {"type": "array", "items": _TENSOR_META},
        "parameters": {"type": "object"},
    },
    "required": ["name", "platform", "inputs", "outputs"],
}
_NUMBER_OR_NULL = {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "null"}]}
_PREDICT_REQUEST = {
    "type": "object",
    "properties": {
        "model": {"type": "string"},
        "id": {"type": "string"},
        "features": {
            "description": "One row: values in input order, or {feature: value}.",
            "anyOf": [{"type": "array", "items": _NUMBER_OR_NULL}, {"type": "object"}],
        },
        "instances": {
            "description": "Several rows, each as 'features' takes one.",
            "type": "array",
            "items": {"anyOf": [{"type": "array", "items": _NUMBER_OR_NULL}, {"type": "object"}]},
        },
        "entities": {"anyOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]},
    },
}
_LABEL = {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}]}
_PREDICT_RESPONSE = {
    "type": "object",
    "properties": {
        "prediction": _LABEL,
        "predictions": {"type": "array", "items": _LABEL},
        "confidence": {"type": ["number", "null"]},
        "confidences": {"type": ["array", "null"], "items": {"type": "number"}},
        "model": {"type": "string"},
        "model_version": {"type": "string"},
        "variant": {"type": "string"},
        "request_id": {"type": "string"},
        "processing_time_ms": {"type": "number"},
    },
    "required": ["model", "model_version", "request_id", "processing_time_ms"],
}


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _responses(ok: dict[str, Any], error: dict[str, Any], *codes: int) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": {"description": "OK", "content": _json_content(ok)}}
    for code in codes:
        responses[str(code)] = {"description": "Error", "content": _json_content(error)}
    return responses


def _path_params(*names: str) -> list[dict[str, Any]]:
    return [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names
    ]


def openapi_document(auth: bool = False) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the model server (``auth`` adds bearer security)."""
    secured = [{"Bearer": []}] if auth else []
    paths: dict[str, Any] = {
        "/v2/health/live": {
            "get": {
                "summary": "Server liveness (OIP V2)",
                "operationId": "server_live",
                "responses": _responses({"type": "object"}, _OIP_ERROR),
            }
        },
        "/v2/health/ready": {
            "get": {
                "summary": "Server readiness (OIP V2)",
                "operationId": "server_ready",
                "responses": _responses({"type": "object"}, _OIP_ERROR, 503),
            }
        },
        "/v2": {
            "get": {
                "summary": "Server metadata (OIP V2)",
                "operationId": "server_metadata",
                "responses": _responses(
                    {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "version": {"type": "string"},
                            "extensions": {"type": "array", "items": {"type": "string"}},
                        },
                        "required": ["name", "version", "extensions"],
                    },
                    _OIP_ERROR,
                ),
            }
        },
        "/health": {
            "get": {
                "summary": "Health and served models",
                "operationId": "health",
                "responses": _responses({"type": "object"}, _API_ERROR),
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "operationId": "metrics",
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }
    for suffix, params in (("", ("name",)), ("/versions/{version}", ("name", "version"))):
        base = f"/v2/models/{{name}}{suffix}"
        op = "_version" if suffix else ""
        paths[base] = {
            "get": {
                "summary": "Model metadata (OIP V2)",
                "operationId": f"model{op}_metadata",
                "parameters": _path_params(*params),
                "security": secured,
                "responses": _responses(_MODEL_METADATA, _OIP_ERROR, 400, 401, 403, 404),
            }
        }
        paths[f"{base}/ready"] = {
            "get": {
                "summary": "Model readiness (OIP V2)",
                "operationId": f"model{op}_ready",
                "parameters": _path_params(*params),
                "responses": _responses({"type": "object"}, _OIP_ERROR, 400, 404),
            }
        }
        paths[f"{base}/infer"] = {
            "post": {
                "summary": "Inference (OIP V2)",
                "operationId": f"model{op}_infer",
                "parameters": _path_params(*params),
                "security": secured,
                "requestBody": {"required": True, "content": _json_content(_INFER_REQUEST)},
                "responses": _responses(
                    _INFER_RESPONSE, _OIP_ERROR, 400, 401, 403, 404, 413, 422, 503
                ),
            }
        }
    for path, op in (("/predict", "predict"), ("/secure-predict", "secure_predict")):
        paths[path] = {
            "post": {
                "summary": "Predict from features, instances or entity ids",
                "operationId": op,
                "security": secured,
                "requestBody": {"required": True, "content": _json_content(_PREDICT_REQUEST)},
                "responses": _responses(
                    _PREDICT_RESPONSE, _API_ERROR, 400, 401, 403, 404, 413, 422, 503
                ),
            }
        }
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Shipyard model server",
            "version": __version__,
            "description": "Open Inference Protocol V2 and /predict for registered models.",
        },
        "paths": paths,
    }
    if auth:
        document["components"] = {
            "securitySchemes": {
                "Bearer": {"type": "http", "scheme": "bearer", "description": "JWT or shy_ key"}
            }
        }
    return document
