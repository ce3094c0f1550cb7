"""Gate expressions: the parser, its errors, and evaluation against a brute-force reference."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.errors import InvalidArgumentError
from shipyard.registry.gates import (
    And,
    Comparison,
    GateExpr,
    Not,
    Or,
    evaluate_gate,
    parse_gate,
    render_gate,
)


def cmp(metric: str, op: str, text: str) -> Comparison:
    return Comparison(metric, op, float(text), text)  # type: ignore[arg-type]


class TestParse:
    def test_comparisons_and_precedence(self) -> None:
        a, b, c = cmp("a", ">", "1"), cmp("b", "<", "2"), cmp("c", "==", "3")
        assert parse_gate("a > 1 or b < 2 and c == 3") == Or(a, And(b, c))
        assert parse_gate("(a > 1 or b < 2) and c == 3") == And(Or(a, b), c)
        assert parse_gate("not a > 1 and b < 2") == And(Not(a), b)
        assert parse_gate("a > 1 and b < 2 and c == 3") == And(And(a, b), c)
        assert parse_gate("not not a > 1") == Not(Not(a))

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("accuracy>=0.85", cmp("accuracy", ">=", "0.85")),
            ("loss <= -1e-3", cmp("loss", "<=", "-1e-3")),
            ("val.f1-macro != +2.5E2", cmp("val.f1-macro", "!=", "+2.5E2")),
            ("_x = .5", cmp("_x", "==", ".5")),
            ("n == 3.", cmp("n", "==", "3.")),
            ("a<-1", cmp("a", "<", "-1")),
            ("A > 1 AND b < 2", And(cmp("A", ">", "1"), cmp("b", "<", "2"))),
        ],
    )
    def test_tokens(self, text: str, expected: GateExpr) -> None:
        assert parse_gate(text) == expected

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("", "position 0: the expression is empty"),
            ("   ", "position 0: the expression is empty"),
            ("accuracy >= high", "position 12: expected a number, found 'high'"),
            (
                "accuracy 0.85",
                "position 9: expected a comparison .* after 'accuracy', found '0.85'",
            ),
            ("0.85 <= accuracy", "position 0: expected a metric name, found '0.85'"),
            ("a > 1 and", "position 9: expected a metric name, found end of expression"),
            ("(a > 1", "position 6: expected '\\)' to close the '\\(' at position 0"),
            ("a > 1)", "position 5: expected 'and' or 'or', found '\\)'"),
            ("a > 1 b < 2", "position 6: expected 'and' or 'or', found 'b'"),
            ("a $ 1", "position 2: unexpected character '\\$'"),
            ("a => 1", "position 3: expected a number, found '>'"),
            ("and > 1", "position 0: expected a metric name, found 'and'"),
        ],
    )
    def test_errors_say_where(self, text: str, message: str) -> None:
        with pytest.raises(InvalidArgumentError, match=f"Invalid gate expression at {message}"):
            parse_gate(text)

    def test_error_points_at_the_position_and_hints_the_syntax(self) -> None:
        with pytest.raises(InvalidArgumentError) as info:
            parse_gate("acc > 0.9 and lat < x")
        assert "\n  acc > 0.9 and lat < x\n                      ^" in str(info.value)
        assert "Hint: Write terms as `metric >= number`" in str(info.value)

    def test_limits(self) -> None:
        with pytest.raises(InvalidArgumentError, match="nested deeper than 64"):
            parse_gate("(" * 100 + "a > 1" + ")" * 100)
        with pytest.raises(InvalidArgumentError, match="nested deeper than 64"):
            parse_gate("not " * 100 + "a > 1")
        with pytest.raises(InvalidArgumentError, match="the limit is 4096"):
            parse_gate("a > 1 and " * 500 + "a > 1")

    def test_render_is_canonical_and_reparses(self) -> None:
        tree = parse_gate("(a=1 or b>2) and not (c<3 or d>=4) and (e != 5 and f < 6)")
        assert render_gate(tree) == (
            "(a == 1 or b > 2) and not (c < 3 or d >= 4) and (e != 5 and f < 6)"
        )
        assert parse_gate(render_gate(tree)) == tree


class TestEvaluate:
    def test_passing_gate(self) -> None:
        result = evaluate_gate(
            "accuracy >= 0.85 and latency_p99_ms < 20", {"accuracy": 0.9, "latency_p99_ms": 12}
        )
        assert result.passed and result.failing == []

    def test_failing_terms_show_the_value_or_that_it_is_missing(self) -> None:
        result = evaluate_gate("accuracy >= 0.85 and latency_p99_ms < 20", {"accuracy": 0.81})
        assert not result.passed
        assert result.failing == [
            "accuracy >= 0.85 (was 0.81)",
            "latency_p99_ms < 20 (metric missing)",
        ]

    def test_failing_or_reports_both_sides(self) -> None:
        result = evaluate_gate("a > 1 or b > 1e-3", {"a": 0, "b": 0.0001})
        assert result.failing == ["a > 1 (was 0)", "b > 1e-3 (was 0.0001)"]

    def test_and_reports_only_failing_sides(self) -> None:
        result = evaluate_gate("a > 1 and (b > 1 or c > 1)", {"a": 0, "b": 2})
        assert result.failing == ["a > 1 (was 0)"]

    def test_missing_metric_never_passes_through_not(self) -> None:
        result = evaluate_gate("not drift > 0.1", {})
        assert not result.passed
        assert result.failing == ["drift > 0.1 (metric missing)"]

    def test_nan_counts_as_missing(self) -> None:
        result = evaluate_gate("loss != 0", {"loss": math.nan})
        assert result.failing == ["loss != 0 (metric missing)"]

    def test_failing_not_names_the_values(self) -> None:
        result = evaluate_gate("not (a < 0.5 or b > 2)", {"a": 0.25, "b": 1})
        assert result.failing == ["not (a < 0.5 or b > 2) (was a=0.25, b=1)"]

    def test_missing_side_of_a_true_or_does_not_matter(self) -> None:
        assert evaluate_gate("a > 1 or b > 1", {"a": 2}).passed

    def test_accepts_a_parsed_tree(self) -> None:
        assert evaluate_gate(parse_gate("x == 1"), {"x": 1.0}).passed


# --- property test against a brute-force reference -------------------------------------------

METRICS = ["acc", "loss", "val.f1", "p99-ms", "_x"]
OPS = ["<", "<=", ">", ">=", "==", "!=", "="]
NUMBERS = ["0", "1", "-1", "0.5", "-0.25", "2.5e-3", "1E3", ".5", "3.", "+2"]
VALUES = [0.0, 1.0, -1.0, 0.5, -0.25, 0.0025, 1000.0, 3.0, 2.0, 7.5, math.nan]

comparisons = st.tuples(
    st.just("cmp"), st.sampled_from(METRICS), st.sampled_from(OPS), st.sampled_from(NUMBERS)
)
trees = st.recursive(
    comparisons,
    lambda sub: st.one_of(
        st.tuples(st.sampled_from(["and", "or"]), sub, sub),
        st.tuples(st.just("not"), sub),
    ),
    max_leaves=8,
)
metric_maps = st.dictionaries(st.sampled_from(METRICS), st.sampled_from(VALUES))


def render(tree: Any, draw: Any) -> str:
    """Text for a reference tree: random spacing and keyword case, parentheses where needed."""
    space = draw(st.sampled_from([" ", "  ", "\t"]))
    kind = tree[0]
    if kind == "cmp":
        _, metric, op, number = tree
        return f"{metric}{draw(st.sampled_from(['', ' ']))}{op}{space}{number}"
    if kind == "not":
        word = draw(st.sampled_from(["not", "NOT", "Not"]))
        inner = render(tree[1], draw)
        if tree[1][0] != "cmp" or draw(st.booleans()):
            inner = f"({inner})"
        return f"{word}{space}{inner}"
    left, right = (render(t, draw) for t in tree[1:])
    # Binary children always get parentheses, so the text's tree is exactly the reference's.
    left = f"({left})" if tree[1][0] in ("and", "or") else left
    right = f"({right})" if tree[2][0] in ("and", "or") else right
    return f"{left}{space}{draw(st.sampled_from([kind, kind.upper()]))}{space}{right}"


def to_gate(tree: Any) -> GateExpr:
    kind = tree[0]
    if kind == "cmp":
        return cmp(tree[1], "==" if tree[2] == "=" else tree[2], tree[3])
    if kind == "not":
        return Not(to_gate(tree[1]))
    node = And if kind == "and" else Or
    return node(to_gate(tree[1]), to_gate(tree[2]))


def reference(tree: Any, metrics: dict[str, float]) -> tuple[bool | None, list[Any]]:
    """Kleene three-valued logic by the book; failing terms as the docs describe them."""
    kind = tree[0]
    if kind == "cmp":
        _, metric, op, number = tree
        op = "==" if op == "=" else op
        value = metrics.get(metric)
        term = f"{metric} {op} {number}"
        if value is None or math.isnan(value):
            return None, [f"{term} (metric missing)"]
        threshold = float(number)
        truth = {
            "<": value < threshold,
            "<=": value <= threshold,
            ">": value > threshold,
            ">=": value >= threshold,
            "==": value == threshold,
            "!=": value != threshold,
        }[op]
        shown = str(int(value)) if value.is_integer() else repr(value)
        return (True, []) if truth else (False, [f"{term} (was {shown})"])
    if kind == "not":
        inner, failing = reference(tree[1], metrics)
        if inner is None:
            return None, failing
        return (True, []) if inner is False else (False, [("not", tree[1])])
    (lv, lf), (rv, rf) = reference(tree[1], metrics), reference(tree[2], metrics)
    if kind == "and":
        value = False if False in (lv, rv) else (True if lv is True and rv is True else None)
    else:
        value = True if True in (lv, rv) else (False if lv is False and rv is False else None)
    if value is True:
        return True, []
    return value, (lf if lv is not True else []) + (rf if rv is not True else [])


@settings(max_examples=400, deadline=None)
@given(tree=trees, metrics=metric_maps, data=st.data())
def test_evaluation_matches_brute_force_reference(
    tree: Any, metrics: dict[str, float], data: st.DataObject
) -> None:
    text = render(tree, data.draw)
    parsed = parse_gate(text)
    assert parsed == to_gate(tree), text
    assert parse_gate(render_gate(parsed)) == parsed

    result = evaluate_gate(text, metrics)
    expected_value, expected_failing = reference(tree, metrics)
    assert result.passed is (expected_value is True), text
    assert len(result.failing) == len(expected_failing)
    for got, want in zip(result.failing, expected_failing, strict=True):
        if isinstance(want, str):
            assert got == want
        else:  # a `not` whose operand held: the message shows the whole negated term
            assert got.startswith("not ")
            assert parse_gate(got.rsplit(" (was ", 1)[0]) == to_gate(want)
