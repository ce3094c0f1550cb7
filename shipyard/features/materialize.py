"""Materialization: copy the latest offline row per entity of each online view into the
online store, for a time range or incrementally from the view's stored watermark.

The offline store (DuckDB) does the heavy part, ``read_latest`` picking one row per
entity in the range; the online write is idempotent by (entity, event time), so running a
range twice, or overlapping ranges, never lets an older row replace a newer one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError
from shipyard.features.online.base import EPOCH

if TYPE_CHECKING:
    from shipyard.features.definitions import FeatureView
    from shipyard.features.online import OnlineStore
    from shipyard.features.store import FeatureStore

__all__ = ["WRITE_CHUNK", "Progress", "materialize", "materialize_incremental", "online_views"]

logger = logging.getLogger(__name__)

#: Rows per online write, so progress advances and memory stays flat on huge ranges.
WRITE_CHUNK = 100_000

#: ``progress(view_name, rows_done, rows_total)``, called after each written chunk.
Progress = Callable[[str, int, int], None]


def _utc(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidArgumentError(f"'{name}' must be a datetime, not {value!r}.")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def online_store_of(store: FeatureStore) -> OnlineStore:
    """The online store a FeatureStore writes to."""
    return store.online_store


def online_views(
    store: FeatureStore, views: Sequence[str | FeatureView] | None
) -> list[FeatureView]:
    """The views to materialize: the named ones (which must be online), or every online
    view when ``views`` is None."""
    if views is None:
        return [v for v in store.list_feature_views() if v.online]
    chosen = []
    for item in views:
        view = store.get_feature_view(item) if isinstance(item, str) else item
        if not view.online:
            raise InvalidArgumentError(
                f"View '{view.name}' is offline only (online=False); it cannot be materialized.",
                hint="Set online=True on the view and apply it, or leave it out.",
            )
        chosen.append(view)
    return chosen


def _copy(
    store: FeatureStore,
    online: OnlineStore,
    view: FeatureView,
    start: datetime,
    end: datetime,
    progress: Progress | None,
) -> dict[str, Any]:
    from shipyard.features.offline import read_latest

    table = read_latest(view, start, end, artifacts_url=store.settings.artifacts)
    total = table.num_rows
    written = 0
    if progress is not None:
        progress(view.name, 0, total)
    for offset in range(0, total, WRITE_CHUNK):
        written += online.write(view, table.slice(offset, WRITE_CHUNK))
        if progress is not None:
            progress(view.name, min(offset + WRITE_CHUNK, total), total)
    mark = online.get_watermark(view.name)
    if mark is None or end > mark:
        online.set_watermark(view.name, end)
    logger.info(
        "materialized %s: %d rows in [%s, %s), %d written", view.name, total, start, end, written
    )
    return {"start": start, "end": end, "rows": total, "written": written}


def materialize(
    store: FeatureStore,
    views: Sequence[str | FeatureView] | None,
    start: datetime,
    end: datetime,
    *,
    progress: Progress | None = None,
) -> dict[str, dict[str, Any]]:
    """Load the latest row per entity with event time in ``[start, end)`` of each view
    into the online store, then move each view's watermark up to ``end``.

    Args:
        store: the FeatureStore (registry, offline and online stores).
        views: view names or objects; None means every online view.
        start: start of the range (naive means UTC).
        end: end of the range, excluded.
        progress: called with ``(view, rows_done, rows_total)`` as rows are written.

    Returns:
        Per view: ``start``, ``end``, ``rows`` read and ``written`` (rows that replaced an
        older online row).

    Raises:
        InvalidArgumentError: ``start`` is not before ``end``, or a view is offline only.
    """
    start, end = _utc(start, "start"), _utc(end, "end")
    if start >= end:
        raise InvalidArgumentError(
            f"The start {start.isoformat()} is not before the end {end.isoformat()}.",
            hint="Pass start < end; the range includes start and excludes end.",
        )
    online = online_store_of(store)
    return {
        view.name: _copy(store, online, view, start, end, progress)
        for view in online_views(store, views)
    }


def materialize_incremental(
    store: FeatureStore,
    end: datetime,
    views: Sequence[str | FeatureView] | None = None,
    *,
    progress: Progress | None = None,
) -> dict[str, dict[str, Any]]:
    """Materialize each view from its watermark (the end of its last materialized range)
    to ``end``. A view never materialized starts at ``end - ttl`` (the oldest row that can
    still be served), or at the epoch when it has no TTL. Views already at ``end`` are
    skipped (reported with 0 rows)."""
    end = _utc(end, "end")
    online = online_store_of(store)
    results: dict[str, dict[str, Any]] = {}
    for view in online_views(store, views):
        start = online.get_watermark(view.name)
        if start is None:
            start = end - view.ttl if view.ttl else EPOCH
            start = max(start, EPOCH)
        if start >= end:
            results[view.name] = {"start": start, "end": end, "rows": 0, "written": 0}
            continue
        results[view.name] = _copy(store, online, view, start, end, progress)
    return results
