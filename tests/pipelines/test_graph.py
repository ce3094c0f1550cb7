"""The graph: deterministic order and levels, up/downstream queries, fan-out/fan-in shapes, a
stable JSON form, and cycle detection checked against a brute-force search."""

from __future__ import annotations

import itertools
import json

import pytest
import seed_pipelines as seed
from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.errors import PipelineDefinitionError
from shipyard.pipelines import (
    Collected,
    Dataset,
    Model,
    Outputs,
    ParallelFor,
    pipeline,
    step,
    when,
)
from shipyard.pipelines import graph as g


@step
def load(path: str = "x") -> Dataset:
    return Dataset()


@step
def make_items(n: int = 3) -> list[int]:
    return list(range(n))


@step
def square(x: int) -> int:
    return x * x


@step
def total(values: list[int]) -> int:
    return sum(values)


@step
def train(data: Dataset, lr: float = 0.1) -> Outputs(model=Model, accuracy=float):
    return Model(), 0.9


@step
def pick(models: list[Model], scores: list[float]) -> Model:
    return models[0]


@step
def node() -> None:
    pass


class TestOrder:
    def test_diamond_levels_and_queries(self) -> None:
        @pipeline
        def diamond() -> None:
            data = load()
            left = train(data=data.output, lr=0.1)
            right = train(data=data.output, lr=0.2)
            total(values=[1, 2]).after(left, right)

        graph = diamond.graph
        assert graph.topological_order() == ("load", "train", "train-2", "total")
        assert graph.levels() == (("load",), ("train", "train-2"), ("total",))
        assert graph.upstream("total") == ("train", "train-2")
        assert graph.upstream("total", transitive=True) == ("load", "train", "train-2")
        assert graph.downstream("load") == ("train", "train-2")
        assert graph.downstream("load", transitive=True) == ("train", "train-2", "total")
        assert graph.upstream("load") == ()

    def test_ties_break_by_definition_order(self) -> None:
        @pipeline
        def independent() -> None:
            late = node()
            node()
            node().after(late)
            node()

        assert independent.graph.topological_order() == ("node", "node-2", "node-3", "node-4")
        assert independent.graph.levels() == (("node", "node-2", "node-4"), ("node-3",))

    def test_built_graph_with_a_cycle_cannot_be_ordered(self) -> None:
        graph = g.Graph(
            name="hand",
            steps=(g.StepNode("a", "node", after=("b",)), g.StepNode("b", "node", after=("a",))),
            components={"node": node.component},
        )
        assert graph.find_cycle() == ("a", "b", "a")
        with pytest.raises(PipelineDefinitionError, match="Pipeline 'hand' has a cycle: a -> b"):
            graph.topological_order()


class TestFanOutFanIn:
    def test_parallel_for_over_a_literal_list_then_collected(self) -> None:
        @pipeline
        def fan() -> None:
            with ParallelFor([1, 2, 3], parallelism=2) as x:
                squared = square(x=x)
            total(values=Collected(squared))

        graph = fan.graph
        (loop,) = graph.groups
        assert loop == g.ParallelForGroup(
            "for-loop-1", g.Constant([1, 2, 3]), None, 2, loop.source_file, loop.line
        )
        assert graph.step("square").group == "for-loop-1"
        assert graph.step("square").arguments == {"x": g.LoopItemRef("for-loop-1")}
        assert graph.step("total").arguments == {"values": g.CollectedRef("square", "output")}
        assert graph.type_of(g.CollectedRef("square", "output")) == "list[int]"
        assert graph.loop_item_type("for-loop-1") == "int"
        assert graph.levels() == (("square",), ("total",))
        assert fan.to_dict()["groups"] == [
            {
                "id": "for-loop-1",
                "kind": "parallel_for",
                "parent": None,
                "items": {"constant": [1, 2, 3]},
                "parallelism": 2,
            }
        ]

    def test_parallel_for_over_an_upstream_list_output(self) -> None:
        @pipeline
        def dynamic() -> None:
            items = make_items(n=5)
            with ParallelFor(items.output) as x:
                squared = square(x=x)
            total(values=Collected(squared.output))

        graph = dynamic.graph
        assert graph.groups[0].items == g.OutputRef("make-items", "output")
        assert ("make-items", "square", "items") in {
            (e.source, e.target, e.kind) for e in graph.edges
        }
        assert graph.topological_order() == ("make-items", "square", "total")

    def test_map_fans_out_over_one_argument(self) -> None:
        @pipeline
        def sweep(learning_rates: list = [0.1, 0.01]) -> None:  # noqa: B006
            data = load()
            trained = train.map(data=data.output, lr=learning_rates)
            pick(
                models=Collected(trained.outputs["model"]),
                scores=Collected(trained.outputs["accuracy"]),
            )

        graph = sweep.graph
        assert graph.groups[0].items == g.ParamRef("learning_rates")
        assert graph.step("train").arguments == {
            "data": g.OutputRef("load", "output"),
            "lr": g.LoopItemRef("for-loop-1"),
        }
        assert graph.levels() == (("load",), ("train",), ("pick",))

    def test_map_over_a_literal_and_over_an_upstream_output(self) -> None:
        @pipeline
        def mapped() -> None:
            square.map(x=[1, 2])
            square.map(x=make_items())

        graph = mapped.graph
        assert [grp.items for grp in graph.groups] == [
            g.Constant([1, 2]),
            g.OutputRef("make-items", "output"),
        ]
        assert graph.step("square-2").group == "for-loop-2"

    @pytest.mark.parametrize(
        ("kwargs", "found"),
        [({"x": 1}, "got none"), ({"values": [1], "x": 1}, "got none")],
    )
    def test_map_needs_exactly_one_mapped_argument(self, kwargs: dict, found: str) -> None:
        with pytest.raises(PipelineDefinitionError, match=rf"iterates over exactly one .*{found}"):

            @pipeline
            def p() -> None:
                square.map(**kwargs)

    def test_map_over_two_arguments_is_rejected(self) -> None:
        @step
        def pair(a: int, b: int) -> None:
            pass

        with pytest.raises(PipelineDefinitionError, match=r"got 2 \(a, b\).*\nHint: .*nest"):

            @pipeline
            def p() -> None:
                pair.map(a=[1, 2], b=[3, 4])

    def test_nested_loops_with_dict_items(self) -> None:
        @pipeline
        def grid() -> None:
            configs = [{"lr": 0.1, "path": "a"}, {"lr": 0.01, "path": "b"}]
            with ParallelFor(configs) as cfg:
                data = load(path=cfg["path"])
                with ParallelFor([1, 2]) as seed_value, when(seed_value > 1):
                    trained = train(data=data.output, lr=cfg["lr"])
                pick(
                    models=Collected(trained.outputs["model"]),
                    scores=Collected(trained.outputs["accuracy"]),
                )

        graph = grid.graph
        assert [grp.id for grp in graph.groups_of("train")] == [
            "for-loop-1",
            "for-loop-2",
            "condition-3",
        ]
        assert graph.step("pick").group == "for-loop-1"
        assert graph.loop_item_type("for-loop-1", "lr") == "float"
        assert graph.loop_item_type("for-loop-1", "path") == "str"
        assert graph.step("train").arguments["lr"] == g.LoopItemRef("for-loop-1", "lr")

    def test_loop_item_key_must_exist_in_every_item(self) -> None:
        with pytest.raises(PipelineDefinitionError, match=r"Item 1 of ParallelFor 'for-loop-1' "):

            @pipeline
            def p() -> None:
                with ParallelFor([{"lr": 0.1}, {"rate": 0.2}]) as cfg:
                    train(data=load().output, lr=cfg["lr"])

    def test_collecting_two_loop_levels_at_once_is_rejected(self) -> None:
        with pytest.raises(PipelineDefinitionError, match="Collected\\(\\) gathers one loop level"):

            @pipeline
            def p() -> None:
                with ParallelFor([1, 2]) as a, ParallelFor([3, 4]):
                    squared = square(x=a)
                total(values=Collected(squared))


class TestToDict:
    def test_json_round_trip_and_stable_across_definitions(self) -> None:
        def define():  # type: ignore[no-untyped-def]
            @pipeline(name="stable")
            def p(threshold: float = 0.5) -> None:
                with ParallelFor([1, 2]) as x:
                    squared = square(x=x).retries(2, backoff=1).timeout(30)
                result = total(values=Collected(squared)).resources(cpu="500m", memory="1Gi")
                with when(result.output > threshold):
                    node().cache(False)

            return p

        first, second = define(), define()
        data = first.to_dict()
        assert json.loads(json.dumps(data, sort_keys=True)) == data
        assert json.dumps(data, sort_keys=True) == json.dumps(second.to_dict(), sort_keys=True)
        assert '"source":' not in json.dumps(data)
        assert first.to_dict(locations=True)["steps"][0]["source"]["line"] > 0

    def test_shape(self) -> None:
        data = seed.ml_training_pipeline.to_dict()
        assert sorted(data) == [
            "components",
            "description",
            "edges",
            "groups",
            "name",
            "parameters",
            "steps",
        ]
        assert data["steps"][1] == {
            "name": "process-features",
            "component": "process-features",
            "arguments": {},
            "after": ["validate-data"],
            "group": None,
            "cache": True,
            "retry": {
                "max_retries": 3,
                "backoff_seconds": 300.0,
                "backoff_factor": 1.0,
                "max_backoff_seconds": 3600.0,
            },
            "timeout_seconds": None,
            "resources": {
                "cpu_request": None,
                "cpu_limit": None,
                "memory_request": None,
                "memory_limit": None,
                "gpu": None,
                "accelerator": None,
                "node_selector": {},
            },
        }
        component = data["components"]["process-features"]
        assert component["function"] == "seed_pipelines:process_features"
        assert len(component["fingerprint"]) == 64
        assert data["edges"] == [
            {"from": "validate-data", "to": "process-features", "kind": "after"},
            {"from": "process-features", "to": "train", "kind": "after"},
        ]

    def test_argument_order_does_not_change_the_form(self) -> None:
        @pipeline(name="same")
        def a() -> None:
            train(data=load().output, lr=0.5)

        @pipeline(name="same")
        def b() -> None:
            train(lr=0.5, data=load().output)

        assert a.to_dict() == b.to_dict()


# --- random DAGs against a brute-force cycle search -------------------------------------------


def _name(i: int) -> str:
    return "node" if i == 0 else f"node-{i + 1}"


def _has_cycle(n: int, edges: set[tuple[int, int]]) -> bool:
    """Brute force: some node reaches itself."""
    succ = {i: {d for s, d in edges if s == i} for i in range(n)}
    for start in range(n):
        seen: set[int] = set()
        todo = list(succ[start])
        while todo:
            cur = todo.pop()
            if cur == start:
                return True
            if cur not in seen:
                seen.add(cur)
                todo.extend(succ[cur])
    return False


@st.composite
def dags(draw: st.DrawFn) -> tuple[int, set[tuple[int, int]]]:
    n = draw(st.integers(1, 9))
    pairs = st.tuples(st.integers(0, n - 1), st.integers(0, n - 1))
    forward = draw(st.sets(pairs.filter(lambda p: p[0] < p[1]), max_size=15))
    backward = draw(st.sets(pairs.filter(lambda p: p[0] >= p[1]), max_size=2))
    return n, forward | backward


@settings(max_examples=150, deadline=None)
@given(dags())
def test_cycle_found_iff_one_exists_and_order_respects_every_edge(
    dag: tuple[int, set[tuple[int, int]]],
) -> None:
    n, edges = dag

    def build() -> None:
        tasks = [node() for _ in range(n)]
        for source, target in sorted(edges):
            tasks[target].after(tasks[source])

    if _has_cycle(n, edges):
        with pytest.raises(PipelineDefinitionError, match="has a cycle: ") as info:
            pipeline(name="random")(build)
        path = info.value.message.split("has a cycle: ")[1].split(" (")[0].split(" -> ")
        assert path[0] == path[-1]
        named = {(_name(s), _name(t)) for s, t in edges}
        assert all(pair in named for pair in itertools.pairwise(path))
        return
    graph = pipeline(name="random")(build).graph
    order = graph.topological_order()
    position = {name: i for i, name in enumerate(order)}
    assert sorted(order) == sorted(_name(i) for i in range(n))
    depth = {name: i for i, level in enumerate(graph.levels()) for name in level}
    for source, target in edges:
        assert position[_name(source)] < position[_name(target)]
        assert depth[_name(source)] < depth[_name(target)]
        assert _name(source) in graph.upstream(_name(target))
