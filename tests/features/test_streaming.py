"""Streaming ingestion against a real Kafka broker (Tansu): normalized rows land online, in
the offline log and on the output topic with delivery reports; bad events go to the
dead-letter topic while good ones keep flowing; lag is exported; and a ``kill -9`` in the
middle of a stream, then a restart, leaves the same state as a clean run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shipyard.config import Settings
from shipyard.features.definitions import Entity, FeatureView, Field, KafkaSource, ValueType
from shipyard.features.offline_log import offline_log_prefix
from shipyard.features.streaming import HEADER_ERROR, HEADER_REASON, StreamProcessor
from shipyard.features.transforms import Normalize
from shipyard.features.types import Float32, Float64, String
from shipyard.testing import free_port
from tests.conftest import KAFKA_TEST_CONSUMER_CONFIG, create_kafka_topics

pytestmark = pytest.mark.xdist_group("kafka")

MEANS = {"speed": 50.0, "accel": 1.5}
STDS = {"speed": 12.5, "accel": 0.25}
FEATURES = ["speed", "accel", "city"]
T0 = datetime(2024, 5, 1, tzinfo=UTC)


@dataclass
class Topics:
    raw: str
    output: str
    dead_letter: str


@pytest.fixture
def topics(kafka_bootstrap: str) -> Topics:
    suffix = uuid.uuid4().hex[:8]
    made = Topics(f"raw-{suffix}", f"processed-{suffix}", f"raw-{suffix}.dlq")
    create_kafka_topics(kafka_bootstrap, [made.raw], partitions=2)
    create_kafka_topics(kafka_bootstrap, [made.output, made.dead_letter])
    return made


def feature_store(home: Path, db: str) -> Any:
    from shipyard.features.store import FeatureStore

    return FeatureStore(Settings(home=home, db=db))


def define_view(bootstrap: str, topics: Topics) -> list[Any]:
    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    view = FeatureView(
        name="driver_live",
        entities=[driver],
        schema=[Field("speed", Float64), Field("accel", Float32), Field("city", String)],
        source=KafkaSource(
            name="driver_events",
            topic=topics.raw,
            bootstrap_servers=bootstrap,
            timestamp_field="event_timestamp",
            output_topic=topics.output,
        ),
        transform=Normalize(MEANS, STDS),
    )
    return [driver, view]


def event(driver: int, second: int, rng: random.Random) -> dict[str, Any]:
    return {
        "driver_id": driver,
        "event_timestamp": (T0 + timedelta(seconds=second)).isoformat(),
        "speed": round(rng.uniform(0, 120), 3),
        "accel": round(rng.uniform(-3, 3), 3),
        "city": rng.choice(["Lyon", "Oslo", "Pune"]),
    }


def produce(bootstrap: str, topic: str, payloads: list[bytes | dict[str, Any]]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    failed: list[Any] = []
    for payload in payloads:
        value = json.dumps(payload).encode() if isinstance(payload, dict) else payload
        key = str(payload["driver_id"]).encode() if isinstance(payload, dict) else b"bad"
        producer.produce(
            topic, value=value, key=key, on_delivery=lambda e, m: e and failed.append(e)
        )
        producer.poll(0)
    assert producer.flush(30) == 0
    assert failed == []


def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 30) -> list[Any]:
    """``count`` messages of a single-partition topic, read without a consumer group."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader"})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    messages: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(messages) < count and time.monotonic() < deadline:
        messages += [m for m in consumer.consume(count, timeout=0.5) if m.error() is None]
    consumer.close()
    return messages


def expected_online(events: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Brute force: per driver the event with the newest time (the last sent among equals),
    normalized."""
    latest: dict[int, dict[str, Any]] = {}
    for e in events:
        held = latest.get(e["driver_id"])
        if held is None or e["event_timestamp"] >= held["event_timestamp"]:
            latest[e["driver_id"]] = e
    return {d: normalized(e) for d, e in latest.items()}


def normalized(e: dict[str, Any]) -> dict[str, Any]:
    return {
        "speed": (e["speed"] - MEANS["speed"]) / STDS["speed"],
        "accel": (e["accel"] - MEANS["accel"]) / STDS["accel"],
        "city": e["city"],
    }


def online_state(store: Any, drivers: list[int]) -> dict[int, tuple[Any, ...]]:
    view = store.get_feature_view("driver_live")
    values, statuses, event_ts = store.online_store.read(view, FEATURES, [(d,) for d in drivers])
    assert {str(s) for column in statuses.values() for s in column} == {"PRESENT"}
    return {d: (event_ts[i], *(values[f][i] for f in FEATURES)) for i, d in enumerate(drivers)}


def offline_rows(home: Path) -> list[tuple[Any, ...]]:
    folder = home / "artifacts" / offline_log_prefix("driver_live")
    tables = [pq.read_table(path) for path in sorted(folder.glob("*.parquet"))]
    rows = pa.concat_tables(tables).to_pylist() if tables else []
    return sorted(tuple(r.values()) for r in rows)


def lag(processor: StreamProcessor, topic: str) -> float:
    samples = [
        processor.metrics.registry.get_sample_value(
            "shipyard_stream_consumer_lag",
            {"view": "driver_live", "topic": topic, "partition": str(p)},
        )
        for p in (0, 1)
    ]
    return sum(s for s in samples if s is not None)


def test_stream_normalizes_into_every_sink_and_dead_letters_bad_events(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path, fresh_sqlite_url: str
) -> None:
    rng = random.Random(7)
    store = feature_store(tmp_path / "home", fresh_sqlite_url)
    store.apply(define_view(kafka_bootstrap, topics))
    seconds = rng.sample(range(1000), 40)  # distinct, out of order
    good = [event(i % 8, seconds[i], rng) for i in range(40)]
    bad: list[bytes | dict[str, Any]] = [
        b"{not json",
        {**good[0], "driver_id": "eight"},
        {k: v for k, v in good[1].items() if k != "speed"},
    ]
    payloads: list[bytes | dict[str, Any]] = list(good)
    for position, payload in zip((5, 18, 31), bad, strict=True):
        payloads.insert(position, payload)
    produce(kafka_bootstrap, topics.raw, payloads)

    def processor() -> StreamProcessor:
        return StreamProcessor(
            store,
            "driver_live",
            group_id=f"g-{topics.raw}",
            dead_letter_topic=topics.dead_letter,
            batch_size=8,
            consumer_config=KAFKA_TEST_CONSUMER_CONFIG,
        )

    first = processor()
    assert first.run(max_messages=10).consumed == 10
    assert lag(first, topics.raw) == 33  # what is left, per the cached high watermarks
    second = processor()  # resumes from the first's commit
    stats = second.run(max_messages=33)
    assert lag(second, topics.raw) == 0

    processed = first.stats.processed + stats.processed
    dead = first.stats.dead_lettered + stats.dead_lettered
    assert (processed, dead) == (40, 3)
    assert first.stats.delivered + stats.delivered == 43  # delivery reports: output + DLQ
    assert first.stats.delivery_failed + stats.delivery_failed == 0

    want = expected_online(good)
    got = online_state(store, sorted(want))
    for driver, (_, speed, accel, city) in got.items():
        assert speed == pytest.approx(want[driver]["speed"], rel=1e-12)
        assert accel == pytest.approx(want[driver]["accel"], rel=1e-6)
        assert city == want[driver]["city"]

    logged = pa.concat_tables(
        pq.read_table(p)
        for p in (tmp_path / "home/artifacts" / offline_log_prefix("driver_live")).iterdir()
    )
    assert logged.num_rows == 40
    assert logged.schema.field("event_timestamp").type == pa.timestamp("us", tz="UTC")
    assert sorted(logged.column("speed").to_pylist()) == pytest.approx(
        sorted(normalized(e)["speed"] for e in good)
    )

    out = [json.loads(m.value()) for m in read_topic(kafka_bootstrap, topics.output, 40)]
    assert len(out) == 40
    by_time = {(o["driver_id"], o["event_timestamp"]): o for o in out}
    for e in good:
        row = by_time[(e["driver_id"], datetime.fromisoformat(e["event_timestamp"]).isoformat())]
        assert row["speed"] == pytest.approx(normalized(e)["speed"])
        assert row["city"] == e["city"]

    letters = read_topic(kafka_bootstrap, topics.dead_letter, 3)
    by_reason = {dict(m.headers())[HEADER_REASON]: m for m in letters}  # partitions interleave
    assert sorted(by_reason) == [b"malformed_json", b"missing_field", b"wrong_type"]
    assert by_reason[b"malformed_json"].value() == b"{not json"  # the original, to replay
    errors = {reason: dict(m.headers())[HEADER_ERROR] for reason, m in by_reason.items()}
    assert b"'driver_id' must be Int64" in errors[b"wrong_type"]
    assert b"missing field 'speed'" in errors[b"missing_field"]

    def counted(name: str, **labels: str) -> float:
        return sum(
            p.metrics.registry.get_sample_value(name, {"view": "driver_live", **labels}) or 0
            for p in (first, second)
        )

    assert counted("shipyard_stream_rows_processed_total") == 40
    assert counted("shipyard_stream_dead_lettered_total", reason="missing_field") == 1
    assert counted("shipyard_stream_produced_total", topic=topics.output) == 40


def stream_command(view: str, bootstrap: str, group: str, *extra: str) -> list[str]:
    settings = [f"-X{k}={v}" for k, v in KAFKA_TEST_CONSUMER_CONFIG.items()]
    return [
        sys.executable, "-m", "shipyard.cli.main", "features", "stream", view,
        "--bootstrap", bootstrap, "--group", group, "--batch-size", "100", *settings, *extra,
    ]  # fmt: skip


def scrape(port: int) -> dict[str, float]:
    """The metrics a stream process serves, by name and labels; empty while it starts."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def wait_for(
    condition: Any, proc: subprocess.Popen[bytes], log: Path, timeout: float, what: str
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"stream exited ({proc.returncode}) before {what}: {log.read_text()}")
        time.sleep(0.005)
    pytest.fail(f"timed out waiting for {what}: {log.read_text()[-3000:]}")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_kill_9_mid_stream_then_restart_equals_a_clean_run(
    kafka_bootstrap: str,
    topics: Topics,
    tmp_path: Path,
    fresh_sqlite_url: str,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    rng = random.Random(11)
    # Few distinct times per driver, so rows tie on event time and arrive out of order.
    events = [event(rng.randrange(60), rng.randrange(40), rng) for _ in range(3000)]
    payloads: list[bytes | dict[str, Any]] = list(events)
    payloads.insert(1234, b"\xff not json")
    produce(kafka_bootstrap, topics.raw, payloads)
    total = len(payloads)
    definitions = define_view(kafka_bootstrap, topics)

    home = tmp_path / "crashy"
    feature_store(home, fresh_sqlite_url).apply(definitions)
    env = {**os.environ, "SHIPYARD_HOME": str(home), "SHIPYARD_DB": fresh_sqlite_url}
    group = f"crashy-{topics.raw}"
    labels = f'{{topic="{topics.raw}",view="driver_live"}}'

    # The clean run of the same input, in this process, meanwhile.
    clean_home = tmp_path / "clean"
    clean = feature_store(clean_home, fresh_sqlite_url)  # same registry, its own stores
    clean_processor = StreamProcessor(
        clean,
        "driver_live",
        group_id=f"clean-{topics.raw}",
        batch_size=500,
        consumer_config=KAFKA_TEST_CONSUMER_CONFIG,
    )
    clean_stats = clean_processor.stats
    clean_run = threading.Thread(target=clean_processor.run, kwargs={"max_messages": total})
    clean_run.start()

    port = free_port()
    first_log = tmp_path / "first.log"
    with first_log.open("wb") as log:
        first = subprocess.Popen(
            stream_command("driver_live", kafka_bootstrap, group, "--metrics-port", str(port)),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    processes.append(first)

    def in_flight() -> float:
        # Kill after some commits, preferably while a batch is written but not committed
        # (a slow machine may miss that window: then kill halfway anyway).
        samples = scrape(port)
        written = samples.get('shipyard_stream_rows_processed_total{view="driver_live"}', 0)
        committed = samples.get(f"shipyard_stream_messages_committed_total{labels}", 0)
        return written if (committed >= 300 and written > committed) or committed >= 1500 else 0

    done_at_kill = wait_for(
        in_flight, first, first_log, timeout=60, what="the first stream process wrote rows"
    )
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert done_at_kill < total - 1, "the stream finished before it was killed"

    port = free_port()
    second_log = tmp_path / "second.log"
    with second_log.open("wb") as log:
        second = subprocess.Popen(
            stream_command("driver_live", kafka_bootstrap, group, "--metrics-port", str(port)),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    processes.append(second)

    def caught_up() -> bool:
        samples = scrape(port)
        lags = [v for k, v in samples.items() if k.startswith("shipyard_stream_consumer_lag{")]
        return len(lags) == 2 and sum(lags) == 0

    wait_for(caught_up, second, second_log, timeout=60, what="the restart caught up (lag 0)")
    second.send_signal(signal.SIGTERM)  # graceful: finish the batch, commit, flush, exit 0
    assert second.wait(timeout=30) == 0, second_log.read_text()[-3000:]
    assert "consumed" in second_log.read_text()

    clean_run.join(timeout=60)
    assert (clean_stats.processed, clean_stats.dead_lettered) == (total - 1, 1)

    drivers = sorted({e["driver_id"] for e in events})
    crashed_state = online_state(feature_store(home, fresh_sqlite_url), drivers)
    assert crashed_state == online_state(clean, drivers)
    want = expected_online(events)
    assert {d: v[1] for d, v in crashed_state.items()} == pytest.approx(
        {d: w["speed"] for d, w in want.items()}
    )
    # The offline log holds each message once: files of uncommitted offsets were replaced.
    assert offline_rows(home) == offline_rows(clean_home)
    assert len(offline_rows(home)) == total - 1


def test_json_producer_counts_delivery_reports(kafka_bootstrap: str, topics: Topics) -> None:
    from shipyard.features.kafka_io import JsonProducer

    with JsonProducer(kafka_bootstrap, topics.output) as sink:
        for i in range(5):
            sink.send({"request_id": f"r{i}", "at": T0, "score": 0.5 + i}, key=f"r{i}")
        assert sink.flush(30) == 0
    assert (sink.delivered, sink.failed) == (5, 0)
    sent = [json.loads(m.value()) for m in read_topic(kafka_bootstrap, topics.output, 5)]
    assert sent[4] == {"request_id": "r4", "at": T0.isoformat(), "score": 4.5}

    unreachable = JsonProducer(
        f"127.0.0.1:{free_port()}", "nowhere", config={"message.timeout.ms": 300}
    )
    unreachable.send({"request_id": "lost"})
    assert unreachable.flush(10) == 0
    assert (unreachable.delivered, unreachable.failed) == (0, 1)
    assert unreachable.last_error
