"""Run one task of a pipeline in the current process: the part every executor shares.

The local executor's workers, the KFP container entrypoint and the Airflow task all end up
here: build the step function's arguments from JSON parameters and input artifact paths,
call it, write its artifact outputs to the given paths and return its parameter outputs.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError, PipelineError
from shipyard.pipelines import serialization
from shipyard.pipelines import types as t

if TYPE_CHECKING:
    from shipyard.pipelines.dsl import Pipeline
    from shipyard.pipelines.graph import Component, Port

__all__ = ["StepResult", "coerce_parameter", "execute_step", "record_details", "run_step"]

InputPath = Path | str | list[Path] | list[str]


@dataclass
class StepResult:
    """What one run of a step produced: parameter outputs (JSON values) and, per artifact
    output, the metadata ``save_value`` returned (format, metrics, ...)."""

    outputs: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


_details: dict[str, Any] = {}


def record_details(**values: Any) -> None:
    """Attach JSON details to the step that is running (a validation report, a summary);
    the local executor stores them with the step run and ``pipelines show`` prints them."""
    _details.update(values)


def recorded_details() -> dict[str, Any]:
    """What the running step recorded so far (also after it raised)."""
    return dict(_details)


def coerce_parameter(value: Any, type_name: str, what: str) -> Any:
    """``value`` as the declared parameter type: int widens to float, a float with no
    fraction narrows to int (JSON has one number type), anything else must already fit.

    Raises:
        InvalidArgumentError: the value does not fit the type; the message names ``what``.
    """
    item = t.list_item(type_name)
    ok = True
    if type_name == t.ANY:
        pass
    elif type_name == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif type_name == "int":
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif type_name == "bool":
        ok = isinstance(value, bool)
    elif type_name == "str":
        ok = isinstance(value, str)
    elif type_name == "dict":
        ok = isinstance(value, dict)
    elif type_name == "list" or item is not None:
        ok = isinstance(value, list | tuple)
        if ok:
            value = [
                coerce_parameter(v, item, f"{what}[{i}]") if item else v
                for i, v in enumerate(value)
            ]
    if not ok:
        raise InvalidArgumentError(
            f"{what} expects {type_name} but got {value!r} ({type(value).__name__}).",
            hint=f"Pass a {type_name} value.",
        )
    return value


def _artifact(type_name: str, path: str | os.PathLike[str], name: str) -> t.Artifact:
    cls = t.ARTIFACT_TYPES.get(type_name, t.Artifact)
    path = str(path)
    return cls(uri=Path(path).absolute().as_uri(), path=path, name=name)


def _arguments(
    component: Component,
    task_name: str,
    params: Mapping[str, Any],
    input_paths: Mapping[str, InputPath],
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for port in component.inputs:
        what = f"Input '{port.name}' of step '{task_name}'"
        if t.is_artifact(port.type):
            if port.name not in input_paths:
                if port.required:
                    raise InvalidArgumentError(f"{what} needs an artifact path; none was given.")
                continue
            given = input_paths[port.name]
            if t.list_item(port.type) is not None:
                paths = [given] if isinstance(given, str | os.PathLike) else list(given)
                kwargs[port.name] = [
                    _artifact(t.list_item(port.type) or "Artifact", p, port.name) for p in paths
                ]
            else:
                kwargs[port.name] = _artifact(port.type, given, port.name)  # type: ignore[arg-type]
        elif port.name in params:
            kwargs[port.name] = coerce_parameter(params[port.name], port.type, what)
        elif port.required:
            raise InvalidArgumentError(f"{what} is required; no value was given.")
    unknown = set(params) - {p.name for p in component.inputs}
    if unknown:
        raise InvalidArgumentError(
            f"Step '{task_name}' has no input(s) {', '.join(sorted(unknown))}.",
            hint=f"Its inputs are: {', '.join(p.name for p in component.inputs) or 'none'}.",
        )
    return kwargs


def _split_return(component: Component, task_name: str, value: Any) -> dict[str, Any]:
    ports = component.outputs
    if component.returns == "none":
        return {}
    if component.returns == "single":
        return {ports[0].name: value}
    names = [p.name for p in ports]
    if isinstance(value, Mapping):
        missing = [n for n in names if n not in value]
        if missing:
            raise PipelineError(
                f"Step '{task_name}' returned a dict without output(s) {', '.join(missing)}.",
                hint=f"Return every declared output: {', '.join(names)}.",
            )
        return {n: value[n] for n in names}
    if isinstance(value, tuple) and len(value) == len(names):
        return dict(zip(names, value, strict=True))
    raise PipelineError(
        f"Step '{task_name}' returned {type(value).__name__}, not its outputs {', '.join(names)}.",
        hint="Return the Outputs(...) tuple, a tuple in declared order or a dict by name.",
    )


def _json_value(port: Port, task_name: str, value: Any) -> Any:
    what = f"Output '{port.name}' of step '{task_name}'"
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        value = value.item()  # numpy scalars, e.g. a float64 accuracy
    value = coerce_parameter(value, port.type, what)
    try:
        return json.loads(json.dumps(value, allow_nan=True))
    except (TypeError, ValueError) as exc:
        raise PipelineError(f"{what} is not JSON: {exc}.") from exc


def run_step(
    pipeline: Pipeline,
    task_name: str,
    params: Mapping[str, Any],
    input_paths: Mapping[str, InputPath],
    output_paths: Mapping[str, str | os.PathLike[str]],
) -> StepResult:
    """Like :func:`execute_step`, also returning each artifact output's metadata."""
    graph = pipeline.graph
    if not graph.has_step(task_name):
        raise InvalidArgumentError(
            f"Pipeline '{pipeline.name}' has no step '{task_name}'.",
            hint=f"Its steps are: {', '.join(s.name for s in graph.steps)}.",
        )
    node = graph.step(task_name)
    component = graph.components[node.component]
    func = pipeline.step_functions[node.component].func
    _details.clear()
    returned = func(**_arguments(component, task_name, params, input_paths))
    result = StepResult(details=recorded_details())
    for name, value in _split_return(component, task_name, returned).items():
        port = component.output(name)
        assert port is not None
        if t.is_artifact(port.type):
            if name not in output_paths:
                raise InvalidArgumentError(
                    f"Output '{name}' of step '{task_name}' is an artifact but no output path "
                    "was given for it."
                )
            result.artifacts[name] = serialization.save_value(value, output_paths[name], port.type)
        else:
            result.outputs[name] = _json_value(port, task_name, value)
    return result


def execute_step(
    pipeline: Pipeline,
    task_name: str,
    params: dict[str, Any],
    input_paths: dict[str, Path],
    output_paths: dict[str, Path],
) -> dict[str, Any]:
    """Run task ``task_name`` of ``pipeline`` in this process.

    Args:
        pipeline: The traced pipeline the task belongs to.
        task_name: The task's name in ``pipeline.graph`` (e.g. ``train`` or ``train-2``).
        params: JSON values of the task's parameter inputs, already resolved (constants,
            pipeline parameters, placeholders, loop items); omitted inputs take their
            defaults.
        input_paths: Local path of each artifact input (a list of paths for a
            ``list[Dataset]`` input fed by ``Collected``).
        output_paths: Where to write each artifact output; parent folders are created.

    Returns:
        The task's parameter outputs by name, as JSON values.

    Raises:
        InvalidArgumentError: a parameter does not fit its type, or a path is missing.
        PipelineError: the step returned something that does not match its outputs.
        Exception: whatever the step function itself raised.
    """
    return run_step(pipeline, task_name, params, input_paths, output_paths).outputs
