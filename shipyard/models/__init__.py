"""Model packaging: save a model as a hash-checked folder, load it back as a PyFuncModel.

    save_model(model, path, input_example=X[:5])  -> ModelManifest (shipyard-model.json)
    load_model(path)                              -> PyFuncModel (.predict, .predict_proba)
    load("models:/name@alias")                    -> PyFuncModel, through the registry
    log_model(model, "model", ...)                -> ModelInfo, into the active run

Flavors (sklearn, onnx, pyfunc, xgboost, lightgbm, torch) are imported on first use, so
``import shipyard.models`` imports no ML library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.models.flavors import FlavorVersionWarning, detect_flavor, get_flavor
from shipyard.models.manifest import MANIFEST_FILE, FileDigest, ModelManifest, manifest_sha256
from shipyard.models.packaging import load_model, save_model
from shipyard.models.pyfunc import PyFuncModel
from shipyard.models.requirements import infer_requirements
from shipyard.models.signature import FieldSpec, ModelSignature, infer_signature

if TYPE_CHECKING:
    from shipyard.models.logging import ModelInfo, load, log_model

__all__ = [
    "MANIFEST_FILE",
    "FieldSpec",
    "FileDigest",
    "FlavorVersionWarning",
    "ModelInfo",
    "ModelManifest",
    "ModelSignature",
    "PyFuncModel",
    "detect_flavor",
    "get_flavor",
    "infer_requirements",
    "infer_signature",
    "load",
    "load_model",
    "log_model",
    "manifest_sha256",
    "save_model",
]


def __getattr__(name: str) -> Any:
    # shipyard.models.logging needs the tracking client; import it only when asked for.
    if name in ("load", "log_model", "ModelInfo"):
        from shipyard.models import logging as _logging

        return getattr(_logging, name)
    raise AttributeError(f"module 'shipyard.models' has no attribute '{name}'")
