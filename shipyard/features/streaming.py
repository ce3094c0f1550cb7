"""Streaming ingestion: raw JSON events from Kafka become feature rows, online and offline.

:class:`StreamProcessor` is the seed's Kafka ``FeatureProcessor`` made restartable. Per
batch of messages it

1. decodes and checks each event against the view (join keys, event time, the raw fields
   the transform reads, typed features); a bad event goes to the dead-letter topic with
   the reason in its headers and the consumer keeps going,
2. applies the view's registered transform (e.g. ``Normalize(means, stds)``),
3. writes the online store (idempotent by entity key and event time),
4. appends the rows to the view's offline log (one file per partition and offset range),
5. produces the processed rows to the output topic and waits for the delivery reports,
6. and only then commits the consumed offsets, synchronously.

A crash (even ``kill -9``) between any two steps replays the uncommitted messages on
restart: the online write keeps the newest row per entity whatever the replay order, and
the offline-log files of uncommitted offsets are deleted before the replay, so the online
state and the offline log end up equal to a clean run. Output and dead-letter topics are
at-least-once: a replayed message may be produced twice.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shipyard.errors import BackendError, InvalidArgumentError
from shipyard.features.offline_log import append_offline_log, discard_uncommitted, stream_part_name
from shipyard.features.sources import KafkaSource
from shipyard.features.streaming_events import EventSchema, RejectedEvent
from shipyard.features.transforms import PythonTransform, import_callable

if TYPE_CHECKING:
    import pyarrow as pa
    from confluent_kafka import Message, TopicPartition

    from shipyard.features.definitions import FeatureView
    from shipyard.features.online.base import OnlineStore
    from shipyard.features.store import FeatureStore

__all__ = [
    "DEFAULT_OUTPUT_TOPIC",
    "HEADER_ERROR",
    "HEADER_REASON",
    "EventSchema",
    "RejectedEvent",
    "StreamMetrics",
    "StreamProcessor",
    "StreamStats",
]

log = logging.getLogger(__name__)

#: Where processed rows go unless the view's KafkaSource names another topic (the seed's).
DEFAULT_OUTPUT_TOPIC = "processed_features"
#: Dead-letter header with the kind of failure (a short, fixed vocabulary).
HEADER_REASON = "x-shipyard-reason"
#: Dead-letter header with the readable explanation.
HEADER_ERROR = "x-shipyard-error"


@dataclass
class StreamStats:
    """Counts of one :meth:`StreamProcessor.run`."""

    consumed: int = 0
    processed: int = 0
    dead_lettered: int = 0
    delivered: int = 0
    delivery_failed: int = 0
    batches: int = 0
    online_rows_written: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)


class StreamMetrics:
    """Prometheus metrics of stream consumers, in their own registry.

    Rows per second is ``rate(shipyard_stream_rows_processed_total[1m])``; consumer lag is
    the high watermark minus the committed offset, per partition.
    """

    def __init__(self, registry: Any = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        self.consumed = Counter(
            "shipyard_stream_messages_consumed",
            "Messages read from the input topic.",
            ["view", "topic"],
            registry=reg,
        )
        self.committed = Counter(
            "shipyard_stream_messages_committed",
            "Messages whose offsets are committed; consumed minus committed are in flight.",
            ["view", "topic"],
            registry=reg,
        )
        self.rows = Counter(
            "shipyard_stream_rows_processed",
            "Feature rows written online and offline; rate() of it is rows/s.",
            ["view"],
            registry=reg,
        )
        self.dead_lettered = Counter(
            "shipyard_stream_dead_lettered",
            "Messages sent to the dead-letter topic.",
            ["view", "reason"],
            registry=reg,
        )
        self.delivered = Counter(
            "shipyard_stream_produced",
            "Messages the broker acknowledged.",
            ["view", "topic"],
            registry=reg,
        )
        self.delivery_failures = Counter(
            "shipyard_stream_delivery_failures",
            "Messages the producer failed to deliver.",
            ["view", "topic"],
            registry=reg,
        )
        self.lag = Gauge(
            "shipyard_stream_consumer_lag",
            "Messages not yet committed: high watermark minus committed offset.",
            ["view", "topic", "partition"],
            registry=reg,
        )
        self.batch_seconds = Histogram(
            "shipyard_stream_batch_duration_seconds",
            "Time to process and commit one batch.",
            ["view"],
            registry=reg,
        )
        self.last_commit = Gauge(
            "shipyard_stream_last_commit_timestamp_seconds",
            "When offsets were last committed.",
            ["view"],
            registry=reg,
        )

    def serve(self, port: int, addr: str = "127.0.0.1") -> Callable[[], None]:
        """Serve ``/metrics`` on ``addr:port`` in a thread; returns a function that stops it."""
        from prometheus_client import start_http_server

        server, thread = start_http_server(port, addr=addr, registry=self.registry)

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

        return stop


def _headers(message: Message) -> list[tuple[str, bytes]]:
    return list(message.headers() or [])


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class StreamProcessor:
    """Consume a view's Kafka topic into the online store, the offline log and an output
    topic; see the module docstring for the order of steps and what a crash leaves.

    Example::

        store = FeatureStore()
        processor = StreamProcessor(store, "driver_stats", group_id="driver-stream")
        stats = processor.run()          # until stop(), SIGTERM or max_messages

    Args:
        store: The FeatureStore holding the view and its online store.
        view_name: A view whose source is a ``KafkaSource`` (or pass ``input_topic``).
        bootstrap: Kafka servers; default the KafkaSource's ``bootstrap_servers``.
        group_id: Consumer group; default ``shipyard-features-<view>``.
        input_topic: Raw events; default the KafkaSource's ``topic``.
        output_topic: Processed rows; default the source's ``output_topic`` or
            ``processed_features``.
        dead_letter_topic: Rejected events; default ``<input_topic>.dlq``.
        batch_size: Most messages handled (and committed) together.
        poll_timeout: Seconds one poll waits for messages; bounds how fast stop() acts.
        consumer_config: librdkafka settings merged over the defaults (e.g.
            ``{"session.timeout.ms": "6000"}``).
        producer_config: librdkafka settings for the producer.
        metrics: Where to count; default a fresh :class:`StreamMetrics`.
        auto_offset_reset: Where a group without committed offsets starts.
    """

    def __init__(
        self,
        store: FeatureStore,
        view_name: str,
        *,
        bootstrap: str | None = None,
        group_id: str | None = None,
        input_topic: str | None = None,
        output_topic: str | None = None,
        dead_letter_topic: str | None = None,
        batch_size: int = 500,
        poll_timeout: float = 1.0,
        consumer_config: dict[str, Any] | None = None,
        producer_config: dict[str, Any] | None = None,
        metrics: StreamMetrics | None = None,
        auto_offset_reset: str = "earliest",
    ) -> None:
        if batch_size < 1:
            raise InvalidArgumentError(f"batch_size must be at least 1, not {batch_size}.")
        self.view: FeatureView = store.get_feature_view(view_name)
        source = self.view.source
        kafka = source if isinstance(source, KafkaSource) else None
        if kafka is None and not (input_topic and bootstrap):
            raise InvalidArgumentError(
                f"View '{self.view.name}' reads a {type(source).__name__}, not a KafkaSource.",
                hint="Define the view with source=KafkaSource(...), or pass the topic and "
                "bootstrap servers (--topic, --bootstrap).",
            )
        self.input_topic = input_topic or (kafka.topic if kafka else "")
        self.bootstrap = bootstrap or (kafka.bootstrap_servers if kafka else "")
        self.output_topic = output_topic or (kafka and kafka.output_topic) or DEFAULT_OUTPUT_TOPIC
        self.dead_letter_topic = (
            dead_letter_topic or (kafka and kafka.dead_letter_topic) or f"{self.input_topic}.dlq"
        )
        self.group_id = group_id or f"shipyard-features-{self.view.name}"
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        self.auto_offset_reset = auto_offset_reset
        self.schema = EventSchema.for_view(self.view)
        if isinstance(self.view.transform, PythonTransform):
            # A transform that cannot load is a setup error, not a bad event: fail now
            # instead of dead-lettering every message.
            import_callable(self.view.transform.ref)
        self.metrics = metrics or StreamMetrics()
        self.stats = StreamStats()
        self._online: OnlineStore = store.online_store
        self._artifacts: str = store.settings.artifacts
        self._stop = threading.Event()
        self._assigned: dict[tuple[str, int], int] = {}  # (topic, partition) -> next offset
        self._consumer_config = {
            "bootstrap.servers": self.bootstrap,
            "group.id": self.group_id,
            "client.id": f"shipyard-stream-{self.view.name}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": auto_offset_reset,
            **(consumer_config or {}),
        }
        self._producer_config = {
            "bootstrap.servers": self.bootstrap,
            "client.id": f"shipyard-stream-{self.view.name}",
            "acks": "all",
            "linger.ms": 5,
            **(producer_config or {}),
        }
        self._consumer: Any = None
        self._producer: Any = None
        self._closing = False

    # -- lifecycle ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` to finish its batch, commit, flush and return (thread-safe)."""
        self._stop.set()

    def _open(self) -> None:
        from confluent_kafka import Consumer, Producer

        if self._consumer is None:
            self._producer = Producer(self._producer_config)
            self._consumer = Consumer(self._consumer_config)
            self._consumer.subscribe(
                [self.input_topic], on_assign=self._on_assign, on_revoke=self._on_revoke
            )

    def close(self, timeout: float = 30.0) -> None:
        """Flush the producer and leave the consumer group."""
        if self._producer is not None:
            self._producer.flush(timeout)
            self._producer = None
        if self._consumer is not None:
            self._closing = True  # keep the last lag values readable after the run
            try:
                self._consumer.close()
            finally:
                self._consumer = None
                self._closing = False

    @contextmanager
    def _signals(self, enabled: bool) -> Iterator[None]:
        if not enabled or threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

        def handle(signum: int, frame: Any) -> None:
            log.info("signal %d: stopping after the current batch", signum)
            self.stop()

        for sig in previous:
            signal.signal(sig, handle)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def run(
        self,
        *,
        max_messages: int | None = None,
        idle_timeout: float | None = None,
        handle_signals: bool = False,
    ) -> StreamStats:
        """Consume until :meth:`stop`, a signal (with ``handle_signals``), ``max_messages``
        consumed, or ``idle_timeout`` seconds without a message once partitions are
        assigned. Every batch is committed before the next; returns the counts."""
        self._open()
        idle_since = time.monotonic()
        with self._signals(handle_signals):
            try:
                while not self._stop.is_set():
                    want = self.batch_size
                    if max_messages is not None:
                        want = min(want, max_messages - self.stats.consumed)
                        if want <= 0:
                            break
                    messages = self._poll(want)
                    if messages:
                        self._process(messages)
                        idle_since = time.monotonic()
                    elif not self._assigned:
                        idle_since = time.monotonic()
                    elif idle_timeout is not None and time.monotonic() - idle_since > idle_timeout:
                        break
                    else:
                        self._update_lag()
            finally:
                self.close()
        return self.stats

    # -- consuming ---------------------------------------------------------------------------

    def _poll(self, want: int) -> list[Message]:
        from confluent_kafka import KafkaError

        batch = []
        for message in self._consumer.consume(want, timeout=self.poll_timeout):
            error = message.error()
            if error is None:
                batch.append(message)
            elif error.code() == KafkaError._PARTITION_EOF:
                continue
            elif error.fatal():
                raise BackendError(f"Kafka consumer of '{self.input_topic}' failed: {error}")
            else:
                log.warning("consumer error on %s: %s", self.input_topic, error)
        self._producer.poll(0)
        return batch

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        committed = consumer.committed(partitions, timeout=30)
        for tp in committed:
            start = tp.offset
            if start < 0 and self.auto_offset_reset in ("earliest", "smallest", "beginning"):
                start = consumer.get_watermark_offsets(tp, timeout=30)[0]
            if start >= 0:
                dropped = discard_uncommitted(
                    self._artifacts, self.view.name, tp.topic, tp.partition, start
                )
                if dropped:
                    log.info("discarded %d uncommitted offline-log files", len(dropped))
            self._assigned[(tp.topic, tp.partition)] = max(start, 0)
        log.info("assigned %s", [(tp.topic, tp.partition) for tp in partitions])

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._assigned.pop((tp.topic, tp.partition), None)
            if not self._closing:  # another consumer of the group reports it now
                self.metrics.lag.remove(self.view.name, tp.topic, str(tp.partition))

    def _update_lag(self) -> None:
        from confluent_kafka import TopicPartition

        for (topic, partition), committed in self._assigned.items():
            tp = TopicPartition(topic, partition)
            # Watermarks cached from fetch responses: free, and right on brokers (Tansu
            # 0.6) whose ListOffsets answers the last batch's base offset + 1.
            high = self._consumer.get_watermark_offsets(tp, cached=True)[1]
            if high < 0:
                continue
            lag = max(0, high - committed)
            self.metrics.lag.labels(self.view.name, topic, str(partition)).set(lag)

    # -- one batch ---------------------------------------------------------------------------

    def _process(self, messages: list[Message]) -> None:
        started = time.perf_counter()
        view = self.view.name
        self.stats.consumed += len(messages)
        self.stats.batches += 1
        self.metrics.consumed.labels(view, self.input_topic).inc(len(messages))
        rows: list[dict[str, Any]] = []
        kept: list[Message] = []
        for message in messages:
            try:
                row = self.schema.decode(message.value())
            except RejectedEvent as exc:
                self._dead_letter(message, exc)
                continue
            if self.schema.created and self.schema.created not in row:
                # The broker's timestamp: the same on every replay, unlike "now".
                row[self.schema.created] = datetime.fromtimestamp(message.timestamp()[1] / 1e3, UTC)
            rows.append(row)
            kept.append(message)
        table, kept = self._transform(rows, kept)
        if table is not None and table.num_rows:
            if self.view.online:
                self.stats.online_rows_written += self._online.write(self.view, table)
            self._append_offline(table, kept)
            self._produce_rows(table, kept)
            self.stats.processed += table.num_rows
            self.metrics.rows.labels(view).inc(table.num_rows)
        self._flush()
        self._commit(messages)
        self.metrics.batch_seconds.labels(view).observe(time.perf_counter() - started)

    def _transform(
        self, rows: list[dict[str, Any]], messages: list[Message]
    ) -> tuple[pa.Table | None, list[Message]]:
        if not rows:
            return None, []
        try:
            return self._transform_rows(rows), messages
        except Exception as exc:  # one bad row fails the batch: find it, keep the rest
            log.debug("batch transform failed (%s); retrying row by row", exc)
        tables, kept = [], []
        for row, message in zip(rows, messages, strict=True):
            try:
                tables.append(self._transform_rows([row]))
            except RejectedEvent as exc:
                self._dead_letter(message, exc)
            except Exception as exc:
                self._dead_letter(message, RejectedEvent("transform_failed", f"transform: {exc}"))
            else:
                kept.append(message)
        if not tables:
            return None, []
        import pyarrow as pa

        return pa.concat_tables(tables), kept

    def _transform_rows(self, rows: list[dict[str, Any]]) -> pa.Table:
        table = self.schema.raw_table(rows)
        transform = self.view.transform
        if transform is not None:
            table = transform.apply(table)
        if table.num_rows != len(rows):
            raise RejectedEvent("transform_failed", "transform changed the number of rows")
        return self.schema.output_table(table)

    def _append_offline(self, table: pa.Table, messages: list[Message]) -> None:
        import pyarrow as pa

        by_partition: dict[tuple[str, int], list[int]] = {}
        for i, message in enumerate(messages):
            by_partition.setdefault((message.topic(), message.partition()), []).append(i)
        for (topic, partition), index in sorted(by_partition.items()):
            offsets = [messages[i].offset() for i in index]
            name = stream_part_name(topic, partition, min(offsets), max(offsets))
            part = table if len(index) == table.num_rows else table.take(pa.array(index))
            append_offline_log(self._artifacts, self.view.name, part, name=name)

    # -- producing ---------------------------------------------------------------------------

    def _on_delivery(self, err: Any, message: Message) -> None:
        topic = message.topic() or "?"
        if err is None:
            self.stats.delivered += 1
            self.stats.by_topic[topic] = self.stats.by_topic.get(topic, 0) + 1
            self.metrics.delivered.labels(self.view.name, topic).inc()
        else:
            self.stats.delivery_failed += 1
            self.metrics.delivery_failures.labels(self.view.name, topic).inc()
            log.error("delivery to %s failed: %s", topic, err)

    def _produce(self, topic: str, key: Any, value: bytes, headers: Any = None) -> None:
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=headers, on_delivery=self._on_delivery
                )
                return
            except BufferError:  # local queue full: serve delivery reports, then retry
                self._producer.poll(0.5)

    def _produce_rows(self, table: pa.Table, messages: list[Message]) -> None:
        keys = [n for n, _ in self.schema.keys]
        for row, message in zip(table.to_pylist(), messages, strict=True):
            key = json.dumps([row[k] for k in keys]) if len(keys) > 1 else str(row[keys[0]])
            value = json.dumps(row, default=_json_default, separators=(",", ":"))
            self._produce(self.output_topic, key.encode(), value.encode(), message.headers())

    def _dead_letter(self, message: Message, exc: RejectedEvent) -> None:
        headers = [
            *_headers(message),
            (HEADER_REASON, exc.kind.encode()),
            (HEADER_ERROR, exc.reason.encode()),
            ("x-shipyard-view", self.view.name.encode()),
            (
                "x-shipyard-source",
                f"{message.topic()}/{message.partition()}/{message.offset()}".encode(),
            ),
        ]
        self._produce(self.dead_letter_topic, message.key(), message.value() or b"", headers)
        self.stats.dead_lettered += 1
        self.metrics.dead_lettered.labels(self.view.name, exc.kind).inc()
        log.warning(
            "dead-lettered %s/%d@%d: %s",
            message.topic(),
            message.partition(),
            message.offset(),
            exc.reason,
        )

    def _flush(self, timeout: float = 60.0) -> None:
        pending = self._producer.flush(timeout)
        if pending:
            # Not committing means these messages are replayed after a restart.
            raise BackendError(
                f"{pending} messages to Kafka are still undelivered after {timeout:.0f} s.",
                hint=f"Check that the broker at {self.bootstrap} is reachable; the stream "
                "resumes from its last commit when restarted.",
            )

    def _commit(self, messages: list[Message]) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        ends: dict[tuple[str, int], int] = {}
        for message in messages:
            key = (message.topic(), message.partition())
            ends[key] = max(ends.get(key, -1), message.offset() + 1)
        offsets = [TopicPartition(t, p, o) for (t, p), o in sorted(ends.items())]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # Lost the partitions in a rebalance: their new owner replays these messages,
            # which the idempotent writes absorb.
            log.warning("commit failed, messages will be replayed: %s", exc)
            return
        for key, offset in ends.items():
            if key in self._assigned:
                self._assigned[key] = offset
        self.metrics.committed.labels(self.view.name, self.input_topic).inc(len(messages))
        self.metrics.last_commit.labels(self.view.name).set(time.time())
        self._update_lag()
