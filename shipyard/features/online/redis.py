"""The scale-out online store on Redis (redis-py with hiredis): one hash per view and
entity key, ``<prefix>fv:<view>:<entity key>``, holding the event time (``_ts``), the
created time (``_cr``) and one field per non-null feature.

Writes are a server-side Lua script over many rows at once, sent in a pipeline: the
compare-and-replace (newer event time wins, then newer created time) runs atomically on
the server. Reads are one HMGET per key, pipelined in one round trip; the commands are
encoded directly (Lua's per-call cost on the server, and redis-py's per-command cost in a
Pipeline, are each several times the cost of the lookups themselves).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from shipyard.errors import BackendError, ConfigError
from shipyard.features.online.base import (
    ReadResult,
    entity_keys_of,
    from_micros,
    prepare_write,
    read_result,
    require_features,
    to_micros,
)
from shipyard.store.artifacts import mask_credentials

if TYPE_CHECKING:
    import pyarrow as pa
    import redis as redis_lib

    from shipyard.features.definitions import FeatureView

__all__ = ["DEFAULT_PREFIX", "RedisOnlineStore"]

#: Prefix of every key the store writes, unless the URL sets ``?key_prefix=``.
DEFAULT_PREFIX = "shipyard:"

#: Rows per script call: large enough to amortize the call, small enough not to block
#: the server for long.
WRITE_BATCH = 2000

# KEYS: one hash per row. ARGV per row: event ts, created ts, n, then n items: the
# field/value pairs of the row's non-null features. Returns how many rows were stored.
_WRITE = """
local pos = 1
local written = 0
for i = 1, #KEYS do
  local ts = tonumber(ARGV[pos])
  local cr = tonumber(ARGV[pos + 1])
  local n = tonumber(ARGV[pos + 2])
  local old = redis.call('HMGET', KEYS[i], '_ts', '_cr')
  local ots = tonumber(old[1])
  if not ots or ts > ots or (ts == ots and cr >= tonumber(old[2])) then
    if ots then redis.call('DEL', KEYS[i]) end
    redis.call('HSET', KEYS[i], '_ts', ARGV[pos], '_cr', ARGV[pos + 1],
               unpack(ARGV, pos + 3, pos + 2 + n))
    written = written + 1
  end
  pos = pos + 3 + n
end
return written
"""


def _decode_bytes(value: bytes) -> str:
    return value.decode()


def _decode_bool(value: bytes) -> bool:
    return value == b"1"


def _decode_ts(value: bytes) -> datetime:
    return from_micros(int(value))


_DECODERS: dict[str, Any] = {
    "Float32": float,
    "Float64": float,
    "Int32": int,
    "Int64": int,
    "String": _decode_bytes,
    "Bytes": None,
    "Bool": _decode_bool,
    "UnixTimestamp": _decode_ts,
}


def _glob_escape(text: str) -> str:
    return re.sub(r"([\\*?\[\]])", r"\\\1", text)


class RedisOnlineStore:
    """Online store on a Redis server.

    Example::

        store = open_online_store("redis://cache:6379/0")
        store = open_online_store("redis://:secret@cache:6379/0?key_prefix=team-a:")

    Args:
        url: ``redis://`` or ``rediss://`` URL; ``?key_prefix=`` sets the prefix of every
            key (default ``shipyard:``), so several stores can share one database.
    """

    def __init__(self, url: str) -> None:
        try:
            import redis as redis_lib
        except ImportError as exc:
            raise ConfigError(
                "The Redis online store needs the redis package.",
                hint='pip install "shipyard[redis]"',
            ) from exc
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        prefix = [v for k, v in query if k == "key_prefix"]
        self.key_prefix = prefix[-1] if prefix else DEFAULT_PREFIX
        rest = urlencode([(k, v) for k, v in query if k != "key_prefix"])
        self.url = url
        try:
            self._redis: redis_lib.Redis = redis_lib.Redis.from_url(
                urlunsplit(parts._replace(query=rest)), socket_timeout=30
            )
        except ValueError as exc:
            raise ConfigError(f"Invalid Redis URL '{mask_credentials(url)}': {exc}") from exc
        self._errors = (redis_lib.RedisError,)
        self._write_script = self._redis.register_script(_WRITE)

    @classmethod
    def from_url(cls, url: str) -> RedisOnlineStore:
        return cls(url)

    def __repr__(self) -> str:
        return f"RedisOnlineStore('{mask_credentials(self.url)}')"

    def _key(self, view_name: str, key: str) -> str:
        return f"{self.key_prefix}fv:{view_name}:{key}"

    def _fail(self, what: str, exc: Exception) -> BackendError:
        return BackendError(f"{self!r} failed {what}: {exc}")

    # -- rows -----------------------------------------------------------------------------

    def write(self, view: FeatureView, table: pa.Table) -> int:
        """Store the rows of ``table``; an older row never replaces a newer one."""
        batch = prepare_write(view, table)
        if not len(batch):
            return 0
        columns = [
            (name, [int(v) if isinstance(v, bool) else v for v in values])
            if batch.dtypes[name].name == "Bool"
            else (name, values)
            for name, values in batch.features.items()
        ]
        keys = [self._key(view.name, k) for k in batch.keys]
        try:
            pipe = self._redis.pipeline(transaction=False)
            for start in range(0, len(keys), WRITE_BATCH):
                args: list[Any] = []
                for i in range(start, min(start + WRITE_BATCH, len(keys))):
                    pairs: list[Any] = []
                    for name, values in columns:
                        if values[i] is not None:
                            pairs += (name, values[i])
                    args += (batch.event_us[i], batch.created_us[i], len(pairs), *pairs)
                self._write_script(keys=keys[start : start + WRITE_BATCH], args=args, client=pipe)
            return sum(int(n) for n in pipe.execute())
        except self._errors as exc:
            raise self._fail(f"writing view '{view.name}'", exc) from exc

    def read(
        self,
        view: FeatureView,
        feature_names: Sequence[str],
        entity_keys: Sequence[tuple[Any, ...]],
        *,
        now: datetime | None = None,
    ) -> ReadResult:
        """Values, statuses and event times of ``feature_names`` for ``entity_keys``."""
        features = require_features(view, feature_names)
        keys = entity_keys_of(view, entity_keys)
        try:
            replies = self._hmget_many(view.name, keys, ["_ts", *feature_names])
        except self._errors as exc:
            raise self._fail(f"reading view '{view.name}'", exc) from exc
        rows: list[Any] = [
            None if reply[0] is None else (key, int(reply[0]), *reply[1:])
            for key, reply in zip(keys, replies, strict=True)
        ]
        converters = [_DECODERS.get(features[f].name) for f in feature_names]
        return read_result(view, feature_names, rows, now, converters)

    def _hmget_many(self, view_name: str, keys: Sequence[str], fields: Sequence[str]) -> list[Any]:
        """One HMGET per key, sent as one pipelined write and read back in order.

        The commands are encoded here once (the fields part is shared by every key), which
        costs a fraction of building a redis-py Pipeline of 100 commands.
        """
        if not keys:
            return []
        encoded = [f.encode() for f in fields]
        tail = b"".join(b"$%d\r\n%s\r\n" % (len(f), f) for f in encoded)
        head = b"*%d\r\n$5\r\nHMGET\r\n" % (len(encoded) + 2)
        parts = []
        for key in keys:
            name = self._key(view_name, key).encode()
            parts.append(b"%s$%d\r\n%s\r\n%s" % (head, len(name), name, tail))
        pool = self._redis.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_packed_command([b"".join(parts)], check_health=False)
            return [conn.read_response() for _ in keys]
        except BaseException:
            # Replies may be left unread on the socket: never hand it back to the pool.
            conn.disconnect()
            raise
        finally:
            pool.release(conn)

    # -- watermarks -----------------------------------------------------------------------

    def get_watermark(self, view_name: str) -> datetime | None:
        try:
            value = self._redis.hget(f"{self.key_prefix}watermarks", view_name)
        except self._errors as exc:
            raise self._fail("reading a watermark", exc) from exc
        return None if value is None else from_micros(int(value))

    def set_watermark(self, view_name: str, ts: datetime) -> None:
        try:
            self._redis.hset(f"{self.key_prefix}watermarks", view_name, to_micros(ts))
        except self._errors as exc:
            raise self._fail("writing a watermark", exc) from exc

    def delete_view(self, view_name: str) -> None:
        pattern = _glob_escape(self._key(view_name, "")) + "*"
        try:
            for chunk in _chunks(self._redis.scan_iter(match=pattern, count=1000), 1000):
                self._redis.delete(*chunk)
            self._redis.hdel(f"{self.key_prefix}watermarks", view_name)
        except self._errors as exc:
            raise self._fail(f"deleting view '{view_name}'", exc) from exc

    def close(self) -> None:
        self._redis.close()


def _chunks(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
