"""XGBoost flavor: ``model.ubj`` (XGBoost's own binary JSON), for Boosters and the
scikit-learn wrappers (XGBClassifier, XGBRegressor, ...). Needs ``shipyard[xgboost]``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from shipyard.errors import InvalidArgumentError
from shipyard.models.flavors.base import LoadedModel, SavedFlavor, require

if TYPE_CHECKING:
    from shipyard.models.manifest import ModelManifest

MODEL_FILE = "model.ubj"
EXTRA = "xgboost"


class XGBoostFlavor:
    """Saves with ``model.save_model`` and rebuilds the same class at load."""

    name: ClassVar[str] = "xgboost"
    packages: ClassVar[tuple[str, ...]] = ("xgboost", "numpy", "scipy")

    def save(self, model: Any, path: Path) -> SavedFlavor:
        xgb = require("xgboost", flavor=self.name, extra=EXTRA)
        cls = type(model)
        if not cls.__module__.startswith("xgboost") or not hasattr(xgb, cls.__name__):
            raise InvalidArgumentError(
                f"The xgboost flavor saves xgboost models; got {cls.__module__}.{cls.__name__}.",
                hint="Pass an xgboost.Booster or an XGBClassifier/XGBRegressor/XGBRanker.",
            )
        model.save_model(str(path / MODEL_FILE))
        config = {"file": MODEL_FILE, "model_class": cls.__name__}
        modules = frozenset() if cls.__name__ == "Booster" else frozenset({"sklearn"})
        return SavedFlavor(version=xgb.__version__, config=config, modules=modules)

    def load(self, path: Path, manifest: ModelManifest) -> LoadedModel:
        xgb = require("xgboost", flavor=self.name, extra=EXTRA)
        config = manifest.flavor_config
        model = getattr(xgb, config.get("model_class", "Booster"))()
        model.load_model(str(path / config.get("file", MODEL_FILE)))
        return self.wrap(model, config)

    def wrap(self, model: Any, config: dict[str, Any]) -> LoadedModel:
        if type(model).__name__ == "Booster":
            xgb = require("xgboost", flavor=self.name, extra=EXTRA)

            def predict(data: Any) -> Any:
                return model.predict(xgb.DMatrix(data))

            return LoadedModel(raw=model, predict=predict)
        proba = model.predict_proba if hasattr(model, "predict_proba") else None
        return LoadedModel(raw=model, predict=model.predict, predict_proba=proba)
