"""A small JSON producer for one Kafka topic that counts its delivery reports.

For components that emit records as a side effect (a model server's prediction log, an
audit trail): ``send`` never blocks on the broker, delivery reports are served on every
call, and ``flush`` says how many records are still in flight.

Example::

    with JsonProducer("localhost:9092", "predictions") as sink:
        sink.send({"request_id": "r1", "prediction": 0.93}, key="r1")
    sink.delivered, sink.failed
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from datetime import date, datetime
from types import TracebackType
from typing import Any

from shipyard.errors import BackendError

__all__ = ["JsonProducer"]

log = logging.getLogger(__name__)


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class JsonProducer:
    """Produce JSON values to ``topic``; thread-safe.

    Args:
        bootstrap: Kafka servers, ``host:port[,host:port]``.
        topic: Where every record goes.
        config: librdkafka producer settings merged over ``acks=all, linger.ms=5``.
        max_block: Seconds ``send`` waits for room when the local queue is full before
            raising ``BackendError`` (the broker is then unreachable or far behind).

    Attributes:
        delivered: Records the broker acknowledged.
        failed: Records the producer gave up on (see ``last_error``).
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        config: dict[str, Any] | None = None,
        max_block: float = 5.0,
    ) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self.max_block = max_block
        self.delivered = 0
        self.failed = 0
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._producer = Producer(
            {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, **(config or {})}
        )

    def __repr__(self) -> str:
        return (
            f"JsonProducer(topic={self.topic!r}, delivered={self.delivered}, failed={self.failed})"
        )

    def _on_delivery(self, err: Any, message: Any) -> None:
        with self._lock:
            if err is None:
                self.delivered += 1
            else:
                self.failed += 1
                self.last_error = str(err)
        if err is not None:
            log.error("delivery to %s failed: %s", self.topic, err)

    def send(
        self,
        value: Any,
        *,
        key: str | bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> None:
        """Queue ``value`` (anything JSON-serializable; datetimes and numpy values too)."""
        payload = json.dumps(value, default=_default, separators=(",", ":")).encode()
        encoded_key = key.encode() if isinstance(key, str) else key
        waited = 0.0
        while True:
            try:
                self._producer.produce(
                    self.topic,
                    value=payload,
                    key=encoded_key,
                    headers=list(headers) if headers else None,
                    on_delivery=self._on_delivery,
                )
                break
            except BufferError:
                if waited >= self.max_block:
                    raise BackendError(
                        f"Kafka producer queue for '{self.topic}' is full after "
                        f"{self.max_block:.0f} s.",
                        hint="Check that the brokers are reachable and keep up.",
                    ) from None
                self._producer.poll(0.1)
                waited += 0.1
        self._producer.poll(0)

    def poll(self, timeout: float = 0.0) -> int:
        """Serve pending delivery reports; returns how many were served."""
        return int(self._producer.poll(timeout))

    def flush(self, timeout: float = 30.0) -> int:
        """Wait until every queued record is delivered or failed, at most ``timeout``
        seconds; returns how many are still in flight (0 when all are settled)."""
        return int(self._producer.flush(timeout))

    def close(self, timeout: float = 30.0) -> int:
        """Flush; returns the records still in flight when giving up."""
        return self.flush(timeout)

    def __enter__(self) -> JsonProducer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
