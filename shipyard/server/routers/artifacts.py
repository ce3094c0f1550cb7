"""Run artifact routes: streamed upload and download, listing, and recording.

Bytes go to the ArtifactStore under the run's artifact prefix (its ``artifact_uri``
relative to the server's artifact root) and are never held whole in memory; every stored
file is recorded on the run with its size and sha256, which downloads send back in the
``X-Shipyard-Sha256`` header so clients can verify what they got.
"""

from __future__ import annotations

import posixpath
from collections.abc import AsyncIterator, Iterator
from typing import IO, Annotated, Any, cast
from urllib.parse import unquote

import anyio.from_thread
import anyio.to_thread
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from shipyard._http import SHA256_HEADER
from shipyard.errors import ArtifactNotFoundError, InvalidArgumentError
from shipyard.server.deps import PermissionRoute, Platform, platform, requires, tracking_store
from shipyard.server.schemas import ERROR_RESPONSES, ArtifactList, ArtifactOut, ArtifactRecords
from shipyard.store.artifacts import CHUNK_SIZE, safe_key
from shipyard.tracking.entities import Run
from shipyard.tracking.store import TrackingStore
from shipyard.types import ArtifactInfo

__all__ = ["UPLOAD_PATH", "router", "run_artifact_prefix"]

#: Paths of artifact uploads, which get the larger artifact body limit.
UPLOAD_PATH = r"^/api/v1/runs/[^/]+/artifacts/.+"

router = APIRouter(route_class=PermissionRoute, responses=ERROR_RESPONSES, tags=["artifacts"])

Store = Annotated[TrackingStore, Depends(tracking_store)]
PlatformDep = Annotated[Platform, Depends(platform)]
# A run's artifacts are part of the run: reading them is runs:read, adding them runs:write.
ReadArtifacts = [Depends(requires("runs", "read"))]
WriteArtifacts = [Depends(requires("runs", "write"))]

_BINARY = {"schema": {"type": "string", "format": "binary"}}


def run_artifact_prefix(run: Run, root_urls: list[str]) -> str:
    """The key prefix of the run's artifacts in a store rooted at one of ``root_urls``.

    Raises:
        InvalidArgumentError: the run keeps its artifacts outside those roots (an
            experiment created with its own ``artifact_location``).
    """
    uri = run.info.artifact_uri.rstrip("/")
    for root in root_urls:
        root = root.rstrip("/")
        if uri.startswith(f"{root}/"):
            rest = uri[len(root) + 1 :]
            return safe_key(unquote(rest) if root.startswith("file:") else rest)
    raise InvalidArgumentError(
        f"Run '{run.run_id}' keeps its artifacts at {uri}, outside this server's artifact root.",
        hint="Read and write them at that location directly, or log to an experiment "
        "created without a custom artifact_location.",
    )


def _prefix(state: Platform, run: Run) -> str:
    return run_artifact_prefix(run, [state.settings.artifacts, state.artifacts.root_url])


def _user_key(path: str) -> str:
    """The artifact path a client sent, checked: traversal and absolute paths are a 400."""
    return safe_key(path)


class _BodyReader:
    """A blocking file object over the request's async body, for a worker thread.

    Each ``read`` hops to the event loop for the next chunk, so ArtifactStore.put_stream
    can stream from the socket to storage with one chunk in memory.
    """

    def __init__(self, stream: AsyncIterator[bytes]) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self._eof = False

    async def _next(self) -> bytes | None:
        try:
            return await self._stream.__anext__()
        except StopAsyncIteration:
            return None

    def read(self, size: int = -1) -> bytes:
        while not self._eof and (size < 0 or len(self._buffer) < size):
            chunk = anyio.from_thread.run(self._next)
            if chunk is None:
                self._eof = True
            else:
                self._buffer += chunk
        if size < 0 or size > len(self._buffer):
            size = len(self._buffer)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data


@router.put(
    "/runs/{run_id}/artifacts/{path:path}",
    status_code=201,
    response_model=ArtifactOut,
    dependencies=WriteArtifacts,
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/octet-stream": _BINARY}}
    },
)
async def upload_artifact(
    run_id: str,
    path: str,
    request: Request,
    store: Store,
    state: PlatformDep,
    expected_sha256: Annotated[
        str | None,
        Header(alias=SHA256_HEADER, description="sha256 the body must have; else 400."),
    ] = None,
) -> Any:
    """Store the request body as the run's artifact ``path``, streamed; returns its sha256."""
    key = _user_key(path)
    run = await run_in_threadpool(store.get_run, run_id)
    full_key = f"{_prefix(state, run)}/{key}"
    reader = _BodyReader(request.stream())
    try:
        stored = await anyio.to_thread.run_sync(
            state.artifacts.put_stream, cast(IO[bytes], reader), full_key
        )
    except ClientDisconnect:
        raise InvalidArgumentError(
            f"The upload of '{key}' was interrupted.", hint="Upload the file again."
        ) from None
    if expected_sha256 and stored.sha256 != expected_sha256.lower():
        await run_in_threadpool(state.artifacts.delete, full_key, missing_ok=True)
        raise InvalidArgumentError(
            f"The uploaded '{key}' has sha256 {stored.sha256}, but the request said "
            f"{expected_sha256}; it was not kept.",
            hint="Upload the file again; it was corrupted on the way.",
        )
    info = ArtifactInfo(path=key, size=stored.size, sha256=stored.sha256)
    await run_in_threadpool(store.record_artifacts, run_id, [info])
    return info


def _recorded(store: TrackingStore, run_id: str, key: str) -> ArtifactInfo | None:
    parent = posixpath.dirname(key)
    for info in store.list_artifacts(run_id, parent):
        if info.path == key and not info.is_dir:
            return info
    return None


def _chunks(fileobj: IO[bytes]) -> Iterator[bytes]:
    with fileobj:
        while chunk := fileobj.read(CHUNK_SIZE):
            yield chunk


@router.get(
    "/runs/{run_id}/artifacts/{path:path}",
    response_class=StreamingResponse,
    dependencies=ReadArtifacts,
    responses={
        200: {"description": "The file's bytes.", "content": {"application/octet-stream": _BINARY}}
    },
)
def download_artifact(run_id: str, path: str, store: Store, state: PlatformDep) -> Any:
    """Stream the run's artifact ``path``; its sha256 is in the X-Shipyard-Sha256 header."""
    key = _user_key(path)
    run = store.get_run(run_id)
    full_key = f"{_prefix(state, run)}/{key}"
    try:
        recorded = _recorded(store, run_id, key)
        stored = state.artifacts.info(full_key, checksum=recorded is None)
        if stored.is_dir:
            raise InvalidArgumentError(
                f"'{key}' is a folder of run '{run_id}'.",
                hint=f"List it with GET /api/v1/runs/{run_id}/artifacts?path={key} and "
                "download its files one by one.",
            )
        fileobj = state.artifacts.open(full_key)
    except ArtifactNotFoundError:
        raise ArtifactNotFoundError(
            f"Run '{run_id}' has no artifact '{key}'.",
            hint=f"List the run's artifacts with GET /api/v1/runs/{run_id}/artifacts.",
        ) from None
    sha256 = recorded.sha256 if recorded is not None else stored.sha256
    return StreamingResponse(
        _chunks(fileobj),
        media_type="application/octet-stream",
        headers={SHA256_HEADER: sha256, "Content-Length": str(stored.size)},
    )


@router.get("/runs/{run_id}/artifacts", response_model=ArtifactList, dependencies=ReadArtifacts)
def list_artifacts(
    run_id: str,
    store: Store,
    path: Annotated[str, Query(description="Folder to list; '' = root.")] = "",
) -> Any:
    """The files and folders directly under ``path`` recorded for the run."""
    folder = _user_key(path) if path.strip("/") else ""
    return {"artifacts": store.list_artifacts(run_id, folder)}


@router.post("/runs/{run_id}/artifacts", status_code=204, dependencies=WriteArtifacts)
def record_artifacts(run_id: str, body: ArtifactRecords, store: Store) -> None:
    """Record files already stored under the run's artifact_uri (no bytes are sent)."""
    store.record_artifacts(
        run_id,
        [
            ArtifactInfo(path=a.path, size=a.size, sha256=a.sha256, is_dir=a.is_dir)
            for a in body.artifacts
        ],
    )
