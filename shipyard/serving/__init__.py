"""Model serving: the model server (OIP V2 and /predict), batching, rollouts, prediction log.

    shipyard serve models:/fraud@champion        # the CLI
    create_model_app(repository, settings)       # the ASGI app it runs
    ModelRepository / ServedModel                # loaded model versions
    Client("http://127.0.0.1:8080").predict(row) # the Python client
    PredictionLogWriter                          # rolling Parquet prediction log

Names are imported on first use, so ``import shipyard.serving`` stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.serving.app import create_model_app
    from shipyard.serving.batching import MicroBatcher, OverloadedError
    from shipyard.serving.client import Client
    from shipyard.serving.prediction_log import PredictionLogWriter
    from shipyard.serving.repository import ModelRepository
    from shipyard.serving.rollout import Rollout
    from shipyard.serving.runtime import ModelServer, ServeOptions
    from shipyard.serving.served import ServedModel

__all__ = [
    "Client",
    "MicroBatcher",
    "ModelRepository",
    "ModelServer",
    "OverloadedError",
    "PredictionLogWriter",
    "Rollout",
    "ServeOptions",
    "ServedModel",
    "create_model_app",
]

_LAZY = {
    "Client": "shipyard.serving.client",
    "MicroBatcher": "shipyard.serving.batching",
    "ModelRepository": "shipyard.serving.repository",
    "ModelServer": "shipyard.serving.runtime",
    "OverloadedError": "shipyard.serving.batching",
    "PredictionLogWriter": "shipyard.serving.prediction_log",
    "Rollout": "shipyard.serving.rollout",
    "ServeOptions": "shipyard.serving.runtime",
    "ServedModel": "shipyard.serving.served",
    "create_model_app": "shipyard.serving.app",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shipyard.serving' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
