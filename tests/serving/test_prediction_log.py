"""The prediction log: contract layout and columns, sampling, rolling, crash recovery."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipyard.config import Settings
from shipyard.security.audit import payload_sha256
from shipyard.serving.prediction_log import (
    PredictionLogWriter,
    base_schema,
    features_sha256,
    prediction_rows,
    recover_spool,
)


def _files(settings: Settings, model: str = "fraud") -> list[Path]:
    root = Path(settings.artifacts.removeprefix("file://")) / "prediction-logs" / "default" / model
    return sorted(root.glob("date=*/part-*.parquet"))


def _batch(n: int = 3, model: str = "fraud", start_us: int = 1_700_000_000_000_000) -> Any:
    X = np.arange(n * 2, dtype=float).reshape(n, 2)
    return prediction_rows(
        model=model,
        version="1",
        batch=X,
        feature_names=["a", "b"],
        predictions=np.array([1] * n),
        probabilities=np.tile([0.25, 0.75], (n, 1)),
        request_ids=[f"r{i}" for i in range(n)],
        variants=["champion"] * n,
        latencies_ms=[1.5] * n,
        ts_us=[start_us + i for i in range(n)],
    )


def test_rows_have_the_contract_columns(tmp_path: Path) -> None:
    writer = PredictionLogWriter((tmp_path / "a").as_uri(), "default", spool_dir=tmp_path / "s")
    writer.append("fraud", *_batch())
    key = writer.close()[0]
    table = pa.parquet.read_table(tmp_path / "a" / key)
    names = table.schema.names
    assert names[: len(base_schema())] == base_schema().names
    assert names[-2:] == ["feature.a", "feature.b"]
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("feature.a").type == pa.float64()
    row = table.to_pylist()[1]
    assert row["request_id"] == "r1" and row["model"] == "fraud" and row["version"] == "1"
    assert row["prediction"] == 1.0 and row["prediction_label"] == "1"
    assert row["confidence"] == 0.75 and row["latency_ms"] == 1.5
    assert row["ts"].timestamp() == pytest.approx(1_700_000_000.000001)
    assert row["features_sha256"] == payload_sha256({"a": 2.0, "b": 3.0})


values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.none(),
    st.text(max_size=8),
)


@given(
    st.dictionaries(st.text(max_size=6), values, min_size=1, max_size=6).map(
        lambda d: (list(d), [list(d.values())])
    )
)
def test_feature_hash_is_the_audit_payload_hash(case: Any) -> None:
    names, rows = case
    assert features_sha256(names, rows) == [payload_sha256(dict(zip(names, rows[0], strict=True)))]


@given(
    st.lists(st.text(max_size=5), min_size=1, max_size=5, unique=True).flatmap(
        lambda names: st.tuples(
            st.just(names),
            st.lists(
                st.lists(
                    st.floats(allow_nan=False, allow_infinity=False),
                    min_size=len(names),
                    max_size=len(names),
                ),
                min_size=1,
                max_size=3,
            ),
        )
    )
)
def test_fast_float_hash_is_the_audit_payload_hash(case: Any) -> None:
    names, rows = case
    expected = [payload_sha256(dict(zip(names, row, strict=True))) for row in rows]
    assert features_sha256(names, rows, finite_floats=True) == expected


def test_writer_rolls_by_rows_into_dated_parquet_files(tmp_path: Path) -> None:
    artifacts = (tmp_path / "artifacts").as_uri()
    writer = PredictionLogWriter(artifacts, "default", spool_dir=tmp_path / "spool", roll_rows=5)
    for _ in range(4):
        writer.append("fraud", *_batch(2))
    assert len(writer.published) == 1  # 6 rows passed roll_rows=5
    writer.close()
    files = sorted((tmp_path / "artifacts" / "prediction-logs/default/fraud").rglob("*.parquet"))
    assert [f.parent.name for f in files] == ["date=2023-11-14", "date=2023-11-14"]
    assert all(f.name.startswith("part-1700000000000-") for f in files)
    assert ds.dataset(files, format="parquet").to_table().num_rows == 8
    assert not list((tmp_path / "spool").rglob("*.jsonl"))


def test_writer_rolls_by_age(tmp_path: Path) -> None:
    writer = PredictionLogWriter(
        (tmp_path / "a").as_uri(), "default", spool_dir=tmp_path / "s", roll_seconds=0.3
    )
    writer.append("fraud", *_batch())
    assert writer.maybe_roll() == []
    time.sleep(0.35)
    assert len(writer.maybe_roll()) == 1


def test_a_crash_loses_nothing_that_was_appended(tmp_path: Path) -> None:
    """A process appends and is killed; the next start publishes its spool."""
    artifacts = (tmp_path / "artifacts").as_uri()
    spool = tmp_path / "spool"
    script = f"""
import os, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_prediction_log import _batch
from shipyard.serving.prediction_log import PredictionLogWriter
w = PredictionLogWriter({artifacts!r}, "default", spool_dir={str(spool)!r})
for i in range(3):
    w.append("fraud", *_batch(4, start_us=1_700_000_000_000_000 + i * 10))
os.kill(os.getpid(), 9)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert done.returncode == -9, done.stderr.decode()
    assert len(list(spool.rglob("*.jsonl"))) == 1
    keys = recover_spool(spool, artifacts)
    assert len(keys) == 1
    table = pa.parquet.read_table(tmp_path / "artifacts" / keys[0])
    assert table.num_rows == 12
    assert not list(spool.rglob("*.jsonl*"))


def test_torn_spool_tail_keeps_the_complete_batches(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    writer = PredictionLogWriter((tmp_path / "a").as_uri(), "default", spool_dir=spool)
    writer.append("fraud", *_batch(2))
    writer.append("fraud", *_batch(2))
    path = next(spool.rglob("*.jsonl"))
    data = path.read_bytes()
    dead = path.with_name("999999999-" + path.name.split("-", 1)[1])
    dead.write_bytes(data[:-40])  # a crash in the middle of the last row
    keys = recover_spool(spool, (tmp_path / "a").as_uri())
    assert len(keys) == 1
    assert pa.parquet.read_table(tmp_path / "a" / keys[0]).num_rows == 3
    writer.close()


async def _traffic(app: Any, rows: list[list[float]], path: str = "/predict") -> list[Any]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://model") as http:
        server = app.state.model_server
        await server.start()
        responses = await asyncio.gather(
            *(
                http.post(path, json={"features": row}, headers={"X-Request-Id": f"id-{i}"})
                for i, row in enumerate(rows)
            )
        )
        await server.stop()
        return responses


def test_server_logs_every_prediction_with_its_features(
    register: Any, logreg: Any, make_app: Any, xy: Any, settings: Settings
) -> None:
    register(logreg)
    X = xy[0][:10]
    responses = asyncio.run(_traffic(make_app(), X.tolist()))
    table = ds.dataset(_files(settings), format="parquet").to_table().sort_by("request_id")
    assert table.num_rows == 10
    assert [f"feature.x{i}" for i in range(20)] == table.schema.names[-20:]
    by_id = {r.json()["request_id"]: r.json() for r in responses}
    for row in table.to_pylist():
        answer = by_id[row["request_id"]]
        assert row["prediction"] == answer["prediction"]
        assert row["confidence"] == pytest.approx(answer["confidence"])
        assert row["model"] == "fraud" and row["version"] == "1"
        assert row["variant"] == "champion" and row["latency_ms"] > 0
    first = table.to_pylist()[0]
    index = int(first["request_id"].split("-")[1])
    features = {f"x{i}": float(X[index, i]) for i in range(20)}
    assert first["features_sha256"] == payload_sha256(features)
    assert first["feature.x3"] == X[index, 3]


def test_log_sample_keeps_a_deterministic_share(
    register: Any, logreg: Any, make_app: Any, xy: Any, settings: Settings
) -> None:
    register(logreg)
    rows = [xy[0][0].tolist()] * 200
    asyncio.run(_traffic(make_app(log_sample=0.25), rows))
    ids = ds.dataset(_files(settings), format="parquet").to_table().column("request_id")
    assert 20 <= len(ids) <= 80
    asyncio.run(_traffic(make_app(log_sample=0.25), rows))
    again = ds.dataset(_files(settings), format="parquet").to_table().column("request_id")
    assert sorted(again.to_pylist()) == sorted(ids.to_pylist() * 2)  # same ids chosen


def test_no_log_when_sampling_is_off(
    register: Any, logreg: Any, make_app: Any, xy: Any, settings: Settings
) -> None:
    register(logreg)
    asyncio.run(_traffic(make_app(log_sample=0), [xy[0][0].tolist()] * 3))
    assert _files(settings) == []
    assert not (settings.home / "prediction-spool").exists() or not list(
        (settings.home / "prediction-spool").rglob("*.jsonl")
    )
    assert os.environ.get("PROMETHEUS_MULTIPROC_DIR") is None


def test_predictions_also_go_to_a_kafka_topic(
    register: Any, logreg: Any, make_app: Any, xy: Any, kafka_bootstrap: str
) -> None:
    import json

    from confluent_kafka import Consumer, TopicPartition

    from tests.conftest import create_kafka_topics

    topic = f"predictions-{os.getpid()}-{time.time_ns()}"
    create_kafka_topics(kafka_bootstrap, [topic])
    register(logreg)
    app = make_app(log_kafka_topic=topic, log_kafka_bootstrap=kafka_bootstrap)
    X = xy[0][:5]
    asyncio.run(_traffic(app, X.tolist()))
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": "serving-test",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    messages = {}
    deadline = time.monotonic() + 30
    while len(messages) < 5 and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is not None and message.error() is None:
            messages[message.key().decode()] = json.loads(message.value())
    consumer.close()
    assert sorted(messages) == [f"id-{i}" for i in range(5)]
    row = messages["id-2"]
    assert row["model"] == "fraud" and row["variant"] == "champion"
    assert row["feature.x0"] == X[2, 0]
    assert row["prediction"] == float(logreg.predict(X[2:3])[0])


def test_try_append_only_appends_to_an_open_spool_with_room(tmp_path: Path) -> None:
    writer = PredictionLogWriter(
        (tmp_path / "a").as_uri(), "default", spool_dir=tmp_path / "s", roll_rows=8
    )
    assert not writer.try_append("fraud", *_batch(2))  # no spool yet: the thread opens it
    writer.append("fraud", *_batch(2))
    assert writer.try_append("fraud", *_batch(3))
    assert not writer.try_append("fraud", *_batch(3))  # would reach roll_rows
    assert writer.rows_written == 5
    key = writer.close()[0]
    assert pa.parquet.read_table(tmp_path / "a" / key).num_rows == 5
