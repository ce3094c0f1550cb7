"""PyTorch flavor: TorchScript modules as ``model.pt`` (``torch.jit.save``), other modules
whole as ``model.pth`` (``torch.save``; their class must be importable at load).
Needs ``shipyard[torch]``. Predictions run on CPU in eval mode without gradients."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from shipyard.models.flavors.base import LoadedModel, SavedFlavor, require
from shipyard.models.signature import as_array

if TYPE_CHECKING:
    from shipyard.models.manifest import ModelManifest

SCRIPT_FILE = "model.pt"
PICKLE_FILE = "model.pth"
EXTRA = "torch"


class TorchFlavor:
    """Saves ``torch.nn.Module`` models, as TorchScript when they are scripted."""

    name: ClassVar[str] = "torch"
    packages: ClassVar[tuple[str, ...]] = ("torch", "numpy")

    def save(self, model: Any, path: Path) -> SavedFlavor:
        torch = require("torch", flavor=self.name, extra=EXTRA)
        if isinstance(model, torch.jit.ScriptModule):
            torch.jit.save(model, str(path / SCRIPT_FILE))
            config = {"file": SCRIPT_FILE, "format": "torchscript"}
        else:
            torch.save(model, str(path / PICKLE_FILE))
            config = {"file": PICKLE_FILE, "format": "pickle"}
        module = type(model).__module__.partition(".")[0]
        return SavedFlavor(version=torch.__version__, config=config, modules=frozenset({module}))

    def load(self, path: Path, manifest: ModelManifest) -> LoadedModel:
        torch = require("torch", flavor=self.name, extra=EXTRA)
        config = manifest.flavor_config
        file = str(path / config["file"])
        if config.get("format") == "torchscript":
            model = torch.jit.load(file, map_location="cpu")
        else:
            # The whole module is pickled, so weights_only loading cannot rebuild it;
            # the folder's hashes were verified against the manifest before this.
            model = torch.load(file, map_location="cpu", weights_only=False)
        model.eval()
        return self.wrap(model, config)

    def wrap(self, model: Any, config: dict[str, Any]) -> LoadedModel:
        # No model.eval() here: wrap also serves the caller's own model while saving, and
        # switching its training mode would be a surprise. load() sets eval mode.
        torch = require("torch", flavor=self.name, extra=EXTRA)

        def to_tensor(data: Any) -> Any:
            if isinstance(data, torch.Tensor):
                return data
            array = as_array(data)
            if not array.flags.writeable:  # pandas hands out read-only views
                array = array.copy()
            tensor = torch.from_numpy(array)
            return tensor.to(torch.get_default_dtype()) if tensor.is_floating_point() else tensor

        def to_numpy(out: Any) -> Any:
            if isinstance(out, torch.Tensor):
                return out.detach().cpu().numpy()
            if isinstance(out, tuple | list):
                return type(out)(to_numpy(o) for o in out)
            return out

        def predict(data: Any) -> Any:
            with torch.no_grad():
                if isinstance(data, dict):
                    return to_numpy(model(**{k: to_tensor(v) for k, v in data.items()}))
                return to_numpy(model(to_tensor(data)))

        return LoadedModel(raw=model, predict=predict)
