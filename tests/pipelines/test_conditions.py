"""Conditions: the structured form compilers read, the Python rendering for Airflow, and an
evaluator that agrees with that rendering on random expressions."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.errors import PipelineDefinitionError
from shipyard.pipelines import ParallelFor, pipeline, step, when
from shipyard.pipelines.graph import (
    And,
    Comparison,
    Condition,
    Constant,
    LoopItemRef,
    Not,
    Or,
    OutputRef,
    ParamRef,
    PlaceholderRef,
)


@step
def score() -> float:
    return 0.5


@step
def noop() -> None:
    pass


ACC = OutputRef("train", "accuracy")
THRESHOLD = ParamRef("threshold")


class TestRendering:
    @pytest.mark.parametrize(
        ("condition", "python"),
        [
            (Comparison(">", ACC, THRESHOLD), "outputs['train']['accuracy'] > params['threshold']"),
            (
                Comparison("==", PlaceholderRef("run_id"), Constant("x")),
                "placeholders['run_id'] == 'x'",
            ),
            (Comparison("<", LoopItemRef("for-loop-1"), Constant(3)), "items['for-loop-1'] < 3"),
            (
                Comparison("!=", LoopItemRef("for-loop-1", "lr"), Constant(None)),
                "items['for-loop-1']['lr'] != None",
            ),
            (
                Comparison("<=", ACC, Constant(math.inf)),
                "outputs['train']['accuracy'] <= float('inf')",
            ),
            (
                Not(
                    Comparison(">=", ACC, Constant(0.5)) | Comparison("==", THRESHOLD, Constant(1))
                ),
                "not ((outputs['train']['accuracy'] >= 0.5) or (params['threshold'] == 1))",
            ),
        ],
    )
    def test_to_python(self, condition: Condition, python: str) -> None:
        assert condition.to_python() == python

    def test_custom_operand_rendering(self) -> None:
        condition = Comparison(">", ACC, THRESHOLD) & Comparison("==", THRESHOLD, Constant(True))

        def xcom(ref: Any) -> str:
            if isinstance(ref, OutputRef):
                return f"ti.xcom_pull(task_ids={ref.step!r}, key={ref.output!r})"
            if isinstance(ref, ParamRef):
                return f"params[{ref.name!r}]"
            return repr(ref.value)

        assert condition.to_python(xcom) == (
            "(ti.xcom_pull(task_ids='train', key='accuracy') > params['threshold']) and "
            "(params['threshold'] == True)"
        )

    def test_structured_form(self) -> None:
        condition = ~(Comparison(">", ACC, THRESHOLD) & Comparison("<", ACC, Constant(1.0)))
        assert condition.to_dict() == {
            "op": "not",
            "operand": {
                "op": "and",
                "left": {
                    "op": ">",
                    "left": {"output": {"step": "train", "name": "accuracy"}},
                    "right": {"parameter": "threshold"},
                },
                "right": {
                    "op": "<",
                    "left": {"output": {"step": "train", "name": "accuracy"}},
                    "right": {"constant": 1.0},
                },
            },
        }
        assert condition.refs() == (ACC, THRESHOLD, ACC, Constant(1.0))

    def test_conditions_have_no_truth_value(self) -> None:
        with pytest.raises(PipelineDefinitionError, match=r"no truth value .*test_conditions\.py"):
            bool(Comparison(">", ACC, THRESHOLD))

    def test_combining_with_a_non_condition(self) -> None:
        with pytest.raises(PipelineDefinitionError, match="Cannot combine a condition with 1"):
            Comparison(">", ACC, THRESHOLD) & 1  # type: ignore[operator]
        with pytest.raises(PipelineDefinitionError, match="Cannot combine a condition with True"):
            True | Comparison(">", ACC, THRESHOLD)  # type: ignore[operator]

    def test_evaluate_loop_items_and_placeholders(self) -> None:
        condition = Comparison(">", LoopItemRef("for-loop-1", "lr"), Constant(0.05)) & Comparison(
            "!=", PlaceholderRef("run_id"), Constant("")
        )
        assert condition.evaluate({}, {}, {"for-loop-1": {"lr": 0.1}}, {"run_id": "r1"})
        assert not condition.evaluate({}, {}, {"for-loop-1": {"lr": 0.01}}, {"run_id": "r1"})


def test_conditions_inside_a_loop_on_the_item() -> None:
    @pipeline
    def looped() -> None:
        with ParallelFor([1, 2, 3]) as x, when((x > 1) & (x != 3)):
            noop()

    condition = looped.graph.group("condition-2").condition
    assert condition == And(
        Comparison(">", LoopItemRef("for-loop-1"), Constant(1)),
        Comparison("!=", LoopItemRef("for-loop-1"), Constant(3)),
    )


def test_conditions_from_handles_render_with_step_names() -> None:
    @pipeline
    def gated(threshold: float = 0.5) -> None:
        first = score()
        second = score()
        with when((first.output >= threshold) | ~(second.output < first.output)):
            noop()

    assert gated.graph.groups[0].condition.to_python() == (
        "(outputs['score']['output'] >= params['threshold']) or "
        "(not (outputs['score-2']['output'] < outputs['score']['output']))"
    )
    assert gated.graph.upstream("noop") == ("score", "score-2")


# --- random conditions: evaluate() agrees with eval(to_python()) -----------------------------

OPERANDS = [OutputRef("a", "x"), OutputRef("b", "y"), ParamRef("p"), ParamRef("q")]


@st.composite
def conditions(draw: st.DrawFn, depth: int = 0) -> Condition:
    if depth >= 3 or draw(st.booleans()):
        left = draw(st.sampled_from(OPERANDS))
        right = draw(st.one_of(st.sampled_from(OPERANDS), st.integers(-3, 3).map(Constant)))
        op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
        return Comparison(op, left, right)
    kind = draw(st.sampled_from(["and", "or", "not"]))
    if kind == "not":
        return Not(draw(conditions(depth + 1)))
    left, right = draw(conditions(depth + 1)), draw(conditions(depth + 1))
    return And(left, right) if kind == "and" else Or(left, right)


@settings(max_examples=150, deadline=None)
@given(conditions(), st.lists(st.integers(-3, 3), min_size=4, max_size=4))
def test_evaluate_agrees_with_the_python_rendering(condition: Condition, values: list[int]) -> None:
    outputs = {"a": {"x": values[0]}, "b": {"y": values[1]}}
    params = {"p": values[2], "q": values[3]}
    rendered = eval(condition.to_python(), {"outputs": outputs, "params": params})
    assert bool(rendered) == condition.evaluate(outputs, params)
