"""The pipeline DSL: steps, outputs, parameters, placeholders and per-step settings, traced into a
graph the executor and compilers can read. The seed guide's two pipelines are the anchors."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import NamedTuple

import pytest
import seed_pipelines as seed

from shipyard.errors import PipelineDefinitionError
from shipyard.pipelines import (
    RUN_ID,
    SCHEDULED_TIME,
    Artifact,
    Collected,
    Dataset,
    ExitHandler,
    Metrics,
    Model,
    Outputs,
    Pipeline,
    Step,
    Task,
    pipeline,
    step,
    when,
)
from shipyard.pipelines.graph import (
    Comparison,
    Constant,
    ExitHandlerGroup,
    OutputRef,
    ParamRef,
    PlaceholderRef,
    Port,
    Resources,
    RetryPolicy,
)


@step
def load(path: str, limit: int = 100) -> Dataset:
    """Load rows."""
    return Dataset(uri=path)


@step
def fit(data: Dataset, lr: float = 0.1, epochs: int = 3) -> Outputs(model=Model, accuracy=float):
    return Model(), 0.9


class EvalResult(NamedTuple):
    metrics: Metrics
    passed: bool


@step
def evaluate(model: Model, data: Dataset) -> EvalResult:
    return EvalResult(Metrics(), True)


def _summarize(model: Model):  # type: ignore[no-untyped-def]
    return {"report": Artifact(), "size": 1}


# A dict of names to types declares named outputs too; linters read string keys in an
# annotation as forward references, hence the assignment instead of a literal annotation.
_summarize.__annotations__["return"] = dict(report=Artifact, size=int)
summarize = step(_summarize)


@step
def publish(model: Model, tag: str, when_: str = "") -> None:
    pass


@step
def noop() -> None:
    pass


class TestSeedKubeflowPipeline:
    """The seed's Kubeflow pipeline: every feature it uses shows up in the graph."""

    graph = seed.training_pipeline.graph

    def test_parameters_with_types_and_defaults(self) -> None:
        assert self.graph.parameters == (
            Port("data_path", "str"),
            Port("model_params", "dict"),
            Port("validation_threshold", "float", 0.85),
        )
        assert self.graph.name == "advanced-training-pipeline"
        assert self.graph.description == "End-to-end ML training pipeline with monitoring"

    def test_exit_handler_wraps_the_body_and_cleanup_runs_last(self) -> None:
        (handler,) = [g for g in self.graph.groups if isinstance(g, ExitHandlerGroup)]
        assert handler.exit_step == "cleanup"
        assert self.graph.body(handler.id) == (
            "data-preparation",
            "feature-engineering",
            "train-model",
            "deploy-model",
        )
        assert self.graph.topological_order()[-1] == "cleanup"
        assert set(self.graph.upstream("cleanup")) == set(self.graph.body(handler.id))
        assert {e.kind for e in self.graph.edges if e.target == "cleanup"} == {"exit"}

    def test_memory_request_and_limit(self) -> None:
        assert self.graph.step("data-preparation").resources == Resources(memory_request="4G")
        assert self.graph.step("feature-engineering").resources == Resources(memory_limit="8G")

    def test_caching_on_by_default_and_off_for_deploy(self) -> None:
        assert self.graph.step("feature-engineering").cache is True
        assert self.graph.step("train-model").cache is True
        assert self.graph.step("deploy-model").cache is False

    def test_gpu_with_accelerator_node_selector(self) -> None:
        resources = self.graph.step("train-model").resources
        assert resources.gpu == 1
        assert resources.accelerator == "nvidia-tesla-k80"
        assert resources.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-tesla-k80"}

    def test_condition_on_a_step_output_guards_deploy(self) -> None:
        deploy = self.graph.step("deploy-model")
        condition = self.graph.group(deploy.group)
        assert condition.condition == Comparison(
            ">", OutputRef("train-model", "validation_accuracy"), ParamRef("validation_threshold")
        )
        assert condition.parent == "exit-handler-1"
        assert [g.id for g in self.graph.groups_of("deploy-model")] == [
            "exit-handler-1",
            "condition-2",
        ]

    def test_deploy_is_tagged_with_the_run_id(self) -> None:
        deploy = self.graph.step("deploy-model")
        assert deploy.arguments == {
            "model": OutputRef("train-model", "model"),
            "version": PlaceholderRef("run_id"),
        }

    def test_data_flows_in_order(self) -> None:
        assert self.graph.topological_order() == (
            "data-preparation",
            "feature-engineering",
            "train-model",
            "deploy-model",
            "cleanup",
        )
        assert self.graph.upstream("train-model") == ("feature-engineering",)
        assert self.graph.downstream("train-model") == ("cleanup", "deploy-model")

    def test_to_dict_is_json(self) -> None:
        data = seed.training_pipeline.to_dict()
        assert json.loads(json.dumps(data)) == data
        assert data["groups"][1]["condition"] == {
            "op": ">",
            "left": {"output": {"step": "train-model", "name": "validation_accuracy"}},
            "right": {"parameter": "validation_threshold"},
        }


class TestSeedAirflowDag:
    """The seed's Airflow DAG: a >> b >> c, three retries five minutes apart."""

    graph = seed.ml_training_pipeline.graph

    def test_chain_via_after(self) -> None:
        assert self.graph.topological_order() == ("validate-data", "process-features", "train")
        assert self.graph.step("train").after == ("process-features",)
        assert [(e.source, e.target, e.kind) for e in self.graph.edges] == [
            ("validate-data", "process-features", "after"),
            ("process-features", "train", "after"),
        ]
        assert self.graph.levels() == (("validate-data",), ("process-features",), ("train",))

    def test_retries_with_a_fixed_delay(self) -> None:
        for node in self.graph.steps:
            assert node.retry == RetryPolicy(3, 300.0, 1.0, 3600.0)
            assert node.retry.delay(1) == node.retry.delay(3) == 300.0


class TestSteps:
    def test_step_records_typed_inputs_and_outputs(self) -> None:
        assert isinstance(fit, Step)
        assert fit.name == "fit"
        assert fit.component.inputs == (
            Port("data", "Dataset"),
            Port("lr", "float", 0.1),
            Port("epochs", "int", 3),
        )
        assert fit.component.outputs == (Port("model", "Model"), Port("accuracy", "float"))
        assert fit.component.returns == "named"
        assert fit.component.function == "test_dsl:fit"

    @pytest.mark.parametrize(
        ("fn", "outputs", "returns"),
        [
            (load, (Port("output", "Dataset"),), "single"),
            (evaluate, (Port("metrics", "Metrics"), Port("passed", "bool")), "named"),
            (summarize, (Port("report", "Artifact"), Port("size", "int")), "named"),
            (noop, (), "none"),
        ],
    )
    def test_output_declarations(self, fn: Step, outputs: tuple[Port, ...], returns: str) -> None:
        assert fn.component.outputs == outputs
        assert fn.component.returns == returns

    def test_parameter_types(self) -> None:
        @step
        def typed(
            a: int, b: float, c: str, d: bool, e: list, f: dict, g: list[int], h: int | None = None
        ) -> None:
            pass

        assert [p.type for p in typed.component.inputs] == [
            "int",
            "float",
            "str",
            "bool",
            "list",
            "dict",
            "list[int]",
            "int",
        ]

    def test_names_are_dns_labels_and_can_be_set(self) -> None:
        @step
        def Train_Model_V2() -> None:
            pass

        @step(name="load-data")
        def other() -> None:
            pass

        assert Train_Model_V2.name == "train-model-v2"
        assert other.name == "load-data"

    def test_description_is_the_first_docstring_line(self) -> None:
        assert load.component.description == "Load rows."

    def test_outside_a_pipeline_a_step_is_a_plain_function(self) -> None:
        data = load("s3://bucket/rows.csv")
        assert isinstance(data, Dataset) and data.uri == "s3://bucket/rows.csv"

    def test_fingerprint_is_sha256_of_name_and_source(self) -> None:
        import hashlib
        import inspect
        import textwrap

        source = textwrap.dedent(inspect.getsource(load.func))
        expected = hashlib.sha256(f"load\n{source}".encode()).hexdigest()
        assert load.component.fingerprint == expected

    def test_same_code_same_fingerprint_different_code_different(self) -> None:
        def make(body: str) -> Step:
            namespace: dict[str, object] = {}
            code = f"def f(x: int) -> int:\n    return {body}\n"
            import hashlib
            import linecache

            # A name for linecache only (inspect.getsource reads it from there); no file.
            path = f"<fingerprint-{hashlib.sha256(body.encode()).hexdigest()[:12]}>"

            linecache.cache[path] = (len(code), None, code.splitlines(True), path)
            exec(compile(code, path, "exec"), namespace)
            return step(namespace["f"])  # type: ignore[arg-type]

        assert make("x + 1").component.fingerprint == make("x + 1").component.fingerprint
        assert make("x + 1").component.fingerprint != make("x + 2").component.fingerprint


class TestPipelineTracing:
    def test_calls_return_tasks_with_output_handles(self) -> None:
        seen: dict[str, object] = {}

        @pipeline
        def traced(path: str) -> None:
            data = load(path=path)
            model = fit(data=data.output, lr=0.01)
            seen.update(data=data, model=model)

        assert isinstance(seen["data"], Task)
        assert isinstance(traced, Pipeline)
        assert traced.name == "traced"
        assert traced.graph.step("fit").arguments == {
            "data": OutputRef("load", "output"),
            "lr": Constant(0.01),
        }
        assert traced.step_functions == {"load": load, "fit": fit}

    def test_a_single_output_task_can_be_passed_directly(self) -> None:
        @pipeline
        def direct() -> None:
            fit(data=load(path="x"))

        assert direct.graph.step("fit").arguments["data"] == OutputRef("load", "output")

    def test_literals_are_plain_json(self) -> None:
        @step
        def configure(params: dict, sizes: list) -> None:
            pass

        @pipeline
        def literal() -> None:
            configure(params={"grid": ((1, 2), (3,))}, sizes=(1, 2))

        args = literal.graph.step("configure").arguments
        assert args == {
            "params": Constant({"grid": [[1, 2], [3]]}),
            "sizes": Constant([1, 2]),
        }

    def test_positional_arguments_bind_in_order(self) -> None:
        @pipeline
        def positional() -> None:
            load("x", 5)

        assert positional.graph.step("load").arguments == {
            "path": Constant("x"),
            "limit": Constant(5),
        }

    def test_repeated_calls_get_suffixed_names(self) -> None:
        @pipeline
        def repeated() -> None:
            data = load(path="x")
            for lr in (0.1, 0.01, 0.001):
                fit(data=data.output, lr=lr)

        assert [s.name for s in repeated.graph.steps] == ["load", "fit", "fit-2", "fit-3"]
        assert {s.component for s in repeated.graph.steps} == {"load", "fit"}

    def test_different_functions_with_one_name_get_distinct_components(self) -> None:
        @step(name="fit")
        def other_fit(data: Dataset) -> None:
            pass

        @pipeline
        def clash() -> None:
            data = load(path="x")
            fit(data=data.output)
            other_fit(data=data.output)

        assert [s.name for s in clash.graph.steps] == ["load", "fit", "fit-2"]
        assert clash.graph.step("fit-2").component == "fit-2"
        assert clash.graph.components["fit-2"].function.endswith("other_fit")

    def test_placeholders_for_run_id_and_scheduled_time(self) -> None:
        @pipeline
        def tagged() -> None:
            model = fit(data=load(path="x").output)
            publish(model=model.outputs["model"], tag=RUN_ID, when_=SCHEDULED_TIME)

        args = tagged.graph.step("publish").arguments
        assert args["tag"] == PlaceholderRef("run_id")
        assert args["when_"] == PlaceholderRef("scheduled_time")
        assert tagged.to_dict()["steps"][2]["arguments"]["tag"] == {"placeholder": "run_id"}

    def test_description_and_name_from_the_function(self) -> None:
        @pipeline
        def nightly_training() -> None:
            """Retrain every night.

            More text.
            """
            noop()

        assert nightly_training.name == "nightly-training"
        assert nightly_training.description == "Retrain every night."


class TestStepSettings:
    def _graph(self, configure):  # type: ignore[no-untyped-def]
        @pipeline
        def settings() -> None:
            configure(noop())

        return settings.graph.step("noop")

    def test_cpu_and_memory_set_request_and_limit(self) -> None:
        node = self._graph(lambda t: t.resources(cpu=0.5, memory="512Mi"))
        assert node.resources == Resources("0.5", "0.5", "512Mi", "512Mi")

    def test_resource_calls_merge(self) -> None:
        node = self._graph(
            lambda t: (
                t.resources(cpu_request="500m", memory_request=2_000_000)
                .resources(cpu_limit=2, memory_limit="8G")
                .resources(node_selector={"a": "1"})
                .resources(node_selector={"b": "2"})
            )
        )
        assert node.resources == Resources(
            "500m",
            "2",
            "2000000",
            "8G",
            node_selector={
                "a": "1",
                "b": "2",
            },
        )

    def test_accelerator_without_count_means_one(self) -> None:
        node = self._graph(lambda t: t.resources(accelerator="nvidia-tesla-t4"))
        assert (node.resources.gpu, node.resources.accelerator) == (1, "nvidia-tesla-t4")

    def test_gpu_count_without_accelerator(self) -> None:
        node = self._graph(lambda t: t.resources(gpu=2))
        assert (node.resources.gpu, node.resources.accelerator) == (2, None)

    def test_retries_timeout_and_cache(self) -> None:
        node = self._graph(
            lambda t: (
                t.retries(4, backoff=timedelta(seconds=10), max_backoff=60)
                .timeout(timedelta(minutes=2))
                .cache(False)
            )
        )
        assert node.retry == RetryPolicy(4, 10.0, 2.0, 60.0)
        assert [node.retry.delay(n) for n in (1, 2, 3, 4)] == [10.0, 20.0, 40.0, 60.0]
        assert node.timeout == 120.0
        assert node.cache is False

    def test_after_and_shift_operators(self) -> None:
        @pipeline
        def ordered() -> None:
            a, b, c, d = noop(), noop(), noop(), noop()
            a >> [b, c]
            [b, c] >> d
            e = noop()
            e << d

        graph = ordered.graph
        assert graph.step("noop-2").after == ("noop",)
        assert graph.step("noop-4").after == ("noop-2", "noop-3")
        assert graph.step("noop-5").after == ("noop-4",)
        assert graph.levels() == (("noop",), ("noop-2", "noop-3"), ("noop-4",), ("noop-5",))


class TestConditions:
    def test_and_or_not_on_outputs_and_parameters(self) -> None:
        @pipeline
        def gated(threshold: float = 0.8, mode: str = "prod") -> None:
            model = fit(data=load(path="x").output)
            acc = model.outputs["accuracy"]
            with when((acc > threshold) & ~(mode == "dry-run") | (acc >= 0.99)):
                publish(model=model.outputs["model"], tag="best")

        (group,) = gated.graph.groups
        assert group.condition.to_python() == (
            "((outputs['fit']['accuracy'] > params['threshold']) and "
            "(not (params['mode'] == 'dry-run'))) or (outputs['fit']['accuracy'] >= 0.99)"
        )
        assert group.condition.evaluate(
            {"fit": {"accuracy": 0.85}}, {"threshold": 0.8, "mode": "x"}
        )
        assert not group.condition.evaluate(
            {"fit": {"accuracy": 0.85}}, {"threshold": 0.8, "mode": "dry-run"}
        )
        assert ("fit", "publish", "condition") in {
            (e.source, e.target, e.kind) for e in gated.graph.edges
        }

    def test_reflected_comparison_with_a_literal_on_the_left(self) -> None:
        @pipeline
        def reflected() -> None:
            model = fit(data=load(path="x").output)
            with when(model.outputs["accuracy"] > 0.9):
                noop()

        assert reflected.graph.groups[0].condition == Comparison(
            ">", OutputRef("fit", "accuracy"), Constant(0.9)
        )

    def test_a_bool_output_is_a_condition(self) -> None:
        @pipeline
        def flagged() -> None:
            data = load(path="x")
            result = evaluate(model=fit(data=data.output).outputs["model"], data=data.output)
            with when(result.outputs["passed"]):
                noop()

        assert flagged.graph.groups[0].condition == Comparison(
            "==", OutputRef("evaluate", "passed"), Constant(True)
        )

    def test_nested_conditions(self) -> None:
        @pipeline
        def nested(a: int = 1, b: int = 2) -> None:
            with when(a > 0), when(b > 0):
                noop()

        assert [g.id for g in nested.graph.groups_of("noop")] == ["condition-1", "condition-2"]
        assert nested.graph.group("condition-2").parent == "condition-1"


class TestExitHandler:
    def test_exit_step_may_take_inputs_from_before_the_handler(self) -> None:
        @step
        def report(data: Dataset, run: str) -> None:
            pass

        @pipeline
        def guarded() -> None:
            data = load(path="x")
            with ExitHandler(report(data=data.output, run=RUN_ID)) as exit_task:
                fit(data=data.output)
            assert exit_task.name == "report"

        assert guarded.graph.topological_order() == ("load", "fit", "report")
        assert guarded.graph.upstream("report") == ("load", "fit")


class TestMisuseWhileTracing:
    """Mistakes that cannot become a graph fail on the spot, naming the line."""

    def test_unknown_output_name_suggests_the_close_one(self) -> None:
        with pytest.raises(
            PipelineDefinitionError,
            match=r"Step 'fit' has no output 'acuracy' "
            r"\(.*test_dsl\.py:\d+\)\. Did you mean 'accuracy'\?",
        ):

            @pipeline
            def typo() -> None:
                fit(data=load(path="x").output).outputs["acuracy"]

    def test_output_of_a_multi_output_step_is_ambiguous(self) -> None:
        with pytest.raises(
            PipelineDefinitionError,
            match=r"Step 'fit' has outputs model, "
            r"accuracy, so \.output is ambiguous.*\nHint: Pick one with ",
        ):

            @pipeline
            def ambiguous() -> None:
                publish(model=fit(data=load(path="x").output).output, tag="x")

    def test_too_many_positional_arguments(self) -> None:
        with pytest.raises(PipelineDefinitionError, match="Step 'load' takes 2 arguments but 3"):

            @pipeline
            def extra() -> None:
                load("x", 1, 2)

    def test_same_input_twice(self) -> None:
        with pytest.raises(PipelineDefinitionError, match="got two values for input 'path'"):

            @pipeline
            def twice() -> None:
                load("x", path="y")

    def test_if_on_an_output_says_use_when(self) -> None:
        with pytest.raises(PipelineDefinitionError, match=r"Use `with when\(condition\):`"):

            @pipeline
            def branching() -> None:
                model = fit(data=load(path="x").output)
                if model.outputs["accuracy"] > 0.9:
                    noop()

    def test_and_keyword_on_conditions_says_use_ampersand(self) -> None:
        with pytest.raises(PipelineDefinitionError, match="combine conditions with"):

            @pipeline
            def anded(a: int = 1) -> None:
                with when(a > 1 and a < 5):
                    noop()

    def test_missing_parentheses_around_comparisons(self) -> None:
        with pytest.raises(PipelineDefinitionError, match=r"Wrap each comparison in parentheses"):

            @pipeline
            def precedence(a: int = 1, b: int = 2) -> None:
                with when(a > 1 & b > 2):
                    noop()

    def test_formatting_a_placeholder_into_a_string(self) -> None:
        with pytest.raises(PipelineDefinitionError, match="Cannot format RUN_ID into a string"):

            @pipeline
            def formatted() -> None:
                publish(model=fit(data=load(path="x").output).outputs["model"], tag=f"v-{RUN_ID}")

    def test_iterating_over_an_output(self) -> None:
        with pytest.raises(PipelineDefinitionError, match=r"ParallelFor\(items\) as item"):

            @pipeline
            def iterating(paths: list) -> None:
                for path in paths:
                    load(path=path)

    def test_outputs_nested_in_a_literal(self) -> None:
        with pytest.raises(PipelineDefinitionError, match="is a list or dict holding step outputs"):

            @pipeline
            def nested_literal(path: str) -> None:
                load(path=[path])  # type: ignore[arg-type]

    def test_condition_as_an_argument(self) -> None:
        with pytest.raises(PipelineDefinitionError, match="is a condition, which has no value"):

            @pipeline
            def condition_arg(a: int = 1) -> None:
                publish(model=fit(data=load(path="x").output).outputs["model"], tag=a > 1)

    def test_when_outside_a_pipeline(self) -> None:
        with pytest.raises(PipelineDefinitionError, match=r"when\(\) was used outside a pipeline"):
            when(RUN_ID == "x")  # type: ignore[arg-type]

    def test_when_on_a_plain_value(self) -> None:
        with pytest.raises(PipelineDefinitionError, match=r"when\(\) takes a condition"):

            @pipeline
            def plain() -> None:
                with when(True):  # type: ignore[arg-type]
                    noop()

    def test_exit_handler_needs_a_task(self) -> None:
        with pytest.raises(PipelineDefinitionError, match="ExitHandler takes a step call"):

            @pipeline
            def no_task() -> None:
                with ExitHandler(noop):  # type: ignore[arg-type]
                    noop()

    def test_handles_of_another_pipeline(self) -> None:
        leaked: dict[str, object] = {}

        @pipeline
        def first() -> None:
            leaked["data"] = load(path="x")

        with pytest.raises(PipelineDefinitionError, match="belongs to pipeline 'first'"):

            @pipeline
            def second() -> None:
                fit(data=leaked["data"].output)  # type: ignore[attr-defined]

    def test_configuring_a_task_after_definition(self) -> None:
        leaked: dict[str, Task] = {}

        @pipeline
        def done() -> None:
            leaked["task"] = noop()

        with pytest.raises(PipelineDefinitionError, match="which is already defined"):
            leaked["task"].retries(2)

    def test_step_needs_annotations(self) -> None:
        with pytest.raises(
            PipelineDefinitionError,
            match=r"Parameter 'x' of step function .*"
            r"untyped' \(.*test_dsl\.py:\d+\) has no type annotation",
        ):

            @step
            def untyped(x) -> None:  # type: ignore[no-untyped-def]
                pass

    def test_step_rejects_unsupported_types(self) -> None:
        with pytest.raises(
            PipelineDefinitionError,
            match=r"Parameter 'x' .* bytes is not a "
            r"supported step type; use int, float",
        ):

            @step
            def raw(x: bytes) -> None:
                pass

    def test_step_rejects_var_args(self) -> None:
        with pytest.raises(PipelineDefinitionError, match="named parameters only"):

            @step
            def variadic(*xs: int) -> None:
                pass

    def test_step_rejects_a_list_of_artifacts_as_output(self) -> None:
        with pytest.raises(PipelineDefinitionError, match="is a list of artifacts"):

            @step
            def many() -> list[Model]:
                return []

    def test_shift_with_something_that_is_not_a_task(self) -> None:
        with pytest.raises(PipelineDefinitionError, match="Only step calls can be ordered"):

            @pipeline
            def shifted() -> None:
                noop() >> "later"  # type: ignore[operator]

    def test_collected_needs_an_output(self) -> None:
        with pytest.raises(PipelineDefinitionError, match=r"Collected\(\) takes a step output"):
            Collected(3)  # type: ignore[arg-type]

    def test_unresolvable_annotation(self) -> None:
        with pytest.raises(PipelineDefinitionError, match="Cannot resolve the type annotations"):

            @step
            def unknown(x: NotDefined) -> None:  # type: ignore[name-defined]  # noqa: F821
                pass
