"""The prediction log on a Kafka topic: each logged prediction as one JSON message.

Messages are the prediction log's rows (``ts`` in microseconds since the epoch), keyed by
request id, so a consumer joining labels later finds a request's prediction by key.
Delivery is asynchronous (librdkafka batches and retries); :meth:`KafkaPredictionSink.close`
waits for what is in flight.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from shipyard.errors import ConfigError
from shipyard.serving.protocol import dumps

__all__ = ["KafkaPredictionSink"]

logger = logging.getLogger("shipyard.serving")


class KafkaPredictionSink:
    """Produce prediction log rows to ``topic``.

    Example::

        sink = KafkaPredictionSink("127.0.0.1:9092", "predictions")
        sink.send(rows)
        sink.close()

    Args:
        bootstrap_servers: the brokers, ``host:port[,host:port]``.
        topic: the topic to write to (created by whoever runs the cluster).
        config: more librdkafka producer settings (``acks``, ``compression.type``...).

    Raises:
        ConfigError: confluent-kafka is not installed.
    """

    def __init__(
        self, bootstrap_servers: str, topic: str, config: Mapping[str, Any] | None = None
    ) -> None:
        try:
            from confluent_kafka import Producer
        except ImportError as exc:
            raise ConfigError(
                "Logging predictions to Kafka needs the confluent-kafka package.",
                hint='Run `pip install "shipyard[kafka]"`.',
            ) from exc
        settings = {
            "bootstrap.servers": bootstrap_servers,
            "linger.ms": 5,
            "compression.type": "lz4",
            "enable.idempotence": True,
            **(config or {}),
        }
        self.topic = topic
        self.failed = 0
        self._producer = Producer(settings)

    def __repr__(self) -> str:
        return f"KafkaPredictionSink(topic={self.topic!r})"

    def _delivered(self, error: Any, message: Any) -> None:
        if error is not None:
            self.failed += 1
            logger.warning("prediction log message to %s failed: %s", self.topic, error)

    def send(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Queue one message per row (non-blocking unless librdkafka's queue is full)."""
        for row in rows:
            key = str(row.get("request_id", "")).encode()
            while True:
                try:
                    self._producer.produce(
                        self.topic, value=dumps(row), key=key, on_delivery=self._delivered
                    )
                    break
                except BufferError:
                    self._producer.poll(0.1)  # the local queue is full: let it drain
        self._producer.poll(0)

    def close(self, timeout: float = 10.0) -> int:
        """Wait up to ``timeout`` seconds for queued messages; returns those still queued."""
        return int(self._producer.flush(timeout))
