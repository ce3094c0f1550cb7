"""LightGBM flavor: the booster's text format, ``model.txt``. Needs ``shipyard[lightgbm]``.

Scikit-learn wrappers (LGBMClassifier, LGBMRegressor) are saved as their booster plus the
class labels, and load as a ``lightgbm.Booster``; ``predict`` still returns labels for a
classifier and ``predict_proba`` its probabilities, as the wrapper did.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from shipyard.errors import InvalidArgumentError
from shipyard.models.flavors.base import LoadedModel, SavedFlavor, require

if TYPE_CHECKING:
    from shipyard.models.manifest import ModelManifest

MODEL_FILE = "model.txt"
EXTRA = "lightgbm"


class LightGBMFlavor:
    """Saves ``Booster.save_model``; loads ``lightgbm.Booster(model_file=...)``."""

    name: ClassVar[str] = "lightgbm"
    packages: ClassVar[tuple[str, ...]] = ("lightgbm", "numpy", "scipy")

    def save(self, model: Any, path: Path) -> SavedFlavor:
        lgb = require("lightgbm", flavor=self.name, extra=EXTRA)
        booster = getattr(model, "booster_", model)
        if not callable(getattr(booster, "save_model", None)):
            raise InvalidArgumentError(
                f"The lightgbm flavor saves a fitted lightgbm model; got {type(model).__name__}.",
                hint="Fit the model first, or pass a lightgbm.Booster.",
            )
        booster.save_model(str(path / MODEL_FILE))
        config: dict[str, Any] = {"file": MODEL_FILE, "model_class": type(model).__name__}
        if hasattr(model, "classes_"):
            config["classes"] = [c.item() if hasattr(c, "item") else c for c in model.classes_]
        return SavedFlavor(version=lgb.__version__, config=config)

    def load(self, path: Path, manifest: ModelManifest) -> LoadedModel:
        lgb = require("lightgbm", flavor=self.name, extra=EXTRA)
        config = manifest.flavor_config
        booster = lgb.Booster(model_file=str(path / config.get("file", MODEL_FILE)))
        return self.wrap(booster, config)

    def wrap(self, model: Any, config: dict[str, Any]) -> LoadedModel:
        if hasattr(model, "booster_"):  # the scikit-learn wrapper, still in memory
            proba = model.predict_proba if hasattr(model, "predict_proba") else None
            return LoadedModel(raw=model, predict=model.predict, predict_proba=proba)
        classes = config.get("classes")
        if classes is None:
            return LoadedModel(raw=model, predict=model.predict)
        import numpy as np

        labels = np.asarray(classes)

        def predict_proba(data: Any) -> Any:
            scores = np.asarray(model.predict(data))
            return np.column_stack([1.0 - scores, scores]) if scores.ndim == 1 else scores

        def predict(data: Any) -> Any:
            return labels[np.argmax(predict_proba(data), axis=1)]

        return LoadedModel(raw=model, predict=predict, predict_proba=predict_proba)
