"""Pipelines: typed steps composed into a validated graph.

- ``@step`` makes a typed function a step; ``@pipeline`` traces a function that calls steps
  into a ``Pipeline`` whose ``graph`` (``shipyard.pipelines.graph.Graph``) is plain data for the
  executor and the compilers.
- ``when``, ``ParallelFor`` (and ``Step.map``) with ``Collected``, and ``ExitHandler`` group
  steps; ``RUN_ID`` and ``SCHEDULED_TIME`` are filled in per run.
- ``Dataset``, ``Model``, ``Metrics`` and ``Artifact`` type file inputs and outputs;
  ``Outputs(model=Model, accuracy=float)`` declares several outputs.

Invalid pipelines raise ``shipyard.errors.PipelineDefinitionError`` when they are defined.
"""

from __future__ import annotations

from shipyard.pipelines.dsl import (
    RUN_ID,
    SCHEDULED_TIME,
    Collected,
    ExitHandler,
    ParallelFor,
    Pipeline,
    Step,
    Task,
    pipeline,
    step,
    when,
)
from shipyard.pipelines.graph import Condition, Graph
from shipyard.pipelines.types import Artifact, Dataset, Metrics, Model, Outputs

__all__ = [
    "RUN_ID",
    "SCHEDULED_TIME",
    "Artifact",
    "Collected",
    "Condition",
    "Dataset",
    "ExitHandler",
    "Graph",
    "Metrics",
    "Model",
    "Outputs",
    "ParallelFor",
    "Pipeline",
    "Step",
    "Task",
    "pipeline",
    "step",
    "when",
]

#: Executor functions, imported on first use: the executor needs the metadata store
#: (SQLAlchemy), which defining a pipeline does not.
_EXECUTOR = ("cancel", "get_run", "list_runs", "resume", "run_pipeline")


def __getattr__(name: str) -> object:
    if name in _EXECUTOR:
        from shipyard.pipelines import executor

        return getattr(executor, name)
    raise AttributeError(f"module 'shipyard.pipelines' has no attribute {name!r}")
