"""Compile a pipeline for another orchestrator: Kubeflow Pipelines v2 IR or an Airflow DAG.

Every compiled step runs ``python -m shipyard.pipelines.entrypoint``, so a step behaves the
same under the local executor, Kubeflow and Airflow.

- ``compile_kfp(pipeline, image) -> dict`` (the PipelineSpec), ``compile_kfp_documents``
  (with the Kubernetes PlatformSpec for node selectors), ``kfp_yaml`` (the file KFP
  uploads), ``write_kfp``;
- ``compile_airflow(pipeline, ...) -> str`` (a DAG file), ``write_airflow``;
- ``load_pipeline("module:pipeline")`` and ``pipeline_reference(pipeline)``.

Names load on first use, so a step process importing the entrypoint pays for neither
compiler.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = [
    "compile_airflow",
    "compile_kfp",
    "compile_kfp_documents",
    "kfp_yaml",
    "load_pipeline",
    "pipeline_reference",
    "write_airflow",
    "write_kfp",
]

_WHERE = {
    "compile_airflow": "airflow",
    "write_airflow": "airflow",
    "compile_kfp": "kfp",
    "compile_kfp_documents": "kfp",
    "kfp_yaml": "kfp",
    "write_kfp": "kfp",
    "load_pipeline": "reference",
    "pipeline_reference": "reference",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
