"""The run search grammar: parsing, rendering, errors, and SQL search against a brute-force
Python reference over random runs and random filters."""

from __future__ import annotations

import functools
import math
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest
import sqlalchemy as sa
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from shipyard.errors import FilterSyntaxError, InvalidArgumentError
from shipyard.store.db import engine_for
from shipyard.store.workspaces import ensure_workspace
from shipyard.tracking.entities import Metric, Param, RunStatus
from shipyard.tracking.search import (
    ATTRIBUTES,
    And,
    Comparison,
    Field,
    Node,
    Not,
    Or,
    OrderKey,
    Value,
    parse_filter,
    parse_order_by,
    render_filter,
)
from shipyard.tracking.sql import SqlTrackingStore

# --- the reference: what a filter means, in plain Python --------------------------------------


@dataclass
class RunSpec:
    name: str
    status: RunStatus
    start_time: int
    end_time: int | None
    user: str
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    run_id: str = ""


def like_regex(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            parts.append(re.escape(next(chars)))
        elif char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def lookup(run: RunSpec, target: Field) -> float | str | None:
    if target.kind == "metric":
        return run.metrics.get(target.key)
    if target.kind == "param":
        return run.params.get(target.key)
    if target.kind == "tag":
        return run.tags.get(target.key)
    return {
        "run_id": run.run_id,
        "run_name": run.name,
        "status": run.status.value,
        "user": run.user,
        "parent_run_id": "",
        "start_time": run.start_time,
        "end_time": run.end_time,
    }[target.key]


def holds(value: float | str, op: str, expected: Value | tuple[Value, ...]) -> bool:
    """IEEE semantics: NaN fails every comparison except != and NOT IN."""
    if op == "IN":
        return any(value == item for item in expected)  # type: ignore[union-attr]
    if op == "NOT IN":
        return not any(value == item for item in expected)  # type: ignore[union-attr]
    if op in ("LIKE", "ILIKE"):
        return bool(like_regex(str(expected), op == "ILIKE").fullmatch(str(value)))
    return {
        "=": value == expected,
        "!=": value != expected,
        ">": value > expected,  # type: ignore[operator]
        ">=": value >= expected,  # type: ignore[operator]
        "<": value < expected,  # type: ignore[operator]
        "<=": value <= expected,  # type: ignore[operator]
    }[op]


def matches(node: Node, run: RunSpec) -> bool:
    if isinstance(node, Comparison):
        value = lookup(run, node.field)
        return value is not None and holds(value, node.op, node.value)
    if isinstance(node, Not):
        return not matches(node.term, run)
    if isinstance(node, And):
        return all(matches(term, run) for term in node.terms)
    return any(matches(term, run) for term in node.terms)


def sort_key_rank(run: RunSpec, target: Field) -> tuple[int, float | str | None]:
    value = lookup(run, target)
    if value is None:
        return (2, None)
    if isinstance(value, float) and math.isnan(value):
        return (1, None)
    return (0, value)


def reference_order(runs: list[RunSpec], keys: list[OrderKey]) -> list[RunSpec]:
    start = Field("attribute", "start_time")
    if all(key.field != start for key in keys):
        keys = [*keys, OrderKey(start, ascending=False)]

    def compare(a: RunSpec, b: RunSpec) -> int:
        for key in keys:
            (rank_a, value_a), (rank_b, value_b) = (
                sort_key_rank(a, key.field),
                sort_key_rank(b, key.field),
            )
            if rank_a != rank_b:
                return rank_a - rank_b
            if rank_a == 0 and value_a != value_b:
                smaller = value_a < value_b  # type: ignore[operator]
                return (-1 if smaller else 1) * (1 if key.ascending else -1)
        return -1 if a.run_id < b.run_id else int(a.run_id > b.run_id)

    return sorted(runs, key=functools.cmp_to_key(compare))


# --- strategies -------------------------------------------------------------------------------

V = TypeVar("V")

METRIC_KEYS = ["a", "b", "c d", "never"]
PARAM_KEYS = ["p", "q.r"]
TAG_KEYS = ["t", "never"]
NUMBERS = [-1.5, 0.0, 0.5, 1.0, 2.0, math.inf, -math.inf]
STORED_NUMBERS = [*NUMBERS, math.nan]
# Small pools, so that values often equal each other or match a pattern, and characters
# that matter to quoting, LIKE and GLOB; ASCII, so case folding agrees on every backend.
STRINGS = ["a", "A", "ab", "aB", "Ab", "a b", "a%b", "a_b", "a*b", "a?", "[a]", "it's",
           'say "x"', "back\\slash", "", " "]  # fmt: skip
PATTERN_PARTS = ["a", "A", "b", "B", " ", "%", "_", "*", "?", "[", "'", "\\%", "\\_", "\\\\"]
STATUSES = list(RunStatus)


def like_escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


texts = st.sampled_from(STRINGS)
patterns = st.one_of(
    texts.map(like_escaped),
    texts.map(lambda v: like_escaped(v.swapcase())),
    texts.map(lambda v: like_escaped(v[:1]) + "%"),
    st.lists(st.sampled_from(PATTERN_PARTS), max_size=3).map("".join),
)


def present(values: tuple[V | None, ...], keys: list[str]) -> dict[str, V]:
    """The keys whose drawn value is not None (a run need not log every key)."""
    return {key: value for key, value in zip(keys, values, strict=False) if value is not None}


@st.composite
def run_specs(draw: st.DrawFn) -> RunSpec:
    status = draw(st.sampled_from(STATUSES))
    start = draw(st.integers(0, 4))
    return RunSpec(
        name=draw(st.sampled_from([v for v in STRINGS if v.strip()])),
        status=status,
        start_time=start,
        end_time=None if status is RunStatus.RUNNING else start + draw(st.integers(0, 3)),
        user=draw(st.sampled_from(["", "ada", "bob"])),
        metrics=present(draw(st.tuples(*[st.sampled_from([*STORED_NUMBERS, None])] * 3)),
                        METRIC_KEYS),
        params=present(draw(st.tuples(*[st.sampled_from([*STRINGS, None])] * 2)), PARAM_KEYS),
        tags=present(draw(st.tuples(st.sampled_from([*STRINGS, None]))), TAG_KEYS),
    )  # fmt: skip


NUMERIC_FIELDS = [Field("metric", k) for k in METRIC_KEYS] + [
    Field("attribute", "start_time"),
    Field("attribute", "end_time"),
]
STRING_FIELDS = (
    [Field("param", k) for k in PARAM_KEYS]
    + [Field("tag", k) for k in TAG_KEYS]
    + [Field("attribute", k) for k in ("run_name", "status", "user", "parent_run_id")]
)


@st.composite
def comparisons(draw: st.DrawFn) -> Comparison:
    if draw(st.booleans()):
        target = draw(st.sampled_from(NUMERIC_FIELDS))
        op = draw(st.sampled_from(["=", "!=", ">", ">=", "<", "<=", "IN", "NOT IN"]))
        numbers = st.sampled_from([*NUMBERS, 3.0, 4.0])
        if op in ("IN", "NOT IN"):
            return Comparison(target, op, tuple(draw(st.lists(numbers, min_size=1, max_size=3))))
        return Comparison(target, op, draw(numbers))
    target = draw(st.sampled_from(STRING_FIELDS))
    op = draw(st.sampled_from(["=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"]))
    if target.key == "status" and op in ("=", "!="):
        return Comparison(target, op, draw(st.sampled_from([s.value for s in STATUSES])))
    if op in ("IN", "NOT IN"):
        return Comparison(target, op, tuple(draw(st.lists(texts, min_size=1, max_size=3))))
    return Comparison(target, op, draw(patterns if "LIKE" in op else texts))


filters: st.SearchStrategy[Node] = st.recursive(
    comparisons(),
    lambda children: st.one_of(
        st.lists(children, min_size=2, max_size=3).map(lambda t: And(tuple(t))),
        st.lists(children, min_size=2, max_size=3).map(lambda t: Or(tuple(t))),
        children.map(Not),
    ),
    max_leaves=6,
)
order_keys = st.lists(
    st.builds(
        OrderKey,
        st.sampled_from(
            [*NUMERIC_FIELDS, *STRING_FIELDS[:4], Field("attribute", "run_name")],
        ),
        st.booleans(),
    ),
    max_size=2,
)


# --- SQL search equals the reference ----------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def search_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SqlTrackingStore]:
    """One store per backend for the whole module; each example uses a new experiment."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('search') / 'meta.db'}"
    else:
        url = request.getfixturevalue("postgres_database")
    engine = engine_for(url)
    name = f"ws-{uuid.uuid4().hex[:10]}"
    ensure_workspace(engine, name)
    yield SqlTrackingStore(engine, name, artifact_root=Path("/tmp/unused").as_uri())


def store_runs(store: SqlTrackingStore, specs: list[RunSpec]) -> str:
    experiment = store.create_experiment(uuid.uuid4().hex).experiment_id
    for spec in specs:
        created = store.create_run(
            experiment, run_name=spec.name, start_time=spec.start_time, user=spec.user,
            tags=spec.tags,
        )  # fmt: skip
        spec.run_id = created.run_id
        store.log_batch(
            spec.run_id,
            metrics=[Metric(k, v, 0, 1) for k, v in spec.metrics.items()],
            params=[Param(k, v) for k, v in spec.params.items()],
        )
        if spec.status is not RunStatus.RUNNING:
            store.update_run(spec.run_id, status=spec.status, end_time=spec.end_time)
    return experiment


def test_sql_search_equals_a_brute_force_evaluation(search_store: SqlTrackingStore) -> None:
    """Random runs, then several random filters, orderings and page sizes over them: SQL
    search returns exactly the runs :func:`matches` accepts, in :func:`reference_order`."""
    # PostgreSQL commits are slower; fewer examples keep the test at a few seconds.
    examples = 60 if search_store._dialect == "sqlite" else 20

    # No shrink phase: each step writes runs to the database, which makes shrinking take
    # minutes; the assertion names the failing filter and runs instead.
    @settings(
        max_examples=examples,
        deadline=None,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
    )
    @given(
        specs=st.lists(run_specs(), min_size=1, max_size=8),
        queries=st.lists(st.tuples(filters, order_keys), min_size=4, max_size=8),
        page_size=st.integers(1, 3),
    )
    def check(
        specs: list[RunSpec], queries: list[tuple[Node, list[OrderKey]]], page_size: int
    ) -> None:
        experiment = store_runs(search_store, specs)
        names = {s.run_id: s.name for s in specs}
        for index, (node, keys) in enumerate(queries):
            text = render_filter(node)
            order_by = [f"{k.field.render()} {'ASC' if k.ascending else 'DESC'}" for k in keys]
            expected = reference_order([s for s in specs if matches(node, s)], keys)
            # The first query walks small pages; the others read one page (faster).
            size = page_size if index == 0 else 100
            found: list[str] = []
            token = None
            for _ in range(len(specs) + 2):
                page = search_store.search_runs(
                    [experiment],
                    filter_string=text,
                    order_by=order_by,
                    max_results=size,
                    page_token=token,
                )
                found += [run.run_id for run in page]
                token = page.next_page_token
                if token is None:
                    break
            assert [names[i] for i in found] == [s.name for s in expected], (text, order_by)
            assert found == [s.run_id for s in expected], (text, order_by, specs)

    check()


# --- parsing ----------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(filters)
def test_rendered_filters_parse_back_to_the_same_ast(node: Node) -> None:
    text = render_filter(node)
    assert parse_filter(text) == node
    assert render_filter(parse_filter(text)) == text


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="metrcsaprm.`'\"()=!<>, %_\\ndotilkeIN0123456789-+e", max_size=40))
def test_any_text_parses_or_raises_filter_syntax_error(text: str) -> None:
    try:
        parse_filter(text)
    except FilterSyntaxError as exc:
        position = re.search(r"position (\d+)", str(exc))
        assert position is not None, str(exc)
        assert 0 <= int(position.group(1)) <= len(text)


def test_parser_builds_the_expected_ast() -> None:
    node = parse_filter(
        "metrics.acc > 0.9 and (params.`learning rate` IN ('0.1', 2) or not tags.x LIKE 'a%')"
    )
    assert node == And(
        (
            Comparison(Field("metric", "acc"), ">", 0.9),
            Or(
                (
                    Comparison(Field("param", "learning rate"), "IN", ("0.1", "2")),
                    Not(Comparison(Field("tag", "x"), "LIKE", "a%")),
                )
            ),
        )
    )


def test_and_binds_tighter_than_or() -> None:
    a, b, c = (Comparison(Field("metric", k), "=", 1.0) for k in "abc")
    assert parse_filter("metrics.a = 1 or metrics.b = 1 and metrics.c = 1") == Or((a, And((b, c))))
    assert parse_filter("not metrics.a = 1 and metrics.b = 1") == And((Not(a), b))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("params.x = 'it''s'", "it's"),
        ('params.x = "say ""hi"""', 'say "hi"'),
        ("params.x = '\\'", "\\"),
        ("params.x = ''", ""),
        ("params.x = -0.50", "-0.50"),
    ],
)
def test_string_literals(text: str, value: str) -> None:
    node = parse_filter(text)
    assert isinstance(node, Comparison)
    assert node.value == value


def test_empty_filters_mean_no_filter() -> None:
    assert parse_filter("") is None
    assert parse_filter("   ") is None


def test_every_attribute_is_searchable() -> None:
    for name in ATTRIBUTES:
        node = parse_filter(f"attributes.{name} != 1")
        assert node == Comparison(Field("attribute", name), "!=", 1.0 if _numeric(name) else "1")


def _numeric(name: str) -> bool:
    return ATTRIBUTES[name]


def test_order_by_items_parse() -> None:
    assert parse_order_by(["metrics.`val loss` desc", "params.lr", "start_time ASC"]) == [
        OrderKey(Field("metric", "val loss"), ascending=False),
        OrderKey(Field("param", "lr"), ascending=True),
        OrderKey(Field("attribute", "start_time"), ascending=True),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "metrics.acc 0.9",
            r"Expected an operator after 'metrics.acc' at position 12 \(one of =, !=, >, >=, "
            r"<, <=, LIKE, ILIKE, IN, NOT IN\), got '0.9'.\n  metrics.acc 0.9\n {14}\^",
        ),
        ("metrics.acc >", "Expected a number after 'metrics.acc >' at position 13, got the end"),
        ("metrics.acc > 'high'", "Expected a number after 'metrics.acc >' at position 14"),
        ("metrics.acc LIKE 'x'", "Operator LIKE at position 12 does not apply to 'metrics.acc'"),
        ("params.lr > '1'", "Operator > at position 10 does not apply to 'params.lr', which "),
        ("params.lr = 'open", "Unterminated string starting at position 12"),
        ("stauts = 'x'", r"Unknown attribute 'stauts' at position 0 .*Did you mean 'status'\?"),
        ("metrix.acc > 1", r"Unknown prefix 'metrix' at position 0 .*Did you mean 'metrics'\?"),
        ("metrics. > 1", "Expected a key after 'metrics.' at position 8"),
        ("(metrics.a > 1", "Expected '\\)' at position 14, got the end of the filter"),
        ("metrics.a > 1 metrics.b > 1", "Expected 'and', 'or' or the end of the filter after"),
        ("metrics.a > 1 and", "Expected a field .* at position 17, got the end of the filter"),
        ("params.a IN 'x'", r"Expected '\(' after 'params.a IN' at position 12"),
        ("params.a IN ('x' 'y')", "Expected ',' or '\\)' at position 17"),
        ("params.a LIKE 'x\\'", "LIKE pattern 'x\\\\' at position 14 ends with an escape"),
        ("params.a = 1 ; DROP TABLE runs", "Unexpected character ';' at position 13"),
        ("metrics.a == 1", "Expected a number after 'metrics.a =' at position 11, got '='"),
    ],
)
def test_syntax_errors_say_where_and_what_was_expected(text: str, message: str) -> None:
    with pytest.raises(FilterSyntaxError, match=message) as info:
        parse_filter(text)
    assert isinstance(info.value, InvalidArgumentError)
    assert info.value.http_status == 400


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("(" * 51 + "metrics.a > 1" + ")" * 51, "nests 'not' and parentheses more than 50"),
        ("not " * 51 + "metrics.a > 1", "nests 'not' and parentheses more than 50"),
        (" or ".join(["metrics.a > 1"] * 201), "more than 200 comparisons at position 3400"),
        (
            "params.x = '" + "y" * 20_000 + "'",
            "The filter has 20013 characters; the limit is 20000",
        ),
    ],
)
def test_oversized_filters_are_refused_before_reaching_the_database(
    text: str, message: str
) -> None:
    with pytest.raises(FilterSyntaxError, match=message):
        parse_filter(text)


def test_too_many_order_by_items_are_refused() -> None:
    with pytest.raises(FilterSyntaxError, match="order_by has 11 items; the limit is 10"):
        parse_order_by(["start_time"] * 11)


# --- user text is data, never SQL --------------------------------------------------------------

INJECTIONS = [
    "'; DROP TABLE runs; --",
    '" OR 1=1 --',
    "x' OR '1'='1",
    "%' OR run_id LIKE '%",
    "\\'); DELETE FROM params; --",
]


@pytest.fixture
def injection_store(tmp_path: Path) -> SqlTrackingStore:
    engine = engine_for(f"sqlite:///{tmp_path / 'meta.db'}")
    return SqlTrackingStore(engine, "default", artifact_root=tmp_path.as_uri())


def quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@pytest.mark.parametrize("payload", INJECTIONS)
def test_injection_strings_in_values_and_keys_are_data(
    injection_store: SqlTrackingStore, payload: str
) -> None:
    store = injection_store
    experiment = store.create_experiment("inj").experiment_id
    plain = store.create_run(experiment, run_name="plain")
    store.log_batch(plain.run_id, params=[Param("x", "1")], tags={"t": "v"})
    holder = store.create_run(experiment, run_name=payload)
    store.log_batch(holder.run_id, params=[Param("x", payload)])

    for text in [
        f"params.x = {quoted(payload + ' ')}",
        f"params.`{payload.replace('`', '')}` = '1'",
        f"tags.t = {quoted(payload)}",
        f"params.x IN ({quoted(payload + '!')}, {quoted('2')})",
    ]:
        assert store.search_runs([experiment], filter_string=text).items == [], text
    exact = store.search_runs([experiment], filter_string=f"params.x = {quoted(payload)}")
    assert [r.run_id for r in exact] == [holder.run_id]
    by_name = store.search_runs([experiment], filter_string=f"run_name = {quoted(payload)}")
    assert [r.run_id for r in by_name] == [holder.run_id]

    with store._engine.connect() as conn:
        assert sa.inspect(conn).has_table("runs")
        assert conn.execute(sa.text("SELECT count(*) FROM params")).scalar() == 2
    assert len(store.search_runs([experiment])) == 2
