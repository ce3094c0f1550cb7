"""Requirements are inferred from the flavor and the pickled objects, fast and without pip."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from shipyard.models import infer_requirements, save_model
from shipyard.models.requirements import distribution_for_module


def _v(dist: str) -> str:
    return metadata.version(dist)


def test_sklearn_model_pins_its_stack(logreg: Any, tmp_path: Path) -> None:
    manifest = save_model(logreg, tmp_path / "m")
    assert manifest.requirements == sorted(
        [
            f"joblib=={_v('joblib')}",
            f"numpy=={_v('numpy')}",
            f"scikit-learn=={_v('scikit-learn')}",
            f"scipy=={_v('scipy')}",
            f"shipyard=={_v('shipyard')}",
        ]
    )


class HoldsAFrame:
    """A pyfunc model whose state includes a pandas object."""

    def __init__(self) -> None:
        self.lookup = pd.Series([1.0, 2.0], index=["a", "b"])

    def predict(self, X: Any) -> Any:
        return self.lookup.reindex(X).to_numpy()


def test_libraries_found_inside_the_pickle_are_pinned(tmp_path: Path) -> None:
    reqs = save_model(HoldsAFrame(), tmp_path / "m").requirements
    assert f"pandas=={_v('pandas')}" in reqs
    assert f"numpy=={_v('numpy')}" in reqs
    # The model's own module (this test file) is not a distribution: not listed.
    assert all(not r.startswith(("test-model", "tests")) for r in reqs), reqs


def test_a_pipeline_step_from_another_library_is_pinned(tmp_path: Path) -> None:
    pipe = make_pipeline(FunctionTransformer(pd.DataFrame.abs), FunctionTransformer(np.log1p))
    pipe.fit(pd.DataFrame({"x": [1.0, 2.0]}))
    reqs = save_model(pipe, tmp_path / "m", flavor="sklearn").requirements
    assert f"pandas=={_v('pandas')}" in reqs


def test_no_subprocess_runs_while_saving(
    logreg: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"save_model started a subprocess: {args}")

    monkeypatch.setattr(subprocess, "Popen", forbidden)
    monkeypatch.setattr(subprocess, "run", forbidden)
    save_model(logreg, tmp_path / "m", input_example=np.zeros((2, 20)))


@pytest.mark.parametrize(
    ("module", "dist"),
    [
        ("sklearn", "scikit-learn"),
        ("numpy", "numpy"),
        ("os", None),
        ("__main__", None),
        ("_pickle", None),
        ("surely_not_installed_xyz", None),
    ],
)
def test_distribution_for_module(module: str, dist: str | None) -> None:
    assert distribution_for_module(module) == dist


def test_uninstalled_packages_are_left_out() -> None:
    reqs = infer_requirements(["numpy", "surely-not-installed-xyz"])
    assert reqs == sorted([f"numpy=={_v('numpy')}", f"shipyard=={_v('shipyard')}"])
