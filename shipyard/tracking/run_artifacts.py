"""Run artifacts: files logged for a run, stored in the artifact store and recorded on the
run with their size and sha256.

:class:`LocalRunArtifacts` writes to the ArtifactStore directly; :class:`HttpRunArtifacts`
streams through the platform server. Both verify every download against the recorded
sha256, so a corrupted or truncated file never reaches a caller.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, unquote

from shipyard.errors import ArtifactNotFoundError, IntegrityError, InvalidArgumentError
from shipyard.types import ArtifactInfo

if TYPE_CHECKING:
    from shipyard._http import HttpSession
    from shipyard.store.artifacts import ArtifactStore
    from shipyard.tracking.store import TrackingStore

__all__ = ["HttpRunArtifacts", "LocalRunArtifacts", "RunArtifacts"]

_CHUNK = 1024 * 1024
_TMP_PREFIX = ".shipyard-tmp-"


class RunArtifacts(Protocol):
    """Log and fetch the files of a run."""

    def log_artifact(
        self, run_id: str, local_path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> ArtifactInfo: ...
    def log_artifacts(
        self, run_id: str, local_dir: str | os.PathLike[str], artifact_path: str | None = None
    ) -> list[ArtifactInfo]: ...
    def log_bytes(self, run_id: str, data: bytes, artifact_path: str) -> ArtifactInfo: ...
    def list_artifacts(self, run_id: str, path: str = "") -> list[ArtifactInfo]: ...
    def download_artifacts(
        self, run_id: str, path: str = "", dst: str | os.PathLike[str] | None = None
    ) -> Path: ...


def _join(artifact_path: str | None, name: str) -> str:
    from shipyard.store.artifacts import safe_key

    return safe_key(f"{artifact_path.strip('/')}/{name}" if artifact_path else name)


def _file(local_path: str | os.PathLike[str]) -> Path:
    source = Path(local_path)
    if not source.is_file():
        raise InvalidArgumentError(
            f"'{source}' is not a file.", hint="Use log_artifacts() to log a whole folder."
        )
    return source


def _dir_files(local_dir: Path) -> Iterator[tuple[Path, str]]:
    """Every file under ``local_dir`` with its '/'-separated relative path, sorted."""
    if not local_dir.is_dir():
        raise InvalidArgumentError(f"'{local_dir}' is not a directory.")
    for dirpath, dirnames, filenames in os.walk(local_dir):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath, name)
            yield full, full.relative_to(local_dir).as_posix()


def _destination(dst: str | os.PathLike[str] | None) -> Path:
    if dst is None:
        return Path(tempfile.mkdtemp(prefix="shipyard-artifacts-"))
    target = Path(dst)
    target.mkdir(parents=True, exist_ok=True)
    return target


def _files_under(list_artifacts: _Lister, run_id: str, path: str) -> list[ArtifactInfo]:
    """The recorded files at ``path``: the file itself, or every file below the folder."""
    path = path.strip("/")
    if path:
        parent = posixpath.dirname(path)
        for info in list_artifacts(run_id, parent):
            if info.path == path and not info.is_dir:
                return [info]
    files: list[ArtifactInfo] = []
    pending = [path]
    while pending:
        for info in list_artifacts(run_id, pending.pop()):
            if info.is_dir:
                pending.append(info.path)
            else:
                files.append(info)
    if path and not files:
        raise ArtifactNotFoundError(
            f"Run '{run_id}' has no artifact '{path}'.",
            hint="List what the run has with list_artifacts(run_id).",
        )
    return sorted(files, key=lambda i: i.path)


class _Lister(Protocol):
    def __call__(self, run_id: str, path: str = "") -> list[ArtifactInfo]: ...


def _local_target(root: Path, info: ArtifactInfo) -> Path:
    # The run's relative path is kept below ``root``, as MLflow does: root/model/model.pkl.
    return root.joinpath(*info.path.split("/"))


class LocalRunArtifacts:
    """Run artifacts written straight to the ArtifactStore under the run's artifact_uri.

    Args:
        tracking: the tracking store the files are recorded in.
        root_url: the artifact root (``SHIPYARD_ARTIFACTS``); a run whose artifact_uri is
            elsewhere (a custom experiment ``artifact_location``) gets a store of its own.
    """

    def __init__(self, tracking: TrackingStore, root_url: str) -> None:
        from shipyard.store.artifacts import ArtifactStore

        self.tracking = tracking
        self.root_url = root_url.rstrip("/")
        self._root = ArtifactStore(root_url)
        self._stores: dict[str, tuple[ArtifactStore, str]] = {}

    def __repr__(self) -> str:
        return f"LocalRunArtifacts({self._root!r})"

    def _store(self, run_id: str) -> tuple[ArtifactStore, str]:
        """The store holding the run's files and the key prefix of its artifacts."""
        found = self._stores.get(run_id)
        if found is not None:
            return found
        from shipyard.store.artifacts import ArtifactStore

        uri = self.tracking.get_run(run_id).info.artifact_uri.rstrip("/")
        for root in (self.root_url, self._root.root_url):
            if uri.startswith(f"{root}/"):
                rest = uri[len(root) + 1 :]
                found = (self._root, unquote(rest) if self._root.is_local else rest)
                break
        else:
            found = ArtifactStore.from_url(uri)
        self._stores[run_id] = found
        return found

    def _record(self, run_id: str, prefix: str, stored: list[ArtifactInfo]) -> list[ArtifactInfo]:
        infos = [
            ArtifactInfo(path=s.path[len(prefix) + 1 :], size=s.size, sha256=s.sha256)
            for s in stored
        ]
        self.tracking.record_artifacts(run_id, infos)
        return infos

    def log_artifact(
        self, run_id: str, local_path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> ArtifactInfo:
        """Store one local file as ``artifact_path/<file name>`` of the run."""
        source = _file(local_path)
        key = _join(artifact_path, source.name)
        store, prefix = self._store(run_id)
        return self._record(run_id, prefix, [store.put_file(source, f"{prefix}/{key}")])[0]

    def log_artifacts(
        self, run_id: str, local_dir: str | os.PathLike[str], artifact_path: str | None = None
    ) -> list[ArtifactInfo]:
        """Store every file under ``local_dir`` below ``artifact_path``, keeping the tree."""
        store, prefix = self._store(run_id)
        stored = [
            store.put_file(full, f"{prefix}/{_join(artifact_path, rel)}")
            for full, rel in _dir_files(Path(local_dir))
        ]
        return self._record(run_id, prefix, stored)

    def log_bytes(self, run_id: str, data: bytes, artifact_path: str) -> ArtifactInfo:
        """Store ``data`` as the run's file ``artifact_path``."""
        key = _join(None, artifact_path)
        store, prefix = self._store(run_id)
        return self._record(run_id, prefix, [store.put_bytes(data, f"{prefix}/{key}")])[0]

    def list_artifacts(self, run_id: str, path: str = "") -> list[ArtifactInfo]:
        """Recorded files and folders directly under ``path``."""
        return self.tracking.list_artifacts(run_id, path)

    def download_artifacts(
        self, run_id: str, path: str = "", dst: str | os.PathLike[str] | None = None
    ) -> Path:
        """Copy a file or folder of the run to ``dst`` (a new temp folder when None).

        Returns:
            The local file when ``path`` names a file, else the folder holding the tree.

        Raises:
            ArtifactNotFoundError: the run has nothing at ``path``.
            IntegrityError: a stored file no longer matches its recorded sha256.
        """
        path = path.strip("/")
        files = _files_under(self.tracking.list_artifacts, run_id, path)
        store, prefix = self._store(run_id)
        root = _destination(dst)
        for info in files:
            target = _local_target(root, info)
            store.get_file(f"{prefix}/{info.path}", target, expected_sha256=info.sha256 or None)
        return root.joinpath(*path.split("/")) if path else root


class HttpRunArtifacts:
    """Run artifacts streamed through the platform server.

    Uploads are sent in 1 MiB chunks and hashed on the way; the server's sha256 must match.
    Downloads are streamed to a temporary file, checked against ``X-Shipyard-Sha256`` and
    then renamed into place.

    Args:
        http: the session to the server.
        workspace: workspace of the runs.
    """

    def __init__(self, http: HttpSession, workspace: str = "default") -> None:
        self._http = http
        self.workspace = workspace

    def __repr__(self) -> str:
        return f"HttpRunArtifacts('{self._http.base_url}', workspace={self.workspace!r})"

    def _path(self, run_id: str, key: str) -> str:
        return f"/runs/{quote(run_id, safe='')}/artifacts/{quote(key, safe='/')}"

    def _upload(
        self, run_id: str, key: str, open_body: Callable[[], IO[bytes]], name: str
    ) -> ArtifactInfo:
        from shipyard.tracking.http import artifact_from_json

        digests: list[Any] = []

        def body() -> Iterator[bytes]:
            # A fresh hash per attempt, since HttpSession may resend after a failed connect.
            digest = hashlib.sha256()
            digests.append(digest)
            with open_body() as src:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    yield chunk

        response = self._http.request(
            "PUT",
            self._path(run_id, key),
            content=body,
            headers={"Content-Type": "application/octet-stream"},
            workspace=self.workspace,
        )
        info = artifact_from_json(response.json())
        sent = digests[-1].hexdigest()
        if info.sha256 != sent:
            raise IntegrityError(
                f"The server stored {name} as '{key}' with sha256 {info.sha256}, but the "
                f"bytes sent hash to {sent}.",
                hint="Log the artifact again; the file changed while it was being uploaded.",
            )
        return info

    def log_artifact(
        self, run_id: str, local_path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> ArtifactInfo:
        """Upload one local file as ``artifact_path/<file name>`` of the run."""
        source = _file(local_path)
        key = _join(artifact_path, source.name)
        return self._upload(run_id, key, lambda: open(source, "rb"), f"'{source}'")

    def log_artifacts(
        self, run_id: str, local_dir: str | os.PathLike[str], artifact_path: str | None = None
    ) -> list[ArtifactInfo]:
        """Upload every file under ``local_dir`` below ``artifact_path``, keeping the tree."""
        return [
            self._upload(
                run_id, _join(artifact_path, rel), lambda p=full: open(p, "rb"), f"'{full}'"
            )
            for full, rel in _dir_files(Path(local_dir))
        ]

    def log_bytes(self, run_id: str, data: bytes, artifact_path: str) -> ArtifactInfo:
        """Upload ``data`` as the run's file ``artifact_path``."""
        import io

        key = _join(None, artifact_path)
        return self._upload(run_id, key, lambda: io.BytesIO(data), "the bytes")

    def list_artifacts(self, run_id: str, path: str = "") -> list[ArtifactInfo]:
        """Recorded files and folders directly under ``path``."""
        from shipyard.tracking.http import artifact_from_json

        body = self._http.get(
            f"/runs/{quote(run_id, safe='')}/artifacts",
            params={"path": path},
            workspace=self.workspace,
        )
        return [artifact_from_json(a) for a in body["artifacts"]]

    def _download(self, run_id: str, key: str, target: Path) -> None:
        from shipyard._http import SHA256_HEADER

        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{_TMP_PREFIX}{uuid.uuid4().hex}")
        try:
            with self._http.stream("GET", self._path(run_id, key), workspace=self.workspace) as r:
                expected = r.headers.get(SHA256_HEADER, "")
                digest = hashlib.sha256()
                with open(tmp, "wb") as out:
                    for chunk in r.iter_bytes(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            if expected and digest.hexdigest() != expected:
                raise IntegrityError(
                    f"Artifact '{key}' of run '{run_id}' arrived with sha256 "
                    f"{digest.hexdigest()}, but {expected} was recorded.",
                    hint="Download it again; if it persists the stored copy is damaged.",
                )
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def download_artifacts(
        self, run_id: str, path: str = "", dst: str | os.PathLike[str] | None = None
    ) -> Path:
        """Download a file or folder of the run to ``dst`` (a new temp folder when None).

        Returns:
            The local file when ``path`` names a file, else the folder holding the tree.

        Raises:
            ArtifactNotFoundError: the run has nothing at ``path``.
            IntegrityError: a file does not match the sha256 the server recorded.
        """
        path = path.strip("/")
        files = _files_under(self.list_artifacts, run_id, path)
        root = _destination(dst)
        for info in files:
            target = _local_target(root, info)
            self._download(run_id, info.path, target)
        return root.joinpath(*path.split("/")) if path else root
