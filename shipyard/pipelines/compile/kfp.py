"""Compile a pipeline to Kubeflow Pipelines v2 IR (a ``PipelineSpec``, written as YAML).

Each step becomes a container component running ``python -m shipyard.pipelines.entrypoint``
in the given image, its parameters and artifacts passed through KFP placeholders. Groups
become sub-DAG components as KFP's own compiler makes them: ``when`` blocks carry a CEL
``triggerPolicy.condition``, ``ParallelFor`` a ``parameterIterator`` (and ``iteratorPolicy``
for ``parallelism``), and an ``ExitHandler`` body a sub-DAG its exit task waits for with the
``ALL_UPSTREAM_TASKS_COMPLETED`` strategy. Values crossing a group's border travel as
``pipelinechannel--*`` inputs; ``Collected`` outputs leave a loop as its DAG outputs.

Node selectors are not part of the PipelineSpec: they go into a second YAML document, the
Kubernetes ``PlatformSpec`` (what ``kfp-kubernetes`` writes).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from shipyard.errors import CompileError, NotSupportedError
from shipyard.pipelines import graph as g
from shipyard.pipelines.compile.reference import pipeline_reference
from shipyard.pipelines.dsl import Pipeline
from shipyard.pipelines.types import is_artifact, list_item

__all__ = [
    "DEFAULT_IMAGE",
    "SCHEMA_VERSION",
    "SDK_VERSION",
    "check_references",
    "compile_kfp",
    "compile_kfp_documents",
    "kfp_yaml",
    "parameter_type",
    "write_kfp",
]

SCHEMA_VERSION = "2.1.0"
#: What ``sdkVersion`` says; the IR matches what this KFP release writes.
SDK_VERSION = "kfp-2.17.3"
DEFAULT_IMAGE = "python:3.11-slim"
ENTRYPOINT = ["python", "-m", "shipyard.pipelines.entrypoint"]

_PARAMETER_TYPES = {
    "int": "NUMBER_INTEGER",
    "float": "NUMBER_DOUBLE",
    "str": "STRING",
    "bool": "BOOLEAN",
    "dict": "STRUCT",
    "any": "STRING",
}
_PLACEHOLDERS = {
    "run_id": "{{$.pipeline_job_uuid}}",
    "scheduled_time": "{{$.pipeline_job_schedule_time_utc}}",
}
# An accelerator named without a Kubernetes resource (``nvidia-tesla-k80``) is a GPU model:
# it selects nodes by GKE's accelerator label and asks for ``nvidia.com/gpu``.
_GPU_RESOURCE = "nvidia.com/gpu"
_ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"


def parameter_type(type_name: str) -> str:
    """The KFP ``parameterType`` of a canonical Shipyard type (``list[int]`` -> ``LIST``)."""
    if type_name == "list" or list_item(type_name) is not None:
        return "LIST"
    try:
        return _PARAMETER_TYPES[type_name]
    except KeyError:
        raise CompileError(f"Type '{type_name}' has no KFP parameter type.") from None


def _artifact_type(type_name: str) -> dict[str, str]:
    return {"schemaTitle": f"system.{type_name}", "schemaVersion": "0.0.1"}


def _quote(name: str) -> str:
    return name.replace("'", "\\'")


class _Compiler:
    """One compilation: builds the DAG of every scope (root and each group) on demand."""

    def __init__(self, pipeline: Pipeline, image: str, reference: str, env: Mapping[str, str]):
        self.graph = pipeline.graph
        self.image = image
        self.reference = reference
        self.env = dict(env)
        self.components: dict[str, dict[str, Any]] = {}
        self.executors: dict[str, dict[str, Any]] = {}
        self.platform: dict[str, dict[str, Any]] = {}
        # per scope (None is root): the DAG's tasks, the component's inputs and outputs
        self.tasks: dict[str | None, dict[str, dict[str, Any]]] = {None: {}}
        self.inputs: dict[str, dict[str, dict[str, Any]]] = {}
        self.outputs: dict[str, dict[str, Any]] = {}
        for group in self.graph.groups:
            self.tasks[group.id] = {}
            self.inputs[group.id] = {"parameters": {}, "artifacts": {}}
            self.outputs[group.id] = {"parameters": {}, "artifacts": {}, "dag": {}}

    # --- where a value lives, and how a task in some scope reads it --------------------

    def parent(self, scope: str | None) -> str | None:
        return None if scope is None else self.graph.group(scope).parent

    def is_artifact(self, binding: g.Binding) -> bool:
        return is_artifact(self.graph.type_of(binding))

    def native_scope(self, binding: g.Binding) -> str | None:
        match binding:
            case g.OutputRef(step, _):
                return self.graph.step(step).group
            case g.LoopItemRef(loop, _):
                return loop
            case g.CollectedRef(step, _):
                return self.graph.group(self._loop_of(step)).parent
        return None

    def _loop_of(self, step: str) -> str:
        node = self.graph.step(step)
        group = self.graph.group(node.group) if node.group else None
        if not isinstance(group, g.ParallelForGroup):
            raise NotSupportedError(
                f"Step '{step}' is collected but is nested inside another block within its "
                "ParallelFor; KFP collects outputs of steps directly inside the loop.",
                hint="Move the step directly into the `with ParallelFor(...)` block.",
            )
        return group.id

    def channel_name(self, binding: g.Binding) -> str:
        match binding:
            case g.ParamRef(name):
                return f"pipelinechannel--{name}"
            case g.OutputRef(step, output) | g.CollectedRef(step, output):
                return f"pipelinechannel--{step}-{output}"
            case g.LoopItemRef(loop, _):
                return f"pipelinechannel--{loop}-loop-item"
        raise CompileError(f"no channel for {binding!r}")  # pragma: no cover

    def read(self, binding: g.Binding, scope: str | None) -> tuple[str, dict[str, Any]]:
        """``(kind, spec)``: how a task in ``scope``'s DAG reads ``binding``; kind is
        ``parameters`` or ``artifacts``."""
        kind = "artifacts" if self.is_artifact(binding) else "parameters"
        if isinstance(binding, g.Constant):
            return kind, {"runtimeValue": {"constant": binding.value}}
        if isinstance(binding, g.PlaceholderRef):
            return kind, {"runtimeValue": {"constant": _PLACEHOLDERS[binding.name]}}
        native = self.native_scope(binding)
        if scope == native:
            return kind, self.native_spec(binding, kind)
        if scope is None:
            raise NotSupportedError(
                f"A value ({binding_text(binding)}) is read outside the block that makes it; "
                "KFP cannot pass it there.",
                hint="Read step outputs only inside the block of the step, or after it with "
                "Collected for ParallelFor.",
            )
        name = self.channel(binding, scope)
        spec: dict[str, Any] = {
            "componentInputArtifact" if kind == "artifacts" else "componentInputParameter": name
        }
        if isinstance(binding, g.LoopItemRef) and binding.key is not None:
            spec["parameterExpressionSelector"] = f'parseJson(string_value)["{binding.key}"]'
        return kind, spec

    def native_spec(self, binding: g.Binding, kind: str) -> dict[str, Any]:
        match binding:
            case g.ParamRef(name):
                return {"componentInputParameter": name}
            case g.OutputRef(step, output):
                if kind == "artifacts":
                    return {
                        "taskOutputArtifact": {"producerTask": step, "outputArtifactKey": output}
                    }
                return {"taskOutputParameter": {"producerTask": step, "outputParameterKey": output}}
            case g.LoopItemRef(loop, key):
                spec: dict[str, Any] = {"componentInputParameter": self.channel_name(binding)}
                self._declare_item(loop)
                if key is not None:
                    spec["parameterExpressionSelector"] = f'parseJson(string_value)["{key}"]'
                return spec
            case g.CollectedRef(step, output):
                loop = self._loop_of(step)
                key = self.channel_name(binding)
                out = self.outputs[loop]
                if kind == "artifacts":
                    raise NotSupportedError(
                        f"Collected artifacts (output '{output}' of step '{step}') have no "
                        "file placeholder in KFP.",
                        hint="Collect parameters (paths, URIs or metrics) instead of artifacts.",
                    )
                out["parameters"][key] = {"parameterType": "LIST"}
                out["dag"][key] = {
                    "valueFromParameter": {"producerSubtask": step, "outputParameterKey": output}
                }
                return {"taskOutputParameter": {"producerTask": loop, "outputParameterKey": key}}
        raise CompileError(f"cannot read {binding!r}")  # pragma: no cover

    def channel(self, binding: g.Binding, group: str) -> str:
        """Make ``binding`` an input of ``group``'s component, wired from its parent."""
        name = self.channel_name(binding)
        if isinstance(binding, g.LoopItemRef) and binding.loop == group:
            self._declare_item(group)
            return name
        kind = "artifacts" if self.is_artifact(binding) else "parameters"
        declared = self.inputs[group][kind]
        if name not in declared:
            whole = g.LoopItemRef(binding.loop) if isinstance(binding, g.LoopItemRef) else binding
            declared[name] = self._definition(self._channel_type(whole))
            _, spec = self.read(whole, self.graph.group(group).parent)
            self._group_task(group).setdefault("inputs", {}).setdefault(kind, {})[name] = spec
        return name

    def subvar(self, ref: g.LoopItemRef, group: str) -> str:
        """An input of ``group`` holding one key of a loop item (KFP's ``-subvar-`` input),
        so a condition compares a plain value."""
        name = f"{self.channel_name(ref)}-subvar-{ref.key}"
        declared = self.inputs[group]["parameters"]
        if name not in declared:
            declared[name] = {"parameterType": parameter_type(self.graph.type_of(ref))}
            _, spec = self.read(ref, self.graph.group(group).parent)
            task = self._group_task(group)
            task.setdefault("inputs", {}).setdefault("parameters", {})[name] = spec
        return name

    def _channel_type(self, binding: g.Binding) -> str:
        if isinstance(binding, g.LoopItemRef):
            item_type = self.graph.loop_item_type(binding.loop)
            items = self.graph.group(binding.loop).items  # type: ignore[union-attr]
            literal = items.value if isinstance(items, g.Constant) else None
            if item_type == "any" and literal and isinstance(literal[0], dict):
                return "dict"
            return item_type
        return self.graph.type_of(binding)

    def _declare_item(self, loop: str) -> None:
        name = self.channel_name(g.LoopItemRef(loop))
        item_type = self._channel_type(g.LoopItemRef(loop))
        self.inputs[loop]["parameters"].setdefault(
            name, {"parameterType": parameter_type(item_type)}
        )

    @staticmethod
    def _definition(type_name: str) -> dict[str, Any]:
        if is_artifact(type_name):
            base = list_item(type_name) or type_name
            spec: dict[str, Any] = {"artifactType": _artifact_type(base)}
            if list_item(type_name):
                spec["isArtifactList"] = True
            return spec
        return {"parameterType": parameter_type(type_name)}

    # --- tasks ---------------------------------------------------------------------------

    def _group_task(self, group_id: str) -> dict[str, Any]:
        parent_tasks = self.tasks[self.graph.group(group_id).parent]
        if group_id not in parent_tasks:
            parent_tasks[group_id] = {
                "componentRef": {"name": f"comp-{group_id}"},
                "taskInfo": {"name": group_id},
            }
        return parent_tasks[group_id]

    def sibling(self, step: str, scope: str | None) -> str | None:
        """The task of ``scope``'s DAG that holds ``step``: itself or an enclosing group."""
        chain = self.graph.scope(self.graph.step(step).group)
        if scope is not None:
            if scope not in chain:
                return None
            chain = chain[chain.index(scope) + 1 :]
        return chain[0] if chain else step

    def dependencies(self, steps: tuple[str, ...], scope: str | None, own: str) -> list[str]:
        found: list[str] = []
        for name in steps:
            for upstream in self.graph.upstream(name):
                task = self.sibling(upstream, scope)
                if task is not None and task != own and task not in found:
                    found.append(task)
        return sorted(found)

    def step_task(self, node: g.StepNode) -> None:
        component = self.graph.components[node.component]
        comp_name, exec_name = f"comp-{node.name}", f"exec-{node.name}"
        task: dict[str, Any] = {
            "cachingOptions": {"enableCache": True} if node.cache else {},
            "componentRef": {"name": comp_name},
            "taskInfo": {"name": node.name},
        }
        inputs: dict[str, dict[str, Any]] = {}
        definitions: dict[str, dict[str, Any]] = {"parameters": {}, "artifacts": {}}
        args: list[str] = ["run", "--pipeline", self.reference, "--task", node.name]
        for port in component.inputs:
            binding = node.arguments.get(port.name)
            if binding is None:
                continue  # the function's own default applies
            kind, spec = self.read(binding, node.group)
            inputs.setdefault(kind, {})[port.name] = spec
            definitions[kind][port.name] = self._definition(port.type)
            if kind == "artifacts":
                if list_item(port.type):
                    raise NotSupportedError(
                        f"Step '{node.name}' takes a list of artifacts ('{port.name}'), which "
                        "KFP cannot hand to a container as paths.",
                        hint="Collect parameters (paths, URIs or metrics) instead of artifacts.",
                    )
                args += [
                    "--input",
                    f"{port.name}={{{{$.inputs.artifacts['{_quote(port.name)}'].path}}}}",
                ]
            else:
                args += [
                    "--param",
                    f"{port.name}={{{{$.inputs.parameters['{_quote(port.name)}']}}}}",
                ]
        outputs: dict[str, dict[str, Any]] = {"parameters": {}, "artifacts": {}}
        for port in component.outputs:
            if is_artifact(port.type):
                outputs["artifacts"][port.name] = self._definition(port.type)
                ref = f"{{{{$.outputs.artifacts['{_quote(port.name)}'].path}}}}"
                args += ["--output", f"{port.name}={ref}"]
            else:
                outputs["parameters"][port.name] = self._definition(port.type)
                ref = f"{{{{$.outputs.parameters['{_quote(port.name)}'].output_file}}}}"
                args += ["--output-param", f"{port.name}={ref}"]
        if node.timeout is not None:
            args += ["--timeout", f"{node.timeout:g}"]
        if inputs:
            task["inputs"] = inputs
        deps = self.dependencies((node.name,), node.group, node.name)
        exit_group = self._exit_group_of(node.name)
        if exit_group is not None:
            deps = sorted({*deps, exit_group} - {node.name})
            task["triggerPolicy"] = {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}
        if deps:
            task["dependentTasks"] = deps
        if node.retry is not None:
            task["retryPolicy"] = {
                "backoffDuration": f"{node.retry.backoff_seconds:g}s",
                "backoffFactor": float(node.retry.backoff_factor),
                "backoffMaxDuration": f"{node.retry.max_backoff_seconds:g}s",
                "maxRetryCount": node.retry.max_retries,
            }
        self.tasks[node.group][node.name] = task
        comp: dict[str, Any] = {"executorLabel": exec_name}
        for key, defs in (("inputDefinitions", definitions), ("outputDefinitions", outputs)):
            filled = {k: v for k, v in defs.items() if v}
            if filled:
                comp[key] = filled
        self.components[comp_name] = comp
        container: dict[str, Any] = {"image": self.image, "command": list(ENTRYPOINT)}
        container["args"] = args
        if self.env:
            container["env"] = [{"name": k, "value": v} for k, v in sorted(self.env.items())]
        resources, selector = self._resources(node.resources)
        if resources:
            container["resources"] = resources
        self.executors[exec_name] = {"container": container}
        if selector:
            self.platform[exec_name] = {"nodeSelector": {"labels": selector}}

    def _exit_group_of(self, step: str) -> str | None:
        for group in self.graph.groups:
            if isinstance(group, g.ExitHandlerGroup) and group.exit_step == step:
                return group.id
        return None

    @staticmethod
    def _resources(res: g.Resources) -> tuple[dict[str, Any], dict[str, str]]:
        out: dict[str, Any] = {}
        for field, quantity, twin, parse in (
            ("CpuRequest", res.cpu_request, "cpuRequest", g.parse_cpu),
            ("CpuLimit", res.cpu_limit, "cpuLimit", g.parse_cpu),
            ("MemoryRequest", res.memory_request, "memoryRequest", g.parse_memory),
            ("MemoryLimit", res.memory_limit, "memoryLimit", g.parse_memory),
        ):
            if quantity is not None:
                out[f"resource{field}"] = quantity
                value = parse(quantity)
                out[twin] = value / 1e9 if twin.startswith("memory") else value
        selector = dict(res.node_selector)
        if res.gpu or res.accelerator:
            accelerator = res.accelerator or _GPU_RESOURCE
            resource = accelerator if "/" in accelerator else _GPU_RESOURCE
            if "/" not in accelerator:
                selector.setdefault(_ACCELERATOR_LABEL, accelerator)
            count = str(res.gpu or 1)
            out["accelerator"] = {
                "count": count,
                "resourceCount": count,
                "resourceType": resource,
                "type": resource,
            }
        return out, selector

    # --- groups ----------------------------------------------------------------------------

    def group(self, group: g.Group) -> None:
        task = self._group_task(group.id)
        body = self.graph.body(group.id)
        deps = self.dependencies(body, group.parent, group.id)
        if isinstance(group, g.ConditionGroup):
            task["triggerPolicy"] = {"condition": self.cel(group.condition, group.id)}
            for ref in group.condition.refs():
                if isinstance(ref, g.OutputRef):
                    sibling = self.sibling(ref.step, group.parent)
                    if sibling is not None and sibling not in deps:
                        deps.append(sibling)
        elif isinstance(group, g.ParallelForGroup):
            if isinstance(group.items, g.Constant):
                items = {"raw": json.dumps(group.items.value)}
            else:
                items = {"inputParameter": self.channel(group.items, group.id)}
                if isinstance(group.items, g.OutputRef):
                    sibling = self.sibling(group.items.step, group.parent)
                    if sibling is not None and sibling not in deps:
                        deps.append(sibling)
            self._declare_item(group.id)
            task["parameterIterator"] = {
                "itemInput": self.channel_name(g.LoopItemRef(group.id)),
                "items": items,
            }
            if group.parallelism:
                task["iteratorPolicy"] = {"parallelismLimit": group.parallelism}
        if deps:
            task["dependentTasks"] = sorted(set(deps))

    def cel(self, condition: g.Condition, group: str) -> str:
        """The condition in CEL over the condition task's inputs, as KFP writes it; an int
        compared with a float is cast to double (CEL does not mix number types)."""

        def operand_type(ref: g.Operand) -> str:
            return self.graph.type_of(ref)

        def render(ref: g.Operand, numeric: bool) -> str:
            if isinstance(ref, g.Constant):
                value = ref.value
                if isinstance(value, float) and not math.isfinite(value):
                    raise NotSupportedError("A condition compares with NaN or infinity.")
                if numeric and isinstance(value, int | float) and not isinstance(value, bool):
                    return repr(float(value))
                return json.dumps(value)
            if isinstance(ref, g.PlaceholderRef):
                raise NotSupportedError(
                    f"A condition reads {ref.name.upper()}, which KFP cannot compare.",
                    hint="Compare step outputs, pipeline parameters or loop items.",
                )
            if isinstance(ref, g.LoopItemRef) and ref.key is not None:
                name = self.subvar(ref, group)
            else:
                name = self.channel(ref, group)
            text = f"inputs.parameter_values['{name}']"
            # parameter values are protobuf Values (numbers are doubles): cast as KFP does
            if operand_type(ref) == "int":
                text = f"double({text})" if numeric else f"int({text})"
            return text

        def text(cond: g.Condition) -> str:
            match cond:
                case g.Comparison(op, left, right):
                    types = {operand_type(left), operand_type(right)}
                    numeric = "float" in types and types <= {"int", "float"}
                    return f"{render(left, numeric)} {op} {render(right, numeric)}"
                case g.And(left, right):
                    return f"({text(left)}) && ({text(right)})"
                case g.Or(left, right):
                    return f"({text(left)}) || ({text(right)})"
                case g.Not(operand):
                    return f"!({text(operand)})"
            raise CompileError(f"not a condition: {cond!r}")  # pragma: no cover

        return text(condition)

    def build(self) -> dict[str, Any]:
        for node in self.graph.steps:
            self.step_task(node)
        for group in self.graph.groups:
            self.group(group)
        for group in self.graph.groups:
            comp: dict[str, Any] = {"dag": {"tasks": dict(sorted(self.tasks[group.id].items()))}}
            out = self.outputs[group.id]
            if out["dag"]:
                comp["dag"] = {"outputs": {"parameters": out["dag"]}, **comp["dag"]}
            defs = {k: dict(sorted(v.items())) for k, v in self.inputs[group.id].items() if v}
            if defs:
                comp["inputDefinitions"] = defs
            if out["parameters"]:
                comp["outputDefinitions"] = {"parameters": out["parameters"]}
            self.components[f"comp-{group.id}"] = comp
        root: dict[str, Any] = {"dag": {"tasks": dict(sorted(self.tasks[None].items()))}}
        params: dict[str, Any] = {}
        for port in self.graph.parameters:
            spec: dict[str, Any] = {"parameterType": parameter_type(port.type)}
            if not port.required:
                spec["defaultValue"] = _kfp_default(port.default)
                spec["isOptional"] = True
            if is_artifact(port.type):
                raise NotSupportedError(
                    f"Pipeline parameter '{port.name}' is an artifact; KFP pipelines take "
                    "parameters only.",
                    hint="Pass a path or URI as a str parameter and read it in a step.",
                )
            params[port.name] = spec
        if params:
            root["inputDefinitions"] = {"parameters": params}
        spec_doc: dict[str, Any] = {
            "components": dict(sorted(self.components.items())),
            "deploymentSpec": {"executors": dict(sorted(self.executors.items()))},
            "pipelineInfo": {"name": self.graph.name},
            "root": root,
            "schemaVersion": SCHEMA_VERSION,
            "sdkVersion": SDK_VERSION,
        }
        if self.graph.description:
            spec_doc["pipelineInfo"]["description"] = self.graph.description
        return spec_doc


def _kfp_default(value: Any) -> Any:
    """KFP writes numbers as doubles (``1000`` -> ``1000.0``), also inside lists."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, list | tuple):
        return [_kfp_default(v) for v in value]
    return value


def binding_text(binding: g.Binding) -> str:
    return json.dumps(g.binding_to_dict(binding))


def check_references(spec: Mapping[str, Any]) -> None:
    """Check what KFP's upload does not: every componentRef, executorLabel, dependentTasks
    entry and producer task resolves, and the schema version is 2.1.0.

    Raises:
        CompileError: naming the dangling reference.
    """
    if spec.get("schemaVersion") != SCHEMA_VERSION or not spec.get("pipelineInfo", {}).get("name"):
        raise CompileError("The PipelineSpec needs schemaVersion 2.1.0 and a pipelineInfo.name.")
    components = spec.get("components", {})
    executors = spec.get("deploymentSpec", {}).get("executors", {})
    for name, comp in components.items():
        if "executorLabel" in comp and comp["executorLabel"] not in executors:
            raise CompileError(f"Component '{name}' names a missing executor.")
    dags = [("root", spec["root"]["dag"])] + [
        (name, c["dag"]) for name, c in components.items() if "dag" in c
    ]
    for owner, dag in dags:
        tasks = dag.get("tasks", {})
        for task_name, task in tasks.items():
            if task["componentRef"]["name"] not in components:
                raise CompileError(f"Task '{task_name}' in {owner} names a missing component.")
            for dep in task.get("dependentTasks", []):
                if dep not in tasks:
                    raise CompileError(f"Task '{task_name}' in {owner} waits for missing '{dep}'.")
            for kind in ("parameters", "artifacts"):
                for spec_in in task.get("inputs", {}).get(kind, {}).values():
                    producer = (
                        spec_in.get("taskOutputParameter")
                        or spec_in.get("taskOutputArtifact")
                        or {}
                    ).get("producerTask")
                    if producer is not None and producer not in tasks:
                        raise CompileError(
                            f"Task '{task_name}' in {owner} reads missing task '{producer}'."
                        )


def compile_kfp_documents(
    pipeline: Pipeline,
    image: str = DEFAULT_IMAGE,
    *,
    reference: str | None = None,
    env: Mapping[str, str] | None = None,
    pipeline_root: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The KFP v2 ``PipelineSpec`` and the Kubernetes ``PlatformSpec`` (node selectors; None
    when no step needs one).

    Args:
        pipeline: the traced pipeline.
        image: container image with Shipyard and the pipeline's module installed.
        reference: ``module:attribute`` the entrypoint imports the pipeline from (default:
            where the pipeline function was defined).
        env: environment variables of every step container (e.g. ``SHIPYARD_DB``).
        pipeline_root: ``defaultPipelineRoot``, where KFP stores artifacts.

    Raises:
        NotSupportedError: the pipeline uses something KFP cannot express (the message says
            what to change).
    """
    ref = reference or pipeline_reference(pipeline)
    compiler = _Compiler(pipeline, image, ref, env or {})
    spec = compiler.build()
    if pipeline_root:
        spec["defaultPipelineRoot"] = pipeline_root
    check_references(spec)
    platform = None
    if compiler.platform:
        executors = dict(sorted(compiler.platform.items()))
        platform = {"platforms": {"kubernetes": {"deploymentSpec": {"executors": executors}}}}
    return spec, platform


def compile_kfp(pipeline: Pipeline, image: str = DEFAULT_IMAGE, **options: Any) -> dict[str, Any]:
    """The pipeline as a KFP v2 ``PipelineSpec`` dict (options as ``compile_kfp_documents``;
    ``kfp_yaml`` gives the whole file)."""
    return compile_kfp_documents(pipeline, image, **options)[0]


def kfp_yaml(pipeline: Pipeline, image: str = DEFAULT_IMAGE, **options: Any) -> str:
    """The YAML file KFP uploads: the PipelineSpec, then the PlatformSpec when needed."""
    spec, platform = compile_kfp_documents(pipeline, image, **options)
    header = f"# PIPELINE DEFINITION\n# Name: {pipeline.graph.name}\n"
    docs = [spec] if platform is None else [spec, platform]
    return header + yaml.safe_dump_all(docs, sort_keys=True, default_flow_style=False)


def write_kfp(
    pipeline: Pipeline, path: str | Path, image: str = DEFAULT_IMAGE, **options: Any
) -> Path:
    """Write ``kfp_yaml`` to ``path``; returns the path."""
    target = Path(path)
    target.write_text(kfp_yaml(pipeline, image, **options))
    return target
