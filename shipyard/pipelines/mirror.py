"""Content-addressed step files on a remote artifact root (s3://, gs://, ...).

Steps always read and write local files, so with a remote root the executor works in a local
folder and mirrors it: every output and log is uploaded once it is written, and a cached or
resumed output that is not on this machine is downloaded before a step reads it. Keys are the
same on both sides (``pipelines/<workspace>/cas/<ab>/<sha256>``), so runs on different
machines share one cache.
"""

from __future__ import annotations

from pathlib import Path

from shipyard.store.artifacts import ArtifactStore

__all__ = ["ArtifactMirror"]


class ArtifactMirror:
    """A local folder kept in step with an artifact store, key for key."""

    def __init__(self, root: Path, store: ArtifactStore) -> None:
        self.root = root
        self.store = store

    def __repr__(self) -> str:
        return f"ArtifactMirror({str(self.root)!r}, {self.store!r})"

    def upload(self, key: str) -> None:
        """Copy ``root/key`` (a file or a folder) to the store, unless it is there already;
        content-addressed keys never change, so existing ones are skipped."""
        path = self.root / key
        if not path.exists() or self.store.exists(key):
            return
        if path.is_dir():
            self.store.put_dir(path, key)
        else:
            self.store.put_file(path, key)

    def ensure_local(self, key: str) -> bool:
        """Whether ``root/key`` exists here, downloading it from the store when needed."""
        path = self.root / key
        if path.exists():
            return True
        if not self.store.exists(key):
            return False
        infos = self.store.list(key, recursive=True)
        if len(infos) == 1 and infos[0].path == key:
            self.store.get_file(key, path)
            path.chmod(0o444)
        else:
            self.store.get_dir(key, path)
        return True
