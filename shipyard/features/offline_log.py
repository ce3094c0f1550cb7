"""The offline log of a view: Parquet files of rows that arrived by push or stream.

Rows written to the online store from a push or a Kafka stream are also appended here, so
point-in-time joins and later materializations see them. Each append is one immutable
Parquet file under the artifact store::

    features/offline-log/<view>/part-<ts_ms>-<uuid8>.parquet             (push, SDK)
    features/offline-log/<view>/stream-<topic>-<partition>-<first>-<last>.parquet

Stream files name the Kafka offsets they hold (20-digit, zero padded). A consumer that
restarts after a crash resumes at its committed offset and first removes the files of
that partition starting at or after it (:func:`discard_uncommitted`), so replayed
messages are never logged twice.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import TYPE_CHECKING

from shipyard.store.artifacts import ArtifactStore

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "OFFLINE_LOG_PREFIX",
    "append_offline_log",
    "discard_uncommitted",
    "offline_log_prefix",
    "stream_part_name",
]

#: Folder under the artifact root that holds every view's offline log.
OFFLINE_LOG_PREFIX = "features/offline-log"

_OFFSETS = re.compile(r"^(\d{20})-(\d{20})\.parquet$")


def offline_log_prefix(view_name: str) -> str:
    """The artifact key of a view's offline log folder."""
    return f"{OFFLINE_LOG_PREFIX}/{view_name}"


def _store(artifacts: ArtifactStore | str) -> ArtifactStore:
    return artifacts if isinstance(artifacts, ArtifactStore) else ArtifactStore(artifacts)


def stream_part_name(topic: str, partition: int, first_offset: int, last_offset: int) -> str:
    """The file name of the rows a stream consumed from ``topic[partition]`` at offsets
    ``first_offset..last_offset`` (both included)."""
    return f"stream-{topic}-{partition}-{first_offset:020d}-{last_offset:020d}.parquet"


def append_offline_log(
    artifacts: ArtifactStore | str,
    view_name: str,
    table: pa.Table,
    *,
    name: str | None = None,
) -> str | None:
    """Append ``table`` to the view's offline log as one new Parquet file.

    Args:
        artifacts: The artifact store, or its root URL (``settings.artifacts``).
        view_name: The feature view the rows belong to.
        table: Rows with the view's columns (join keys, event time, features).
        name: File name; default ``part-<ts_ms>-<uuid8>.parquet``. Writing a name again
            replaces that file, which makes a retried append idempotent.

    Returns:
        The key of the file written, or None when ``table`` has no rows.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if table.num_rows == 0:
        return None
    name = name or f"part-{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}.parquet"
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    key = f"{offline_log_prefix(view_name)}/{name}"
    # put_bytes lands under a temporary name and renames, so readers never see half a file.
    _store(artifacts).put_bytes(sink.getvalue().to_pybytes(), key)
    return key


def discard_uncommitted(
    artifacts: ArtifactStore | str, view_name: str, topic: str, partition: int, committed: int
) -> list[str]:
    """Delete the stream files of ``topic[partition]`` that start at or after ``committed``.

    Their messages were logged but never committed (the consumer died in between), so the
    consumer is about to process them again. Returns the keys deleted.
    """
    store = _store(artifacts)
    head = f"stream-{topic}-{partition}-"
    deleted = []
    for info in store.list(offline_log_prefix(view_name)):
        base = info.path.rsplit("/", 1)[-1]
        match = _OFFSETS.match(base[len(head) :]) if base.startswith(head) else None
        if match and int(match.group(1)) >= committed:
            store.delete(info.path, missing_ok=True)
            deleted.append(info.path)
    return deleted
