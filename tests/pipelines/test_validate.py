"""Definition-time validation: every rule rejects a broken pipeline when it is decorated, naming
the step, the parameter and the line to fix (``# <- marker`` comments pin the lines)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shipyard.errors import PipelineDefinitionError
from shipyard.pipelines import (
    RUN_ID,
    Artifact,
    Collected,
    Dataset,
    ExitHandler,
    Model,
    Outputs,
    ParallelFor,
    pipeline,
    step,
    when,
)
from shipyard.pipelines import graph as g
from shipyard.pipelines.validate import CHECKS, validate

SOURCE = Path(__file__).read_text().splitlines()


def line(marker: str) -> int:
    """The number of the line tagged ``# <- marker`` in this file."""
    hits = [n for n, text in enumerate(SOURCE, 1) if text.rstrip().endswith(f"# <- {marker}")]
    assert len(hits) == 1, f"marker {marker!r} found {len(hits)} times"
    return hits[0]


def at(marker: str) -> str:
    """A regex for ``(path/test_validate.py:LINE)`` of a tagged line."""
    return rf"\(/\S*test_validate\.py:{line(marker)}\)"


def raises(pattern: str):  # type: ignore[no-untyped-def]
    return pytest.raises(PipelineDefinitionError, match=pattern)


@step
def load(path: str = "x") -> Dataset:
    return Dataset()


@step
def fit(data: Dataset, lr: float = 0.1) -> Outputs(model=Model, accuracy=float):
    return Model(), 0.9


@step
def label(data: Dataset) -> Outputs(name=str, items=list[int]):
    return "a", [1]


@step
def publish(model: Model, tag: str = "") -> None:
    pass


@step
def count(n: int) -> int:
    return n


@step
def maybe(data: Dataset | None = None, n: int | None = None) -> None:
    pass


@step
def gather(values: list) -> None:
    pass


@step
def gather_models(models: list[Model]) -> None:
    pass


@step
def noop() -> None:
    pass


@step
def bad_default(n: int = "many") -> None:  # type: ignore[assignment]  # <- bad-default
    pass


def test_checks_are_one_function_per_rule_in_a_fixed_order() -> None:
    names = [c.__name__ for c in CHECKS]
    assert all(n.startswith("check_") for n in names)
    assert len(set(names)) == len(names)
    assert names.index("check_references") < names.index("check_argument_types")
    assert names.index("check_exit_handlers") < names.index("check_acyclic")


class TestNames:
    def test_pipeline_name_too_long(self) -> None:
        with raises(rf"Pipeline name 'x{{130}}' {at('long-pipeline')} is not valid"):

            @pipeline(name="x" * 130)
            def long_name() -> None:  # <- long-pipeline
                noop()

    def test_step_name_too_long(self) -> None:
        long = step(name="s" * 70)(noop.func)
        with raises(rf"Step name 's{{70}}' {at('long-step')} is not valid.*at most 63"):

            @pipeline
            def p() -> None:
                long()  # <- long-step

    def test_duplicate_step_names_in_a_built_graph(self) -> None:
        graph = g.Graph(
            name="hand",
            steps=(
                g.StepNode("train", "noop", source_file="flow.py", line=3),
                g.StepNode("train", "noop", source_file="flow.py", line=7),
            ),
            components={"noop": noop.component},
        )
        with raises(r"Two steps are named 'train' \(flow\.py:3 and flow\.py:7\)"):
            validate(graph)

    def test_reserved_step_name(self) -> None:
        reserved = step(name="condition-1")(noop.func)
        with raises(rf"Step 'condition-1' {at('reserved-step')} uses a reserved name"):

            @pipeline
            def p() -> None:
                reserved()  # <- reserved-step

    @pytest.mark.parametrize(
        ("param", "reason"),
        [("run_id", "it is the RUN_ID placeholder"), ("_secret", "names starting with '_'")],
    )
    def test_reserved_parameter_names(self, param: str, reason: str) -> None:
        namespace: dict[str, object] = {}
        exec(f"def p({param}: str):\n    pass\n", namespace)
        with raises(rf"Pipeline parameter '{param}' of 'p' .* uses a reserved name: {reason}"):
            pipeline(namespace["p"])  # type: ignore[arg-type]


class TestReferences:
    def test_unknown_step_in_a_built_graph(self) -> None:
        graph = g.Graph(
            name="hand",
            steps=(
                g.StepNode("train", "noop", source_file="flow.py", line=3),
                g.StepNode(
                    "deploy",
                    "publish",
                    {"model": g.OutputRef("trian", "model")},
                    source_file="flow.py",
                    line=4,
                ),
            ),
            components={"noop": noop.component, "publish": publish.component},
        )
        with raises(
            r"Step 'deploy' \(flow\.py:4\), argument 'model', reads step 'trian', which is not a "
            r"step of the pipeline\. Did you mean 'train'\?"
        ):
            validate(graph)

    def test_unknown_after_in_a_built_graph(self) -> None:
        graph = g.Graph(
            name="hand",
            steps=(g.StepNode("a", "noop", after=("b",), source_file="f.py", line=1),),
            components={"noop": noop.component},
        )
        with raises(r"Step 'a' \(f\.py:1\) runs after 'b', which is not a step"):
            validate(graph)

    def test_unknown_keyword_argument_suggests_the_close_one(self) -> None:
        with raises(
            rf"Step 'fit' {at('unknown-arg')} got an unknown argument 'dta'\. Did you mean "
            r"'data'\?\nHint: test_validate:fit \(.*\) takes: data, lr\."
        ):

            @pipeline
            def p() -> None:
                fit(dta=load().output)  # <- unknown-arg

    def test_missing_required_input(self) -> None:
        with raises(
            rf"Step 'fit' {at('missing-input')} is missing required input 'data' \(Dataset\)\."
            r"\nHint: Pass data=\.\.\. when calling the step"
        ):

            @pipeline
            def p() -> None:
                fit(lr=0.5)  # <- missing-input


class TestTypes:
    def test_model_into_a_dataset_input(self) -> None:
        with raises(
            rf"Step 'fit-2' {at('model-into-dataset')}: input 'data' expects Dataset but gets "
            r"output 'model' of step 'fit' \(Model\)\."
        ):

            @pipeline
            def p() -> None:
                first = fit(data=load().output)
                fit(data=first.outputs["model"])  # <- model-into-dataset

    def test_str_output_into_an_int_parameter(self) -> None:
        with raises(
            rf"Step 'count' {at('str-into-int')}: input 'n' expects int but gets output 'name' "
            r"of step 'label' \(str\)\.\nHint: Pass a value of type int, or change the "
            r"annotation of 'n'"
        ):

            @pipeline
            def p() -> None:
                named = label(data=load().output)
                count(n=named.outputs["name"])  # <- str-into-int

    def test_literal_of_the_wrong_type(self) -> None:
        with raises(
            rf"Step 'count' {at('literal')}: input 'n' expects int but gets the literal 'ten'"
        ):

            @pipeline
            def p() -> None:
                count(n="ten")  # <- literal

    def test_literal_into_an_artifact_input(self) -> None:
        with raises(r"expects Dataset but gets the literal 's3://b/x' \(str\)\.\nHint: Artifacts"):

            @pipeline
            def p() -> None:
                fit(data="s3://b/x")

    def test_pipeline_parameter_of_the_wrong_type(self) -> None:
        with raises(rf"{at('param-type')}: input 'n' expects int but gets pipeline parameter "):

            @pipeline
            def p(threshold: float = 0.5) -> None:
                count(n=threshold)  # <- param-type

    def test_placeholder_into_an_int(self) -> None:
        with raises(r"input 'n' expects int but gets placeholder RUN_ID \(str\)"):

            @pipeline
            def p() -> None:
                count(n=RUN_ID)

    def test_none_only_where_the_default_is_none(self) -> None:
        @pipeline
        def ok() -> None:
            maybe(data=None, n=None)

        with raises(r"input 'n' \(int\) gets None, but only inputs that default to None"):

            @pipeline
            def p() -> None:
                count(n=None)

    def test_int_widens_to_float_and_artifact_matches_any_artifact(self) -> None:
        @step
        def anything(a: Artifact) -> Artifact:
            return a

        @pipeline
        def ok() -> None:
            fit(data=anything(a=load().output).output, lr=count(n=3).output)

        assert ok.graph.step("fit").arguments["lr"] == g.OutputRef("count", "output")

    def test_pipeline_parameter_must_not_be_an_artifact(self) -> None:
        with raises(rf"Pipeline parameter 'model' of 'p' {at('artifact-param')} is a Model"):

            @pipeline
            def p(model: Model) -> None:  # <- artifact-param
                publish(model=model)

    def test_pipeline_parameter_default_must_fit(self) -> None:
        with raises(
            r"Pipeline parameter 'threshold' of 'p' .* is declared float but its default "
            r"'high' is a str\."
        ):

            @pipeline
            def p(threshold: float = "high") -> None:  # type: ignore[assignment]
                noop()

    def test_step_input_default_must_fit(self) -> None:
        with raises(
            rf"Parameter 'n' of step function test_validate:bad_default {at('bad-default')} is "
            r"declared int but its default 'many' is a str\."
        ):

            @pipeline
            def p() -> None:
                bad_default()


class TestLoops:
    def test_items_must_be_a_list(self) -> None:
        with raises(
            rf"ParallelFor 'for-loop-1' {at('not-a-list')} iterates over the literal 5 \(int\), "
            r"which is not a list"
        ):

            @pipeline
            def p() -> None:
                with ParallelFor(5) as n:  # <- not-a-list
                    count(n=n)

    def test_parallelism_must_be_positive(self) -> None:
        with raises(r"ParallelFor 'for-loop-1' .* has parallelism=0\.\nHint: Use a whole number"):

            @pipeline
            def p() -> None:
                with ParallelFor([1, 2], parallelism=0) as n:
                    count(n=n)

    def test_loop_item_type_is_checked(self) -> None:
        with raises(r"input 'n' expects int but gets the item of ParallelFor 'for-loop-1' \(str\)"):

            @pipeline
            def p() -> None:
                with ParallelFor(["a", "b"]) as n:
                    count(n=n)

    def test_collected_artifacts_need_a_list_of_that_artifact(self) -> None:
        with raises(
            r"input 'values' expects list but gets Collected\(output 'model' of step 'fit'\) "
            r"\(list\[Model\]\)"
        ):

            @pipeline
            def p() -> None:
                with ParallelFor([0.1, 0.2]) as lr:
                    trained = fit(data=load().output, lr=lr)
                gather(values=Collected(trained.outputs["model"]))


class TestScopes:
    def test_output_of_a_conditional_step_used_outside(self) -> None:
        with raises(
            rf"Step 'publish' {at('cond-leak')}, argument 'model', reads output 'model' of step "
            rf"'fit', which runs only inside `when` block 'condition-1' {at('cond-block')}\."
            r"\nHint: Move 'publish' into the same `with when\(\.\.\.\):` block\."
        ):

            @pipeline
            def p(a: int = 1) -> None:
                with when(a > 1):  # <- cond-block
                    trained = fit(data=load().output)
                publish(model=trained.outputs["model"])  # <- cond-leak

    def test_output_of_a_loop_step_used_outside_without_collected(self) -> None:
        with raises(
            rf"Step 'count-2' {at('loop-leak')}, argument 'n', reads output 'output' of step "
            r"'count', which runs once per item of ParallelFor 'for-loop-1' .*\nHint: Wrap the "
            r"output in Collected"
        ):

            @pipeline
            def p() -> None:
                with ParallelFor([1, 2]) as n:
                    counted = count(n=n)
                count(n=counted.output)  # <- loop-leak

    def test_after_a_conditional_step_from_outside(self) -> None:
        with raises(
            rf"Step 'noop-2' {at('after-cond')} runs after step 'noop', which runs only inside "
            r"`when` block 'condition-1'"
        ):

            @pipeline
            def p(a: int = 1) -> None:
                with when(a > 1):
                    first = noop()
                noop().after(first)  # <- after-cond

    def test_after_a_loop_step_waits_for_every_iteration(self) -> None:
        @pipeline
        def ok() -> None:
            with ParallelFor([1, 2]) as n:
                counted = count(n=n)
            noop().after(counted)

        assert ok.graph.upstream("noop") == ("count",)

    def test_collected_of_a_step_outside_any_loop(self) -> None:
        with raises(
            rf"Step 'gather' {at('collected-no-loop')}, argument 'values', collects output "
            r"'output' of step 'count', which is not inside a ParallelFor"
        ):

            @pipeline
            def p() -> None:
                gather(values=Collected(count(n=1)))  # <- collected-no-loop

    def test_collected_inside_the_same_loop(self) -> None:
        with raises(r"collects output 'output' of step 'count' from inside the same ParallelFor"):

            @pipeline
            def p() -> None:
                with ParallelFor([1, 2]) as n:
                    gather(values=Collected(count(n=n)))

    def test_loop_item_used_after_the_loop(self) -> None:
        with raises(
            rf"Step 'count' {at('item-leak')}, argument 'n', reads the item of ParallelFor "
            r"'for-loop-1' outside that loop"
        ):

            @pipeline
            def p() -> None:
                with ParallelFor([1, 2]) as n:
                    noop()
                count(n=n)  # <- item-leak


class TestConditions:
    def test_condition_on_a_step_inside_another_when_block(self) -> None:
        with raises(
            rf"The condition of `when` block 'condition-2' {at('cond-2')} reads output "
            rf"'accuracy' of step 'fit' {at('cond-producer')}, which is not upstream of the "
            r"block: 'fit' runs only inside `when` block 'condition-1'"
        ):

            @pipeline
            def p(a: int = 1) -> None:
                with when(a > 1):
                    trained = fit(data=load().output)  # <- cond-producer
                with when(trained.outputs["accuracy"] > 0.5):  # <- cond-2
                    noop()

    def test_condition_on_a_loop_step_outside_the_loop(self) -> None:
        with raises(r"reads output 'output' of step 'count' .* which is not upstream of the block"):

            @pipeline
            def p() -> None:
                with ParallelFor([1, 2]) as n:
                    counted = count(n=n)
                with when(counted.output > 1):
                    noop()

    def test_condition_on_a_step_inside_its_own_block_in_a_built_graph(self) -> None:
        condition = g.Comparison(">", g.OutputRef("count", "output"), g.Constant(1))
        graph = g.Graph(
            name="hand",
            steps=(g.StepNode("count", "count", {"n": g.Constant(1)}, group="condition-1"),),
            components={"count": count.component},
            groups=(g.ConditionGroup("condition-1", condition, source_file="f.py", line=9),),
        )
        with raises(
            r"The condition of `when` block 'condition-1' \(f\.py:9\) reads output 'output' of "
            r"step 'count' \(<unknown>\), which is not upstream of the block: the step is inside "
            r"the block itself"
        ):
            validate(graph)

    def test_condition_on_an_artifact(self) -> None:
        with raises(
            rf"The condition of `when` block 'condition-1' {at('artifact-cond')} compares output "
            r"'model' of step 'fit' \(Model\); conditions compare parameter values"
        ):

            @pipeline
            def p() -> None:
                trained = fit(data=load().output)
                with when(trained.outputs["model"] == "best"):  # <- artifact-cond
                    noop()

    def test_ordering_a_string_against_a_number(self) -> None:
        with raises(
            r"compares output 'name' of step 'label' \(str\) > the literal 3 \(int\), which "
            r"cannot be ordered"
        ):

            @pipeline
            def p() -> None:
                named = label(data=load().output)
                with when(named.outputs["name"] > 3):
                    noop()


class TestExitHandlers:
    def test_nested_exit_handlers(self) -> None:
        with raises(
            rf"ExitHandler 'exit-handler-2' {at('inner-exit')} is nested inside ExitHandler "
            rf"'exit-handler-1' {at('outer-exit')}; exit handlers cannot be nested"
        ):

            @pipeline
            def p() -> None:
                with ExitHandler(noop()):  # noqa: SIM117  # <- outer-exit
                    with ExitHandler(noop()):  # <- inner-exit
                        count(n=1)

    def test_exit_handler_inside_a_condition(self) -> None:
        with raises(
            r"ExitHandler 'exit-handler-2' .* is inside `when` block 'condition-1' .*; an "
            r"ExitHandler must be at the top level"
        ):

            @pipeline
            def p(a: int = 1) -> None:
                with when(a > 0), ExitHandler(noop()):
                    count(n=1)

    def test_exit_step_depending_on_the_body(self) -> None:
        with raises(
            rf"Exit step 'noop' {at('exit-step')} of ExitHandler 'exit-handler-1' .* depends on "
            rf"step 'count' {at('body-step')}, which is inside the handler's body"
        ):

            @pipeline
            def p() -> None:
                cleanup = noop()  # <- exit-step
                with ExitHandler(cleanup):
                    work = count(n=1)  # <- body-step
                cleanup.after(work)

    def test_body_step_depending_on_the_exit_step(self) -> None:
        with raises(
            rf"Step 'count-2' {at('uses-exit')} inside ExitHandler 'exit-handler-1' .* depends "
            r"on the handler's exit step 'count', which runs last"
        ):

            @pipeline
            def p() -> None:
                cleanup = count(n=1)
                with ExitHandler(cleanup):
                    count(n=cleanup.output)  # <- uses-exit

    def test_one_exit_step_for_two_handlers(self) -> None:
        with raises(r"Step 'noop' .* is the exit step of both ExitHandler 'exit-handler-1'"):

            @pipeline
            def p() -> None:
                cleanup = noop()
                with ExitHandler(cleanup):
                    count(n=1)
                with ExitHandler(cleanup):
                    count(n=2)


class TestCycles:
    def test_two_steps_after_each_other(self) -> None:
        with raises(
            rf"Pipeline 'p' has a cycle: noop -> noop-2 -> noop \('noop' at \S*test_validate"
            rf"\.py:{line('cycle-a')}, 'noop-2' at \S*:{line('cycle-b')}\)\.\nHint: Remove one of "
            r"'noop-2'\.after\('noop'\), 'noop'\.after\('noop-2'\)"
        ):

            @pipeline
            def p() -> None:
                a = noop()  # <- cycle-a
                b = noop()  # <- cycle-b
                a.after(b)
                b.after(a)

    def test_a_step_after_itself(self) -> None:
        with raises(r"has a cycle: noop -> noop "):

            @pipeline
            def p() -> None:
                a = noop()
                a.after(a)

    def test_cycle_through_a_data_edge_names_only_the_after_call(self) -> None:
        with raises(
            r"has a cycle: load -> fit -> load .*\nHint: Remove one of 'load'\.after\('fit'\) so"
        ):

            @pipeline
            def p() -> None:
                data = load()
                trained = fit(data=data.output)
                data.after(trained)


class TestResources:
    @pytest.mark.parametrize(
        ("settings", "message"),
        [
            ({"cpu": -1}, r"cpu_request '-1' is not a valid amount\.\nHint: Use a positive number"),
            ({"cpu_limit": "2 cores"}, r"cpu_limit '2 cores' is not a valid amount"),
            ({"memory": "8GB"}, r"memory_request '8GB' is not a valid amount\.\nHint: .*'512Mi'"),
            ({"memory_limit": "0"}, r"memory_limit '0' is not a valid amount"),
            (
                {"memory_request": "16G", "memory_limit": "8G"},
                r"memory_request '16G' is more than memory_limit '8G'",
            ),
            ({"cpu_request": "4", "cpu_limit": "500m"}, r"cpu_request '4' is more than"),
            ({"gpu": -1}, r"gpu=-1 is not a number of accelerators"),
            ({"gpu": 1.5}, r"gpu=1\.5 is not a number of accelerators"),
            (
                {"gpu": 0, "accelerator": "nvidia-tesla-t4"},
                r"accelerator 'nvidia-tesla-t4' is "
                r"set but gpu=0",
            ),
            (
                {"node_selector": {"bad key!": "x"}},
                r"node selector 'bad key!': 'x' is not a "
                r"Kubernetes label",
            ),
        ],
    )
    def test_invalid_resources(self, settings: dict[str, object], message: str) -> None:
        with raises(rf"Step 'noop' {at('resources')}: {message}"):

            @pipeline
            def p() -> None:
                noop().resources(**settings)  # type: ignore[arg-type]  # <- resources

    def test_valid_quantities(self) -> None:
        @pipeline
        def ok() -> None:
            noop().resources(cpu="250m", memory="1.5Gi", gpu=0)
            noop().resources(cpu_request=1, cpu_limit=2.5, memory_request=10**9, memory_limit="1G")

        assert ok.graph.step("noop-2").resources.cpu_limit == "2.5"

    @pytest.mark.parametrize(
        ("text", "size"),
        [
            ("8G", 8 * 10**9),
            ("512Mi", 512 * 2**20),
            ("1.5Gi", 3 * 2**29),
            ("100", 100),
            ("4k", 4000),
            ("4K", 4000),
            ("2Ti", 2 * 2**40),
        ],
    )
    def test_parse_memory(self, text: str, size: int) -> None:
        assert g.parse_memory(text) == size

    @pytest.mark.parametrize("text", ["8GB", "-1G", "0", "1e3", "8 G", "", "G", "8g"])
    def test_parse_memory_rejects(self, text: str) -> None:
        with pytest.raises(ValueError):
            g.parse_memory(text)

    @pytest.mark.parametrize(("text", "cores"), [("500m", 0.5), ("2", 2.0), ("0.25", 0.25)])
    def test_parse_cpu(self, text: str, cores: float) -> None:
        assert g.parse_cpu(text) == cores


class TestRetriesAndTimeouts:
    @pytest.mark.parametrize(
        ("call", "message"),
        [
            (lambda t: t.retries(-1), r"retries\(-1\) is not a whole number >= 0"),
            (lambda t: t.retries(2, backoff=-5), r"backoff -5 is not a number of seconds"),
            (lambda t: t.retries(2, backoff=5, factor=0.5), r"backoff factor 0\.5 is less than 1"),
            (lambda t: t.retries(2, backoff=60, max_backoff=10), r"max_backoff 10 is less than"),
            (lambda t: t.timeout(0), r"timeout 0 is not a number of seconds > 0"),
            (lambda t: t.timeout(-3.5), r"timeout -3\.5 is not a number of seconds > 0"),
        ],
    )
    def test_invalid_settings(self, call, message: str) -> None:  # type: ignore[no-untyped-def]
        with raises(rf"Step 'noop' {at('settings')}: {message}"):

            @pipeline
            def p() -> None:
                call(noop())  # <- settings


def test_messages_say_what_to_do() -> None:
    """Every rule's error ends with a hint."""
    with pytest.raises(PipelineDefinitionError) as info:

        @pipeline
        def p() -> None:
            fit()

    assert re.search(r"\nHint: \S", str(info.value))
    assert info.value.hint
