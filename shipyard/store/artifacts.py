"""Artifact store: files under one root URL (file://, s3://, ...) through fsspec.

Keys are '/'-separated paths relative to the root and are checked by :func:`safe_key`, so
no key a user sends can reach outside the root. Writes stream in 1 MiB chunks and hash as
they go; on file:// they land under a temporary name first and are renamed into place, so
a crash never leaves half a file under its final key. On object stores the upload is only
committed once every byte is sent.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import os
import posixpath
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO
from urllib.parse import unquote, urlsplit, urlunsplit

from shipyard.errors import (
    ArtifactNotFoundError,
    ConfigError,
    IntegrityError,
    InvalidArgumentError,
)
from shipyard.types import ArtifactInfo

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = [
    "CHUNK_SIZE",
    "ArtifactStore",
    "mask_credentials",
    "safe_key",
]

#: Bytes read and written per step when streaming.
CHUNK_SIZE = 1024 * 1024

#: Prefix of in-flight files on file:// roots; listings never show them.
TMP_PREFIX = ".shipyard-tmp-"

_DRIVE = re.compile(r"^[A-Za-z]:")

#: Extra to install for protocols whose fsspec driver is a separate package.
_EXTRAS = {"s3": "s3", "s3a": "s3"}
_DRIVERS = {
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "az": "adlfs",
    "abfs": "adlfs",
    "abfss": "adlfs",
    "adl": "adlfs",
    "hdfs": "pyarrow",
    "sftp": "paramiko",
    "ssh": "paramiko",
}


def _show(key: str) -> str:
    """The key quoted for a message; control characters are escaped."""
    return f"'{key}'" if key.isprintable() else repr(key)


def _bad_key(key: str, why: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"Artifact key {_show(key)} {why}",
        hint="Use a relative '/'-separated path such as 'model/model.pkl', "
        "without '..', backslashes or a leading '/'.",
    )


def safe_key(key: str) -> str:
    """Check an artifact key and return it normalized ('a//./b/' -> 'a/b').

    Rejects empty keys, absolute paths, drive letters, '..' segments, backslashes and NUL
    bytes. This check is pure; :meth:`ArtifactStore.safe_key` adds the symlink check for
    file:// roots.

    Raises:
        InvalidArgumentError: the key is not a safe relative path.
    """
    if not isinstance(key, str):
        raise TypeError(f"artifact key must be str, not {type(key).__name__}")
    if "\x00" in key:
        raise _bad_key(key, "contains a NUL byte")
    if "\\" in key:
        raise _bad_key(key, "contains a backslash")
    if key.startswith("/"):
        raise _bad_key(key, "is absolute; it escapes the artifact root")
    if _DRIVE.match(key):
        raise _bad_key(key, "starts with a drive letter; it escapes the artifact root")
    parts = [part for part in key.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _bad_key(key, "escapes the artifact root")
    if not parts:
        raise _bad_key(key, "is empty")
    return "/".join(parts)


def _safe_prefix(prefix: str) -> str:
    """Like :func:`safe_key`, but '' (or '.') means the root itself."""
    return "" if prefix in ("", ".") else safe_key(prefix)


def mask_credentials(url: str) -> str:
    """The URL with any password in its netloc replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def _missing_driver(url: str, protocol: str, exc: Exception) -> ConfigError:
    if protocol in _EXTRAS:
        install = f'pip install "shipyard[{_EXTRAS[protocol]}]"'
    elif protocol in _DRIVERS:
        install = f"pip install {_DRIVERS[protocol]}"
    else:
        return ConfigError(
            f"Cannot open the artifact root {mask_credentials(url)}: {exc}.",
            hint="Install the fsspec driver for this protocol, or use a file:// root.",
        )
    return ConfigError(
        f"Cannot open the artifact root {mask_credentials(url)}: {exc}.",
        hint=f"Run `{install}`, or use a file:// root.",
    )


class _HashingReader:
    """Reads a file object in chunks, hashing and counting what passes through."""

    def __init__(self, fileobj: IO[bytes]) -> None:
        self._fileobj = fileobj
        self.sha256 = hashlib.sha256()
        self.size = 0

    def chunks(self) -> Iterator[bytes]:
        while chunk := self._fileobj.read(CHUNK_SIZE):
            self.sha256.update(chunk)
            self.size += len(chunk)
            yield chunk


class ArtifactStore:
    """Files under a root URL; every key is relative to it.

    Example::

        store = ArtifactStore("file:///srv/shipyard/artifacts")
        store = ArtifactStore("s3://bucket/shipyard", anon=False)  # pip install "shipyard[s3]"
        info = store.put_file("model.pkl", "ws/1/run/artifacts/model.pkl")

    Args:
        root_url: fsspec URL of the root; a plain path means file://.
        **storage_options: passed to the fsspec filesystem (credentials, endpoint, ...).

    Raises:
        ConfigError: the protocol's fsspec driver is not installed or unknown.
    """

    def __init__(self, root_url: str, **storage_options: Any) -> None:
        import fsspec.core

        if not root_url:
            raise ConfigError("The artifact root URL is empty.", hint="Set SHIPYARD_ARTIFACTS.")
        protocol = fsspec.core.split_protocol(root_url)[0] or "file"
        self.storage_options = storage_options
        try:
            if protocol in ("file", "local"):
                import fsspec.implementations.local

                self._fs: AbstractFileSystem = fsspec.implementations.local.LocalFileSystem()
                path = unquote(urlsplit(root_url).path) if "://" in root_url else root_url
                self._root = os.path.abspath(os.path.expanduser(path))
                self.root_url = Path(self._root).as_uri()
            else:
                self._fs, root = fsspec.core.url_to_fs(root_url, **storage_options)
                self._root = root.rstrip("/")
                self.root_url = root_url if root_url.endswith("://") else root_url.rstrip("/")
        except (ImportError, ValueError) as exc:
            raise _missing_driver(root_url, protocol, exc) from exc
        self.is_local = protocol in ("file", "local")

    @classmethod
    def from_url(cls, url: str, **storage_options: Any) -> tuple[ArtifactStore, str]:
        """Split a full artifact URL into a store on its parent and the last segment's key.

        ``ArtifactStore.from_url("file:///a/run/artifacts/model")`` returns a store rooted at
        ``file:///a/run/artifacts`` and the key ``"model"``, ready for ``get_dir``/``get_file``.

        Raises:
            InvalidArgumentError: the URL names no file or folder below a root.
        """
        root, _, key = url.rstrip("/").rpartition("/")
        if root in ("file://", "local://"):
            root += "/"
        if not key or not root or root.endswith(("://", ":/", ":")):
            raise InvalidArgumentError(
                f"Artifact URL '{mask_credentials(url)}' names no file or folder.",
                hint="Pass a URL such as file:///srv/artifacts/run/model or s3://bucket/key.",
            )
        store = cls(root, **storage_options)
        return store, safe_key(unquote(key) if store.is_local else key)

    def __repr__(self) -> str:
        return f"ArtifactStore('{mask_credentials(self.root_url)}')"

    # -- keys and paths -------------------------------------------------------------------

    def safe_key(self, key: str) -> str:
        """:func:`safe_key`, plus on file:// a check that symlinks do not lead outside."""
        key = safe_key(key)
        if self.is_local:
            self._check_inside(key)
        return key

    def _check_inside(self, key: str) -> None:
        if self._escapes(os.path.join(self._root, key)):
            raise _bad_key(key, "escapes the artifact root through a symlink")

    def _escapes(self, fs_path: str) -> bool:
        root = os.path.realpath(self._root)
        return os.path.commonpath([root, os.path.realpath(fs_path)]) != root

    def _path(self, key: str) -> str:
        return f"{self._root}/{self.safe_key(key)}"

    def _prefix_path(self, prefix: str) -> tuple[str, str]:
        prefix = _safe_prefix(prefix)
        if not prefix:
            return "", self._root
        return prefix, self._path(prefix)

    def _key_of(self, fs_path: str) -> str:
        root = self._fs._strip_protocol(self._root).rstrip("/")
        path = self._fs._strip_protocol(fs_path)
        return posixpath.relpath(path, root) if root else path.lstrip("/")

    def url_for(self, key: str) -> str:
        """The full URL of ``key`` (file:// URLs are percent-encoded like Path.as_uri())."""
        key = self.safe_key(key)
        if self.is_local:
            return Path(self._root, key).as_uri()
        return f"{self.root_url.rstrip('/')}/{key}" if self._root else f"{self.root_url}{key}"

    # -- writing --------------------------------------------------------------------------

    def put_stream(self, fileobj: IO[bytes], key: str) -> ArtifactInfo:
        """Store everything read from ``fileobj`` under ``key``, streamed in chunks."""
        key = self.safe_key(key)
        reader = _HashingReader(fileobj)
        if self.is_local:
            self._write_local(key, reader)
        else:
            self._write_remote(key, reader)
        return ArtifactInfo(path=key, size=reader.size, sha256=reader.sha256.hexdigest())

    def _write_local(self, key: str, reader: _HashingReader) -> None:
        final = os.path.join(self._root, key)
        directory = os.path.dirname(final)
        os.makedirs(directory, exist_ok=True)
        self._check_inside(key)  # a symlink may have appeared while creating parents
        tmp = os.path.join(directory, f"{TMP_PREFIX}{uuid.uuid4().hex}")
        try:
            with open(tmp, "wb") as out:
                for chunk in reader.chunks():
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _write_remote(self, key: str, reader: _HashingReader) -> None:
        # autocommit=False: object stores publish the object only on commit(), so a failed
        # stream is discarded instead of leaving a truncated object under the key.
        out = self._fs.open(f"{self._root}/{key}", "wb", autocommit=False)
        try:
            for chunk in reader.chunks():
                out.write(chunk)
        except BaseException:
            with contextlib.suppress(Exception):
                out.discard()
            raise
        out.close()
        out.commit()

    def put_bytes(self, data: bytes, key: str) -> ArtifactInfo:
        """Store ``data`` under ``key``."""
        import io

        return self.put_stream(io.BytesIO(data), key)

    def put_file(self, local_path: str | os.PathLike[str], key: str) -> ArtifactInfo:
        """Copy a local file to ``key``, streamed; the local file is never read whole."""
        with open(local_path, "rb") as src:
            return self.put_stream(src, key)

    def put_dir(self, local_dir: str | os.PathLike[str], prefix: str = "") -> list[ArtifactInfo]:
        """Upload every file under ``local_dir`` to ``prefix/<relative path>``, sorted."""
        base = Path(local_dir)
        if not base.is_dir():
            raise InvalidArgumentError(f"'{base}' is not a directory.")
        prefix = _safe_prefix(prefix)
        infos = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                rel = Path(dirpath, name).relative_to(base).as_posix()
                key = f"{prefix}/{rel}" if prefix else rel
                infos.append(self.put_file(Path(dirpath, name), key))
        return infos

    # -- reading --------------------------------------------------------------------------

    def _not_found(self, key: str) -> ArtifactNotFoundError:
        return ArtifactNotFoundError(
            f"Artifact '{key}' does not exist in {self!r}.",
            hint="List what is stored with ArtifactStore.list() or `shipyard runs artifacts`.",
        )

    def open(self, key: str) -> BinaryIO:
        """Open ``key`` for reading in binary mode; close it (or use ``with``) when done."""
        key = self.safe_key(key)
        try:
            return self._fs.open(f"{self._root}/{key}", "rb")  # type: ignore[no-any-return]
        except FileNotFoundError as exc:
            raise self._not_found(key) from exc
        except IsADirectoryError as exc:
            raise InvalidArgumentError(
                f"Artifact '{key}' is a folder, not a file.",
                hint="Download folders with get_dir(), or list them with list().",
            ) from exc

    def read_bytes(self, key: str) -> bytes:
        """The whole content of ``key``; prefer :meth:`open` or :meth:`get_file` when large."""
        with self.open(key) as src:
            return src.read()

    def get_file(
        self,
        key: str,
        dest: str | os.PathLike[str],
        expected_sha256: str | None = None,
    ) -> Path:
        """Download ``key`` to ``dest`` (a file path, or an existing folder to put it in).

        The file is streamed to a temporary name next to ``dest`` and renamed into place
        once its sha256 matches ``expected_sha256`` (when given).

        Raises:
            ArtifactNotFoundError: ``key`` does not exist.
            IntegrityError: the downloaded bytes do not match ``expected_sha256``.
        """
        key = self.safe_key(key)
        target = Path(dest)
        if target.is_dir():
            target = target / posixpath.basename(key)
        tmp = target.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}")
        with self.open(key) as src:
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with builtins.open(tmp, "wb") as out:
                    reader = _HashingReader(src)
                    for chunk in reader.chunks():
                        out.write(chunk)
                digest = reader.sha256.hexdigest()
                if expected_sha256 is not None and digest != expected_sha256:
                    raise IntegrityError(
                        f"Artifact '{key}' is corrupted: its sha256 is {digest} but "
                        f"{expected_sha256} was recorded.",
                        hint="Upload the artifact again; the stored copy was modified "
                        "or truncated.",
                    )
                os.replace(tmp, target)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
        return target

    def get_dir(self, prefix: str, dest: str | os.PathLike[str]) -> Path:
        """Download every file under ``prefix`` into ``dest``, keeping relative paths."""
        prefix, _ = self._prefix_path(prefix)
        target = Path(dest)
        infos = self.list(prefix, recursive=True)
        if not infos and prefix and not self.exists(prefix):
            raise self._not_found(prefix)
        if len(infos) == 1 and infos[0].path == prefix:
            raise InvalidArgumentError(
                f"Artifact '{prefix}' is a file, not a folder.",
                hint="Download single files with get_file().",
            )
        for info in infos:
            rel = info.path[len(prefix) :].lstrip("/") if prefix else info.path
            self.get_file(info.path, target / rel)
        target.mkdir(parents=True, exist_ok=True)
        return target

    def _to_info(self, entry: dict[str, Any]) -> ArtifactInfo:
        is_dir = entry.get("type") == "directory"
        size = 0 if is_dir else int(entry.get("size") or 0)
        return ArtifactInfo(path=self._key_of(entry["name"]), size=size, sha256="", is_dir=is_dir)

    def list(self, prefix: str = "", recursive: bool = False) -> builtins.list[ArtifactInfo]:
        """What is stored under ``prefix``, sorted by key.

        Non-recursive listings include folders (``is_dir=True``); recursive ones list every
        file. Hashes are not computed here (``sha256`` is ""); use :meth:`info` for one file.
        A prefix that does not exist lists nothing.
        """
        prefix, path = self._prefix_path(prefix)
        try:
            if recursive:
                entries = list(self._fs.find(path, detail=True).values())
            else:
                entries = self._fs.ls(path, detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return []
        infos = [
            self._to_info(entry)
            for entry in entries
            if not posixpath.basename(entry["name"].rstrip("/")).startswith(TMP_PREFIX)
            and not (entry.get("islink") and self._escapes(entry["name"]))
        ]
        # Some stores list a folder's own marker; a file prefix lists the file itself.
        infos = [i for i in infos if not (i.is_dir and i.path in (prefix, "", "."))]
        return sorted(infos, key=lambda i: i.path)

    def info(self, key: str, *, checksum: bool = True) -> ArtifactInfo:
        """Size and (when ``checksum``) sha256 of ``key``, hashed by streaming it."""
        key = self.safe_key(key)
        try:
            entry = self._fs.info(f"{self._root}/{key}")
        except FileNotFoundError as exc:
            raise self._not_found(key) from exc
        info = self._to_info(entry)
        if info.is_dir or not checksum:
            return info
        with self.open(key) as src:
            reader = _HashingReader(src)
            for _ in reader.chunks():
                pass
        return ArtifactInfo(path=key, size=reader.size, sha256=reader.sha256.hexdigest())

    def exists(self, key: str) -> bool:
        """Whether ``key`` names a stored file or folder."""
        return bool(self._fs.exists(self._path(key)))

    def delete(self, prefix: str, *, missing_ok: bool = False) -> None:
        """Delete the file ``prefix``, or everything under the folder ``prefix``.

        Raises:
            ArtifactNotFoundError: nothing is stored there and ``missing_ok`` is False.
        """
        path = self._path(prefix)
        try:
            self._fs.rm(path, recursive=True)
        except FileNotFoundError as exc:
            if not missing_ok:
                raise self._not_found(safe_key(prefix)) from exc
