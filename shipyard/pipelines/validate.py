"""Definition-time checks of a pipeline graph, one small function per rule.

Each ``check_<rule>(graph)`` raises ``PipelineDefinitionError`` naming the step (or group or
parameter), where it is defined and what to change. ``validate`` runs them all in ``CHECKS``
order: names and references first, so the later rules can assume every name resolves.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Iterator

from shipyard.errors import PipelineDefinitionError, did_you_mean
from shipyard.pipelines import graph as g
from shipyard.pipelines.types import ANY, is_artifact, is_assignable, value_type

__all__ = [
    "CHECKS",
    "check_acyclic",
    "check_argument_types",
    "check_condition_types",
    "check_condition_upstream",
    "check_exit_handlers",
    "check_input_defaults",
    "check_loops",
    "check_parameters",
    "check_pipeline_name",
    "check_references",
    "check_required_inputs",
    "check_reserved_names",
    "check_resources",
    "check_retries",
    "check_scopes",
    "check_step_names",
    "check_timeouts",
    "check_unique_step_names",
    "check_unknown_arguments",
    "validate",
]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_GROUP_ID = re.compile(r"^(condition|exit-handler|for-loop)-\d+$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_KINDS = {"condition": "`when` block", "parallel_for": "ParallelFor", "exit_handler": "ExitHandler"}
_CPU_HINT = "Use a positive number of cores or millicores, e.g. cpu=2, cpu='0.5' or cpu='500m'."
_MEMORY_HINT = (
    "Use a positive number of bytes, or a number with one of the suffixes K, M, G, T, P, E "
    "(powers of 1000) or Ki, Mi, Gi, Ti, Pi, Ei (powers of 1024), e.g. '8G' or '512Mi'."
)


def _step(node: g.StepNode) -> str:
    return f"Step '{node.name}' ({node.where})"


def _group(group: g.Group) -> str:
    return f"{_KINDS[group.kind]} '{group.id}' ({group.where})"


def _describe(graph: g.Graph, binding: g.Binding) -> str:
    kind = graph.type_of(binding)
    match binding:
        case g.Constant(value):
            return f"the literal {value!r} ({kind})"
        case g.ParamRef(name):
            return f"pipeline parameter '{name}' ({kind})"
        case g.OutputRef(step, output):
            return f"output '{output}' of step '{step}' ({kind})"
        case g.CollectedRef(step, output):
            return f"Collected(output '{output}' of step '{step}') ({kind})"
        case g.PlaceholderRef(name):
            return f"placeholder {name.upper()} ({kind})"
        case g.LoopItemRef(loop, key):
            part = f"key {key!r} of the item" if key is not None else "the item"
            return f"{part} of ParallelFor '{loop}' ({kind})"
    raise TypeError(f"not a binding: {binding!r}")  # pragma: no cover


# --- names -----------------------------------------------------------------------------------


def check_pipeline_name(graph: g.Graph) -> None:
    """The pipeline name is a DNS label, as KFP and Kubernetes require."""
    if not _DNS_LABEL.match(graph.name) or len(graph.name) > 128:
        raise PipelineDefinitionError(
            f"Pipeline name '{graph.name}' ({graph.where}) is not valid.",
            hint="Use lowercase letters, digits and '-', at most 128 characters, e.g. "
            "@pipeline(name='nightly-training').",
        )


def check_step_names(graph: g.Graph) -> None:
    """Step names are DNS labels (at most 63 characters), valid in Kubernetes, KFP and
    Airflow alike."""
    for node in graph.steps:
        if not _DNS_LABEL.match(node.name) or len(node.name) > 63:
            raise PipelineDefinitionError(
                f"Step name '{node.name}' ({node.where}) is not valid: step names use lowercase "
                "letters, digits and '-', start and end with a letter or digit, and have at "
                "most 63 characters.",
                hint="Give the step function a shorter name, or pass @step(name='...').",
            )


def check_unique_step_names(graph: g.Graph) -> None:
    """Two steps never share a name (the DSL suffixes repeated calls: train, train-2)."""
    seen: dict[str, g.StepNode] = {}
    for node in graph.steps:
        if node.name in seen:
            raise PipelineDefinitionError(
                f"Two steps are named '{node.name}' ({seen[node.name].where} and {node.where}).",
                hint="Give each step a unique name.",
            )
        seen[node.name] = node


def check_reserved_names(graph: g.Graph) -> None:
    """Step names do not look like group ids; parameter names do not shadow placeholders or
    the names compilers generate."""
    for node in graph.steps:
        if node.name == "root" or _GROUP_ID.match(node.name):
            raise PipelineDefinitionError(
                f"{_step(node)} uses a reserved name: 'root' and names like 'condition-1', "
                "'exit-handler-1' and 'for-loop-1' are kept for the pipeline's own groups.",
                hint="Rename the step function or pass @step(name='...').",
            )
    for param in graph.parameters:
        reason = None
        if param.name in g.PLACEHOLDERS:
            reason = f"it is the {param.name.upper()} placeholder"
        elif param.name.startswith("_"):
            reason = "names starting with '_' are kept for Shipyard"
        elif param.name.startswith("pipelinechannel"):
            reason = "names starting with 'pipelinechannel' are kept for Kubeflow Pipelines"
        if reason:
            raise PipelineDefinitionError(
                f"Pipeline parameter '{param.name}' of '{graph.name}' ({graph.where}) uses a "
                f"reserved name: {reason}.",
                hint="Rename the parameter; use RUN_ID and SCHEDULED_TIME from "
                "shipyard.pipelines to pass the run's id and scheduled time to a step.",
            )


# --- references and arguments ----------------------------------------------------------------


def _bindings(graph: g.Graph) -> Iterator[tuple[str, g.Binding]]:
    """Every binding with a description of who holds it."""
    for node in graph.steps:
        for key, binding in node.arguments.items():
            yield f"{_step(node)}, argument '{key}',", binding
    for group in graph.groups:
        if isinstance(group, g.ConditionGroup):
            for ref in group.condition.refs():
                yield f"The condition of {_group(group)}", ref
        elif isinstance(group, g.ParallelForGroup):
            yield f"The items of {_group(group)}", group.items


def check_references(graph: g.Graph) -> None:
    """Every step, output, parameter, group, component and placeholder named exists."""
    steps = [s.name for s in graph.steps]
    for node in graph.steps:
        if node.component not in graph.components:
            raise PipelineDefinitionError(
                f"{_step(node)} uses component '{node.component}', which the graph does not "
                "define.",
                hint="Add the component to the graph's components.",
            )
        for name in node.after:
            if not graph.has_step(name):
                raise PipelineDefinitionError(
                    f"{_step(node)} runs after '{name}', which is not a step of the pipeline."
                    + did_you_mean(name, steps),
                    hint="Name an existing step in .after().",
                )
        if node.group is not None and not graph.has_group(node.group):
            raise PipelineDefinitionError(
                f"{_step(node)} is in group '{node.group}', which the graph does not define.",
                hint="Add the group to the graph's groups.",
            )
    for group in graph.groups:
        if group.parent is not None and not graph.has_group(group.parent):
            raise PipelineDefinitionError(
                f"{_group(group)} is inside group '{group.parent}', which does not exist.",
                hint="Add the parent group to the graph's groups.",
            )
        if isinstance(group, g.ExitHandlerGroup) and not graph.has_step(group.exit_step):
            raise PipelineDefinitionError(
                f"{_group(group)} has exit step '{group.exit_step}', which is not a step of the "
                "pipeline." + did_you_mean(group.exit_step, steps),
                hint="Name an existing step as the exit step.",
            )
    for holder, binding in _bindings(graph):
        _check_reference(graph, holder, binding, steps)


def _check_reference(graph: g.Graph, holder: str, binding: g.Binding, steps: list[str]) -> None:
    match binding:
        case g.OutputRef(step, output) | g.CollectedRef(step, output):
            if not graph.has_step(step):
                raise PipelineDefinitionError(
                    f"{holder} reads step '{step}', which is not a step of the pipeline."
                    + did_you_mean(step, steps),
                    hint="Pass an output of a step called in the pipeline.",
                )
            if graph.output_port(step, output) is None:
                outputs = [p.name for p in graph.component_of(step).outputs]
                raise PipelineDefinitionError(
                    f"{holder} reads output '{output}' of step '{step}', which has no such "
                    "output." + did_you_mean(output, outputs),
                    hint=f"Its outputs are: {', '.join(outputs) or 'none'}.",
                )
        case g.ParamRef(name):
            if graph.parameter(name) is None:
                names = [p.name for p in graph.parameters]
                raise PipelineDefinitionError(
                    f"{holder} reads pipeline parameter '{name}', which does not exist."
                    + did_you_mean(name, names),
                    hint="Declare it as a parameter of the pipeline function.",
                )
        case g.PlaceholderRef(name):
            if name not in g.PLACEHOLDERS:
                raise PipelineDefinitionError(
                    f"{holder} uses placeholder '{name}', which does not exist.",
                    hint=f"Placeholders: {', '.join(p.upper() for p in g.PLACEHOLDERS)}.",
                )
        case g.LoopItemRef(loop, _):
            if not isinstance(
                graph.group(loop) if graph.has_group(loop) else None, g.ParallelForGroup
            ):
                raise PipelineDefinitionError(
                    f"{holder} reads the item of ParallelFor '{loop}', which does not exist.",
                    hint="Use the item inside its `with ParallelFor(...) as item:` block.",
                )


def check_unknown_arguments(graph: g.Graph) -> None:
    """Every argument names an input of the step function."""
    for node in graph.steps:
        component = graph.components[node.component]
        names = [p.name for p in component.inputs]
        for key in node.arguments:
            if key not in names:
                raise PipelineDefinitionError(
                    f"{_step(node)} got an unknown argument '{key}'." + did_you_mean(key, names),
                    hint=f"{component.function} ({component.where}) takes: "
                    f"{', '.join(names) or 'no arguments'}.",
                )


def check_required_inputs(graph: g.Graph) -> None:
    """Every input without a default gets an argument."""
    for node in graph.steps:
        component = graph.components[node.component]
        for port in component.inputs:
            if port.required and port.name not in node.arguments:
                raise PipelineDefinitionError(
                    f"{_step(node)} is missing required input '{port.name}' ({port.type}).",
                    hint=f"Pass {port.name}=... when calling the step, or give '{port.name}' a "
                    f"default in {component.function} ({component.where}).",
                )


def _default_problem(port: g.Port) -> str | None:
    """Why a port's default does not fit its type, or None when it fits."""
    if port.required or port.default is None:
        return None
    if is_artifact(port.type):
        return "artifact inputs can only default to None"
    actual = value_type(port.default)
    if not is_assignable(actual, port.type):
        return f"its default {port.default!r} is a {actual}"
    return None


def check_parameters(graph: g.Graph) -> None:
    """Pipeline parameters are JSON parameters (not artifacts) whose defaults fit their type."""
    for param in graph.parameters:
        where = f"Pipeline parameter '{param.name}' of '{graph.name}' ({graph.where})"
        if is_artifact(param.type):
            raise PipelineDefinitionError(
                f"{where} is a {param.type}; pipeline parameters are int, float, str, bool, "
                "list or dict.",
                hint="Pass a path or URI as a str parameter and load the artifact in a step.",
            )
        problem = _default_problem(param)
        if problem:
            raise PipelineDefinitionError(
                f"{where} is declared {param.type} but {problem}.",
                hint=f"Make the default a value of type {param.type}, or change the annotation.",
            )


def check_input_defaults(graph: g.Graph) -> None:
    """The defaults of step function parameters fit their annotations."""
    for name in sorted(graph.components):
        component = graph.components[name]
        for port in component.inputs:
            problem = _default_problem(port)
            if problem:
                raise PipelineDefinitionError(
                    f"Parameter '{port.name}' of step function {component.function} "
                    f"({component.where}) is declared {port.type} but {problem}.",
                    hint=f"Make the default a value of type {port.type}, or change the annotation.",
                )


def check_argument_types(graph: g.Graph) -> None:
    """Every argument's type fits its input: no Model into a Dataset, no str into an int."""
    for node in graph.steps:
        component = graph.components[node.component]
        for key, binding in node.arguments.items():
            port = component.input(key)
            if port is None:
                continue
            if isinstance(binding, g.Constant) and binding.value is None:
                if port.default is None:
                    continue
                raise PipelineDefinitionError(
                    f"{_step(node)}: input '{key}' ({port.type}) gets None, but only inputs "
                    "that default to None accept it.",
                    hint=f"Pass a value of type {port.type}, or declare "
                    f"`{key}: {port.type} | None = None`.",
                )
            actual = graph.type_of(binding)
            if is_assignable(actual, port.type):
                continue
            if is_artifact(port.type) and isinstance(binding, g.Constant):
                hint = f"Artifacts come from upstream steps: pass an output of type {port.type}."
            else:
                hint = (
                    f"Pass a value of type {port.type}, or change the annotation of '{key}' in "
                    f"{component.function} ({component.where})."
                )
            raise PipelineDefinitionError(
                f"{_step(node)}: input '{key}' expects {port.type} but gets "
                f"{_describe(graph, binding)}.",
                hint=hint,
            )


# --- groups ----------------------------------------------------------------------------------


def check_loops(graph: g.Graph) -> None:
    """ParallelFor iterates over a list and runs at least one item at a time."""
    for group in graph.groups:
        if not isinstance(group, g.ParallelForGroup):
            continue
        items = graph.type_of(group.items)
        if not (items.startswith("list") or items == ANY):
            raise PipelineDefinitionError(
                f"{_group(group)} iterates over {_describe(graph, group.items)}, which is not a "
                "list.",
                hint="Pass a literal list, a list parameter or a list output of a step.",
            )
        parallelism = group.parallelism
        if parallelism is not None and (
            isinstance(parallelism, bool) or not isinstance(parallelism, int) or parallelism < 1
        ):
            raise PipelineDefinitionError(
                f"{_group(group)} has parallelism={parallelism!r}.",
                hint="Use a whole number >= 1, or None for no limit.",
            )


def _blocking(
    graph: g.Graph, producer: str, scope: tuple[str, ...], kinds: set[str]
) -> g.Group | None:
    """The outermost group of ``kinds`` around ``producer`` that does not enclose ``scope``."""
    for group in graph.groups_of(producer):
        if group.kind in kinds and group.id not in scope:
            return group
    return None


def _outside_hint(group: g.Group, consumer: str) -> str:
    if group.kind == "parallel_for":
        return (
            f"Wrap the output in Collected(...) to receive the list of all iterations' values, "
            f"or move {consumer} into the loop."
        )
    return f"Move {consumer} into the same `with when(...):` block."


def _why(group: g.Group) -> str:
    if group.kind == "parallel_for":
        return f"runs once per item of {_group(group)}"
    return f"runs only inside {_group(group)}"


def check_scopes(graph: g.Graph) -> None:
    """Data does not leak out of ``when`` and ParallelFor blocks: a step outside a block cannot
    read (or run after) a step that may not run, and reads a loop's outputs only through
    Collected."""
    for node in graph.steps:
        scope = graph.scope(node.group)
        for key, binding in node.arguments.items():
            what = f"{_step(node)}, argument '{key}',"
            if isinstance(binding, g.OutputRef):
                group = _blocking(graph, binding.step, scope, {"condition", "parallel_for"})
                if group:
                    raise PipelineDefinitionError(
                        f"{what} reads output '{binding.output}' of step '{binding.step}', "
                        f"which {_why(group)}.",
                        hint=_outside_hint(group, f"'{node.name}'"),
                    )
            elif isinstance(binding, g.CollectedRef):
                _check_collected(graph, node, key, binding, scope)
            elif isinstance(binding, g.LoopItemRef) and binding.loop not in scope:
                raise PipelineDefinitionError(
                    f"{what} reads the item of ParallelFor '{binding.loop}' outside that loop.",
                    hint="Use a loop item only inside its `with ParallelFor(...) as item:` block.",
                )
        for name in node.after:
            group = _blocking(graph, name, scope, {"condition"})
            if group:
                raise PipelineDefinitionError(
                    f"{_step(node)} runs after step '{name}', which {_why(group)}.",
                    hint=f"Move '{node.name}' into the same `with when(...):` block, or remove "
                    "the .after().",
                )
    for group in graph.groups:
        if isinstance(group, g.ParallelForGroup):
            scope = graph.scope(group.parent)
            items = group.items
            if isinstance(items, g.OutputRef):
                blocking = _blocking(graph, items.step, scope, {"condition", "parallel_for"})
                if blocking:
                    raise PipelineDefinitionError(
                        f"The items of {_group(group)} come from step '{items.step}', which "
                        f"{_why(blocking)}.",
                        hint=_outside_hint(blocking, "the ParallelFor"),
                    )
            elif isinstance(items, g.LoopItemRef) and items.loop not in scope:
                raise PipelineDefinitionError(
                    f"The items of {_group(group)} read the item of ParallelFor '{items.loop}' "
                    "outside that loop.",
                    hint="Nest the inner ParallelFor inside the outer one.",
                )


def _check_collected(
    graph: g.Graph, node: g.StepNode, key: str, ref: g.CollectedRef, scope: tuple[str, ...]
) -> None:
    what = f"{_step(node)}, argument '{key}',"
    groups = graph.groups_of(ref.step)
    loops = [grp for grp in groups if grp.kind == "parallel_for"]
    if not loops:
        raise PipelineDefinitionError(
            f"{what} collects output '{ref.output}' of step '{ref.step}', which is not inside a "
            "ParallelFor.",
            hint=f"Pass {ref.step}.outputs['{ref.output}'] directly; Collected() gathers the "
            "values of a step that runs once per loop item.",
        )
    loop = loops[-1]
    if loop.id in scope:
        raise PipelineDefinitionError(
            f"{what} collects output '{ref.output}' of step '{ref.step}' from inside the same "
            f"{_group(loop)}.",
            hint="Inside the loop, pass the output directly; use Collected(...) after the loop.",
        )
    for group in groups[: groups.index(loop)]:
        if group.kind in ("condition", "parallel_for") and group.id not in scope:
            raise PipelineDefinitionError(
                f"{what} collects output '{ref.output}' of step '{ref.step}', which "
                f"{_why(group)}; Collected() gathers one loop level.",
                hint=_outside_hint(group, f"'{node.name}'")
                if group.kind == "condition"
                else f"Move '{node.name}' into {_group(group)}, and collect again after it.",
            )


def check_condition_upstream(graph: g.Graph) -> None:
    """A condition reads only outputs of steps that run before its block, outside it: never a
    step inside the block or one that may not run."""
    for group in graph.groups:
        if not isinstance(group, g.ConditionGroup):
            continue
        scope = graph.scope(group.parent)
        body = set(graph.body(group.id))
        for ref in group.condition.refs():
            if isinstance(ref, g.OutputRef):
                producer = graph.step(ref.step)
                where = (
                    f"The condition of {_group(group)} reads output '{ref.output}' of step "
                    f"'{ref.step}' ({producer.where}), which is not upstream of the block"
                )
                if ref.step in body:
                    raise PipelineDefinitionError(
                        f"{where}: the step is inside the block itself.",
                        hint="Compute the condition from a step called before the block.",
                    )
                blocking = _blocking(graph, ref.step, scope, {"condition", "parallel_for"})
                if blocking:
                    raise PipelineDefinitionError(
                        f"{where}: '{ref.step}' {_why(blocking)}.",
                        hint="Test outputs of steps that run before the block, outside other "
                        "`when` and ParallelFor blocks, or nest this block inside "
                        f"{blocking.id}.",
                    )
            elif isinstance(ref, g.LoopItemRef) and ref.loop not in scope:
                raise PipelineDefinitionError(
                    f"The condition of {_group(group)} reads the item of ParallelFor "
                    f"'{ref.loop}' outside that loop.",
                    hint="Use the loop item only inside its ParallelFor block.",
                )


def _comparisons(condition: g.Condition) -> Iterator[g.Comparison]:
    if isinstance(condition, g.Comparison):
        yield condition
    elif isinstance(condition, g.And | g.Or):
        yield from _comparisons(condition.left)
        yield from _comparisons(condition.right)
    elif isinstance(condition, g.Not):
        yield from _comparisons(condition.operand)


def _comparable(op: str, left: str, right: str) -> bool:
    if ANY in (left, right):
        return True
    numeric = {left, right} <= {"int", "float"}
    if op in ("==", "!="):
        return numeric or left == right
    return numeric or left == right == "str"


def check_condition_types(graph: g.Graph) -> None:
    """Conditions compare parameter values of matching kinds: no artifacts, no str < int."""
    for group in graph.groups:
        if not isinstance(group, g.ConditionGroup):
            continue
        for cmp in _comparisons(group.condition):
            for operand in (cmp.left, cmp.right):
                if is_artifact(graph.type_of(operand)):
                    raise PipelineDefinitionError(
                        f"The condition of {_group(group)} compares "
                        f"{_describe(graph, operand)}; conditions compare parameter values, "
                        "not artifacts.",
                        hint="Also output a metric, e.g. `-> Outputs(model=Model, "
                        "accuracy=float)`, and compare that.",
                    )
            if _comparable(cmp.op, graph.type_of(cmp.left), graph.type_of(cmp.right)):
                continue
            raise PipelineDefinitionError(
                f"The condition of {_group(group)} compares {_describe(graph, cmp.left)} "
                f"{cmp.op} {_describe(graph, cmp.right)}, which "
                + ("is never equal." if cmp.op in ("==", "!=") else "cannot be ordered."),
                hint="Compare numbers with numbers, strings with strings, and use == or != "
                "for bool, list and dict values.",
            )


def _non_exit_ancestors(graph: g.Graph, step: str) -> set[str]:
    preds: dict[str, list[str]] = {}
    for edge in graph.edges:
        if edge.kind != "exit":
            preds.setdefault(edge.target, []).append(edge.source)
    seen: set[str] = set()
    todo = list(preds.get(step, ()))
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(preds.get(name, ()))
    return seen


def check_exit_handlers(graph: g.Graph) -> None:
    """Exit handlers sit at the top level, are not nested, own their exit step, and the exit
    step neither depends on the body nor feeds it."""
    exit_of: dict[str, g.ExitHandlerGroup] = {}
    for group in graph.groups:
        if not isinstance(group, g.ExitHandlerGroup):
            continue
        if group.parent is not None:
            outer = [graph.group(p) for p in graph.scope(group.parent)]
            handler = next((o for o in outer if o.kind == "exit_handler"), None)
            where = (
                f"nested inside {_group(handler)}; exit handlers cannot be nested"
                if handler
                else f"inside {_group(outer[-1])}; an ExitHandler must be at the top level of "
                "the pipeline"
            )
            raise PipelineDefinitionError(
                f"{_group(group)} is {where}.",
                hint="Use one ExitHandler around the whole pipeline body, and do all cleanup in "
                "its exit step.",
            )
        exit_node = graph.step(group.exit_step)
        if group.exit_step in exit_of:
            raise PipelineDefinitionError(
                f"{_step(exit_node)} is the exit step of both {_group(exit_of[group.exit_step])} "
                f"and {_group(group)}.",
                hint="Call the cleanup step once per ExitHandler.",
            )
        exit_of[group.exit_step] = group
        body = graph.body(group.id)
        if group.exit_step in body or exit_node.group is not None:
            raise PipelineDefinitionError(
                f"{_step(exit_node)} is the exit step of {_group(group)} but is not at the top "
                "level of the pipeline.",
                hint="Call the exit step right in the ExitHandler: `with ExitHandler(cleanup()):`.",
            )
        ancestors = _non_exit_ancestors(graph, group.exit_step)
        for name in body:
            if name in ancestors:
                raise PipelineDefinitionError(
                    f"Exit step '{exit_node.name}' ({exit_node.where}) of {_group(group)} "
                    f"depends on step '{name}' ({graph.step(name).where}), which is inside the "
                    "handler's body. The exit step runs once the body has finished, whatever "
                    "the outcome, so it cannot wait for or read from it.",
                    hint=f"Remove the .after() or the argument that ties '{exit_node.name}' to "
                    f"'{name}'.",
                )
            if group.exit_step in _non_exit_ancestors(graph, name):
                node = graph.step(name)
                raise PipelineDefinitionError(
                    f"{_step(node)} inside {_group(group)} depends on the handler's exit step "
                    f"'{exit_node.name}', which runs last.",
                    hint=f"Do not pass outputs of '{exit_node.name}' into the body or make body "
                    "steps run after it; call a separate step for that.",
                )


# --- graph shape -----------------------------------------------------------------------------


def check_acyclic(graph: g.Graph) -> None:
    """No step waits for itself; a cycle can only come from .after() (or a condition)."""
    cycle = graph.find_cycle()
    if cycle is None:
        return
    kinds = {(e.source, e.target): e.kind for e in graph.edges}
    closing = [
        f"'{t}'.after('{s}')" for s, t in itertools.pairwise(cycle) if kinds.get((s, t)) == "after"
    ]
    steps = ", ".join(f"'{n}' at {graph.step(n).where}" for n in dict.fromkeys(cycle))
    raise PipelineDefinitionError(
        f"Pipeline '{graph.name}' has a cycle: {' -> '.join(cycle)} ({steps}).",
        hint=f"Remove one of {', '.join(closing)} so that no step waits for itself."
        if closing
        else "Break the loop: no step may wait, directly or indirectly, for itself.",
    )


# --- step settings ---------------------------------------------------------------------------


def _parsed(
    node: g.StepNode, key: str, value: str | None, parse: Callable[[str], float], hint: str
) -> float | None:
    if value is None:
        return None
    try:
        return parse(value)
    except (TypeError, ValueError):
        raise PipelineDefinitionError(
            f"{_step(node)}: {key} {value!r} is not a valid amount.", hint=hint
        ) from None


def check_resources(graph: g.Graph) -> None:
    """CPU and memory are positive Kubernetes quantities with request <= limit; gpu is a count
    >= 0 (1 when only an accelerator is named); node selectors are Kubernetes labels."""
    for node in graph.steps:
        res = node.resources
        for kind, parse, hint in (
            ("cpu", g.parse_cpu, _CPU_HINT),
            ("memory", g.parse_memory, _MEMORY_HINT),
        ):
            request_text = getattr(res, f"{kind}_request")
            limit_text = getattr(res, f"{kind}_limit")
            request = _parsed(node, f"{kind}_request", request_text, parse, hint)
            limit = _parsed(node, f"{kind}_limit", limit_text, parse, hint)
            if request is not None and limit is not None and request > limit:
                raise PipelineDefinitionError(
                    f"{_step(node)}: {kind}_request {request_text!r} is more than "
                    f"{kind}_limit {limit_text!r}.",
                    hint=f"Raise {kind}_limit or lower {kind}_request.",
                )
        gpu = res.gpu
        if gpu is not None and (isinstance(gpu, bool) or not isinstance(gpu, int) or gpu < 0):
            raise PipelineDefinitionError(
                f"{_step(node)}: gpu={gpu!r} is not a number of accelerators.",
                hint="Use a whole number >= 0, e.g. gpu=1.",
            )
        if res.accelerator is not None:
            if not isinstance(res.accelerator, str) or not res.accelerator.strip():
                raise PipelineDefinitionError(
                    f"{_step(node)}: accelerator={res.accelerator!r} is not an accelerator type.",
                    hint="Name the type, e.g. accelerator='nvidia-tesla-k80'.",
                )
            if gpu == 0:
                raise PipelineDefinitionError(
                    f"{_step(node)}: accelerator {res.accelerator!r} is set but gpu=0.",
                    hint="Set gpu to 1 or more, or drop the accelerator.",
                )
        for key, value in res.node_selector.items():
            if (
                not _label_key_ok(key)
                or not isinstance(value, str)
                or not (value == "" or (len(value) <= 63 and _LABEL_NAME.match(value)))
            ):
                raise PipelineDefinitionError(
                    f"{_step(node)}: node selector {key!r}: {value!r} is not a Kubernetes label.",
                    hint="Keys are [prefix/]name and values at most 63 letters, digits, '-', "
                    "'_' or '.', e.g. {'cloud.google.com/gke-accelerator': 'nvidia-tesla-k80'}.",
                )


def _label_key_ok(key: object) -> bool:
    if not isinstance(key, str):
        return False
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return False
    return len(name) <= 63 and bool(_LABEL_NAME.match(name))


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_retries(graph: g.Graph) -> None:
    """Retry counts are whole numbers >= 0 and backoffs non-negative and growing."""
    for node in graph.steps:
        retry = node.retry
        if retry is None:
            continue
        n = retry.max_retries
        problem = None
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            problem = f"retries({n!r}) is not a whole number >= 0"
        elif not _number(retry.backoff_seconds) or retry.backoff_seconds < 0:
            problem = f"backoff {retry.backoff_seconds!r} is not a number of seconds >= 0"
        elif not _number(retry.backoff_factor) or retry.backoff_factor < 1:
            problem = f"backoff factor {retry.backoff_factor!r} is less than 1"
        elif not _number(retry.max_backoff_seconds) or (
            retry.max_backoff_seconds < retry.backoff_seconds
        ):
            problem = (
                f"max_backoff {retry.max_backoff_seconds!r} is less than backoff "
                f"{retry.backoff_seconds!r}"
            )
        if problem:
            raise PipelineDefinitionError(
                f"{_step(node)}: {problem}.",
                hint="Use e.g. .retries(3, backoff=30) for waits of 30 s, 60 s and 120 s, or "
                ".retries(3, backoff=300, factor=1) for a fixed 5-minute delay.",
            )


def check_timeouts(graph: g.Graph) -> None:
    """Timeouts are a positive number of seconds."""
    for node in graph.steps:
        if node.timeout is not None and (not _number(node.timeout) or node.timeout <= 0):
            raise PipelineDefinitionError(
                f"{_step(node)}: timeout {node.timeout!r} is not a number of seconds > 0.",
                hint="Use e.g. .timeout(600) or .timeout(timedelta(minutes=10)).",
            )


CHECKS: tuple[Callable[[g.Graph], None], ...] = (
    check_pipeline_name,
    check_step_names,
    check_unique_step_names,
    check_reserved_names,
    check_references,
    check_unknown_arguments,
    check_required_inputs,
    check_parameters,
    check_input_defaults,
    check_argument_types,
    check_loops,
    check_scopes,
    check_condition_upstream,
    check_condition_types,
    check_exit_handlers,
    check_acyclic,
    check_resources,
    check_retries,
    check_timeouts,
)


def validate(graph: g.Graph) -> None:
    """Run every check in order; the first broken rule raises.

    Raises:
        PipelineDefinitionError: Naming the step, the parameter and the line to fix.
    """
    for check in CHECKS:
        check(graph)
