"""Model flavors, registered by name as ``"module:Class"`` and imported on first use.

``import shipyard.models`` imports no ML library: a flavor module (and the library it
wraps) loads only when a model of that flavor is saved or loaded. Flavors for optional
libraries raise ConfigError with the ``pip install "shipyard[...]"`` line when missing.
"""

from __future__ import annotations

import importlib
from typing import Any

from shipyard.errors import InvalidArgumentError, did_you_mean
from shipyard.models.flavors.base import (
    Flavor,
    FlavorVersionWarning,
    LoadedModel,
    SavedFlavor,
)

__all__ = [
    "FLAVORS",
    "Flavor",
    "FlavorVersionWarning",
    "LoadedModel",
    "SavedFlavor",
    "detect_flavor",
    "get_flavor",
]

FLAVORS: dict[str, str] = {
    "lightgbm": "shipyard.models.flavors.lightgbm:LightGBMFlavor",
    "onnx": "shipyard.models.flavors.onnx:OnnxFlavor",
    "pyfunc": "shipyard.models.flavors.pyfunc:PyfuncFlavor",
    "sklearn": "shipyard.models.flavors.sklearn:SklearnFlavor",
    "torch": "shipyard.models.flavors.torch:TorchFlavor",
    "xgboost": "shipyard.models.flavors.xgboost:XGBoostFlavor",
}

#: Top-level module of a class in the model's MRO -> flavor, most specific first:
#: XGBClassifier is also a scikit-learn BaseEstimator, but belongs to xgboost.
_MODULE_FLAVORS = (
    ("xgboost", "xgboost"),
    ("lightgbm", "lightgbm"),
    ("torch", "torch"),
    ("sklearn", "sklearn"),
    ("onnx", "onnx"),
)

_instances: dict[str, Flavor] = {}


def get_flavor(name: str) -> Flavor:
    """The flavor registered as ``name``, importing its module on first use.

    Raises:
        InvalidArgumentError: no flavor has that name.
    """
    flavor = _instances.get(name)
    if flavor is None:
        target = FLAVORS.get(name)
        if target is None:
            raise InvalidArgumentError(
                f"Unknown model flavor '{name}'. Supported: {', '.join(sorted(FLAVORS))}."
                f"{did_you_mean(name, FLAVORS)}"
            )
        module, _, cls = target.partition(":")
        flavor = getattr(importlib.import_module(module), cls)()
        _instances[name] = flavor
    return flavor


def detect_flavor(model: Any) -> str:
    """The flavor name for ``model``, from its type alone; no ML library is imported.

    Raises:
        InvalidArgumentError: the model is none of the known kinds and has no predict().
    """
    if isinstance(model, bytes | bytearray | memoryview):
        return "onnx"
    roots = {cls.__module__.partition(".")[0] for cls in type(model).__mro__}
    for root, flavor in _MODULE_FLAVORS:
        if root in roots:
            return flavor
    if callable(getattr(model, "predict", None)):
        return "pyfunc"
    raise InvalidArgumentError(
        f"Cannot tell which flavor saves a {type(model).__module__}.{type(model).__name__}.",
        hint=f"Pass flavor= (one of {', '.join(sorted(FLAVORS))}), or give the object a "
        "predict(X) method to save it as pyfunc.",
    )
